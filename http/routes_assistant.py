"""/api/assistant/{companyId}/…: the assistant's config, bookings, availability, conversations
and stats. Admin or the company's own token; every booking goes through the same engine the
conversations use."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import bottle
from pydantic import Field

from wafleet.actors.assistant.config import CompanyConfig, ConfigDocument, ConfigInvalid
from wafleet.actors.assistant.engine import Booked, EngineError
from wafleet.actors.assistant.protocol import FOREVER_MS, Active, Pause
from wafleet.actors.assistant.service import Assistant, AssistantUnavailable
from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import MARK, ONE_LINE, Model, Phone, Query, Reply, query_int, text
from wafleet.http.routes_sessions import NoBody
from wafleet.storage import assistant as store
from wafleet.storage import bookings
from wafleet.storage.clock import iso, now_ms

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
TURNS_SHOWN = 100
STATS_DEFAULT_DAYS = 30


Moment = text(40)  # an ISO-8601 time; checked against the company's time zone by the route
Id = text(64)
CURSOR = r"^-?[0-9]{1,18}\.[0-9]{1,18}$"
PHONE_PARAM = {"type": "string", "maxLength": 64, MARK: "phone"}
CODE_PARAM = {"type": "string", "maxLength": 64}


class NewBooking(Model):
    service: Id
    resource: Id | None = None  # default: any resource that does the service
    start: Moment  # with a UTC offset
    customerPhone: Phone  # noqa: N815
    customerName: text(200, pattern=ONE_LINE) | None = None  # noqa: N815


class Reschedule(Model):
    start: Moment
    resource: Id | None = None


class PauseFor(Model):
    minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 365)  # none: until resumed


class BookingQuery(Query):
    limit: query_int(1, MAX_LIMIT) = DEFAULT_LIMIT
    status: Literal[bookings.STATUSES] | None = None  # type: ignore[valid-type]
    from_: Moment | None = Field(default=None, alias="from")
    to: Moment | None = None
    cursor: text(40, pattern=CURSOR) | None = None


class DayQuery(Query):
    service: Id
    date: text(10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class Page(Query):
    limit: query_int(1, MAX_LIMIT) = DEFAULT_LIMIT
    cursor: query_int(1, 10**18) | None = None


class Span(Query):
    from_: Moment | None = Field(default=None, alias="from")
    to: Moment | None = None


class Booking(Reply):
    code: str
    service: str
    resource: str
    start: str
    end: str
    status: str
    customerName: str | None  # noqa: N815
    customerPhone: str | None = None  # noqa: N815


class BookingPage(Reply):
    bookings: list[Booking]
    nextCursor: str | None  # noqa: N815


class Refused(Reply):
    error: dict[str, str]
    alternatives: list[str]


class Starts(Reply):
    service: str
    date: str
    starts: list[str]


class Conversation(Reply):
    phone: str
    paused: bool
    pausedUntil: str | None  # noqa: N815
    startedAt: str | None  # noqa: N815
    updatedAt: str | None  # noqa: N815
    active: bool


class ConversationPage(Reply):
    conversations: list[Conversation]
    nextCursor: str | None  # noqa: N815


class Turns(Conversation):
    turns: list[dict[str, Any]]


class PauseState(Reply):
    paused: bool


class Stats(Reply):
    from_: str = Field(alias="from")
    to: str
    bookings: dict[str, Any]
    messages: dict[str, int]
    conversations: int
    turns: int
    ai: dict[str, Any]


def _moment(raw: str, name: str, tz: dt.tzinfo, *, need_offset: bool) -> dt.datetime:
    """An ISO-8601 time (or, when an offset is not required, a bare date: its midnight)."""
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "invalid_field", f"{name} must be an ISO-8601 time such as 2026-12-01T14:00:00+00:00"
        ) from None
    if value.tzinfo is None:
        if need_offset:
            raise ApiError(400, "invalid_field", f"{name} must carry a UTC offset (…+01:00 or …Z)")
        value = value.replace(tzinfo=tz)
    return value


def install(app: bottle.Bottle, ctx: Context) -> None:
    base = "/api/assistant/<company_id>"

    def mount(method: str, suffix: str, **declared: Any) -> Any:
        """Declare ``base/suffix`` (and, in single-tenant mode, the same without the company)."""

        def register(fn: Any) -> Any:
            declare(
                app, method, f"{base}/{suffix}", fn, tag="assistant", access=Access.COMPANY, twin=True,
                **declared,
            )  # fmt: skip
            return fn

        return register

    class _Assistant:
        """The node's assistant, found when a request comes (the app is built before it)."""

        def __getattr__(self, name: str) -> Any:
            if ctx.assistant is None:
                raise ApiError(503, "unavailable", "the assistant is not running on this node")
            return getattr(ctx.assistant, name)

    assistant: Assistant = _Assistant()  # type: ignore[assignment]

    def company(company_id: str) -> str:
        ctx.authorised_record(company_id)
        return company_id

    def configured(company_id: str) -> CompanyConfig:
        company(company_id)
        cfg = assistant.config(company_id)
        if cfg is None:
            raise ApiError(
                404, "not_configured", f"company {company_id!r} has no assistant config: PUT it first"
            )
        return cfg

    # -- config -----------------------------------------------------------------------------------
    @mount("GET", "config", summary="The assistant's configuration", ok={200: ConfigDocument})
    def get_config(company_id: str) -> Any:
        return respond(200, configured(company_id).document)

    @mount(
        "PUT", "config", summary="Replace the assistant's configuration", body=ConfigDocument,
        body_error="invalid_config", ok={200: ConfigDocument},
    )  # fmt: skip
    def put_config(company_id: str, body: ConfigDocument) -> Any:
        company(company_id)
        try:
            cfg = assistant.put_config(company_id, body)
        except ConfigInvalid as exc:
            raise ApiError(400, "invalid_config", str(exc), field=exc.field) from None
        return respond(200, cfg.document)

    # -- bookings ---------------------------------------------------------------------------------
    @mount(
        "GET", "bookings", summary="Bookings by start time, filtered and paged", query=BookingQuery,
        ok={200: BookingPage},
    )  # fmt: skip
    def list_bookings(company_id: str, query: BookingQuery) -> Any:
        cfg = configured(company_id)
        bounds = {}
        for name, raw in (("from", query.from_), ("to", query.to)):
            if raw:
                bounds[name] = int(_moment(raw, name, cfg.tz, need_offset=False).timestamp() * 1000)
        after = None
        if query.cursor:
            start, _, last_id = query.cursor.partition(".")
            after = (int(start), int(last_id))
        rows, next_after = bookings.page(
            ctx.db,
            company_id,
            limit=query.limit,
            after=after,
            from_ms=bounds.get("from"),
            to_ms=bounds.get("to"),
            status=query.status,
        )
        return respond(
            200,
            {
                "bookings": [assistant.engine.view(cfg, r).json() for r in rows],
                "nextCursor": f"{next_after[0]}.{next_after[1]}" if next_after else None,
            },
        )

    @mount(
        "POST", "bookings", summary="Book a service (the same engine as the conversations)",
        body=NewBooking, ok={201: Booking, 409: Refused},
    )  # fmt: skip
    def create_booking(company_id: str, body: NewBooking) -> Any:
        cfg = configured(company_id)
        service, resource = body.service, body.resource
        start = _moment(body.start, "start", cfg.tz, need_offset=True)
        phone = body.customerPhone
        name = body.customerName.strip() or None if body.customerName is not None else None
        try:
            outcome = assistant.engine.book(
                cfg, service_id=service, start=start, phone=phone, name=name, resource=resource, source="api"
            )
        except EngineError as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        if isinstance(outcome, Booked):
            return respond(201, outcome.booking.json())
        return _slot_refused(outcome)

    @mount(
        "POST", "bookings/<code>/cancel", summary="Cancel a booking", params={"code": CODE_PARAM},
        body=NoBody, body_required=False, ok={200: Booking}, errors=(409,),
    )  # fmt: skip
    def cancel_booking(company_id: str, code: str, body: NoBody) -> Any:
        cfg = configured(company_id)
        code = _code(code)
        view = assistant.engine.cancel(cfg, code)
        if view is None:
            row = assistant.engine.find(cfg, code)
            if row is None:
                raise ApiError(404, "not_found", f"no booking {code}")
            raise ApiError(409, "wrong_state", f"booking {code} is {row.status}, not confirmed")
        return respond(200, view.json())

    @mount(
        "POST", "bookings/<code>/reschedule", summary="Move a booking", params={"code": CODE_PARAM},
        body=Reschedule, ok={200: Booking, 409: Refused},
    )  # fmt: skip
    def reschedule_booking(company_id: str, code: str, body: Reschedule) -> Any:
        cfg = configured(company_id)
        start = _moment(body.start, "start", cfg.tz, need_offset=True)
        row = assistant.engine.find(cfg, _code(code))
        if row is None:
            raise ApiError(404, "not_found", f"no booking {code}")
        if row.status != "confirmed":
            raise ApiError(409, "wrong_state", f"booking {row.code} is {row.status}, not confirmed")
        outcome = assistant.engine.reschedule(cfg, row, start, body.resource)
        if isinstance(outcome, Booked):
            return respond(200, outcome.booking.json())
        return _slot_refused(outcome)

    @mount(
        "GET", "availability", summary="Free start times of a service on a day", query=DayQuery,
        ok={200: Starts},
    )  # fmt: skip
    def availability(company_id: str, query: DayQuery) -> Any:
        cfg = configured(company_id)
        service, raw_date = query.service, query.date
        if cfg.service(service) is None:
            raise ApiError(
                400, "invalid_query", f"service must be one of {', '.join(s.id for s in cfg.services)}"
            )
        try:
            day = dt.date.fromisoformat(raw_date) if len(raw_date) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(400, "invalid_query", "date must be YYYY-MM-DD")
        starts = assistant.engine.free_starts(cfg, service, day)
        return respond(
            200, {"service": service, "date": day.isoformat(), "starts": [s.isoformat() for s in starts]}
        )

    # -- conversations ----------------------------------------------------------------------------
    @mount(
        "GET", "conversations", summary="Customers' conversations, newest first", query=Page,
        ok={200: ConversationPage},
    )  # fmt: skip
    def conversations(company_id: str, query: Page) -> Any:
        company(company_id)
        rows, next_id = store.conversations_page(ctx.db, company_id, query.limit, query.cursor)
        active = _active(company_id)
        return respond(
            200,
            {
                "conversations": [dict(_conversation_json(r), active=r.peer in active) for r in rows],
                "nextCursor": str(next_id) if next_id is not None else None,
            },
        )

    @mount(
        "GET", "conversations/<phone>", summary="One conversation and its last turns",
        params={"phone": PHONE_PARAM}, ok={200: Turns},
    )  # fmt: skip
    def conversation(company_id: str, phone: str) -> Any:
        company(company_id)
        ctx.phone(phone, "phone")
        row = store.load_conversation(ctx.db, company_id, phone)
        if row is None:
            raise ApiError(404, "not_found", f"no conversation with {phone}")
        turns = store.turns(ctx.db, company_id, phone, TURNS_SHOWN)
        for turn in turns:
            turn["at"] = iso(turn["at"])
        return respond(200, dict(_conversation_json(row), active=phone in _active(company_id), turns=turns))

    def _active(company_id: str) -> set[str]:
        """Customers whose conversation actor is running (idle ones have ended; state stays)."""
        try:
            return set(assistant.ask(Active(company_id)))
        except AssistantUnavailable as exc:
            raise ApiError(503, "unavailable", str(exc), {"Retry-After": "2"}) from None

    def pause_route(until: Any) -> Any:
        def handler(company_id: str, phone: str, body: Any) -> Any:
            configured(company_id)
            ctx.phone(phone, "phone")
            until_ms = until(body)
            try:
                state = assistant.ask(Pause(company_id, phone, until_ms))
            except AssistantUnavailable as exc:
                raise ApiError(503, "unavailable", str(exc), {"Retry-After": "2"}) from None
            return respond(200, state)

        return handler

    def pause_until(body: PauseFor) -> int:
        return FOREVER_MS if body.minutes is None else now_ms() + body.minutes * 60_000

    def resume_now(body: NoBody) -> None:
        return None

    mount(
        "POST", "conversations/<phone>/pause", summary="The assistant stops answering this customer",
        params={"phone": PHONE_PARAM}, body=PauseFor, body_required=False, ok={200: PauseState},
    )(pause_route(pause_until))  # fmt: skip
    mount(
        "POST", "conversations/<phone>/resume", summary="The assistant answers this customer again",
        params={"phone": PHONE_PARAM}, body=NoBody, body_required=False, ok={200: PauseState},
    )(pause_route(resume_now))  # fmt: skip

    # -- stats ------------------------------------------------------------------------------------
    @mount(
        "GET", "stats", summary="Bookings, messages and AI use over a span (default 30 days)",
        query=Span, ok={200: Stats},
    )  # fmt: skip
    def stats(company_id: str, query: Span) -> Any:
        company(company_id)
        cfg = assistant.config(company_id)
        tz = cfg.tz if cfg else dt.UTC
        to = _moment(query.to, "to", tz, need_offset=False) if query.to else dt.datetime.now(dt.UTC)
        start = (
            _moment(query.from_, "from", tz, need_offset=False)
            if query.from_
            else to - dt.timedelta(days=STATS_DEFAULT_DAYS)
        )
        if start >= to:
            raise ApiError(400, "invalid_query", "from must be earlier than to")
        from_ms, to_ms = int(start.timestamp() * 1000), int(to.timestamp() * 1000)
        made = bookings.counts(ctx.db, company_id, from_ms, to_ms)
        turns = store.turn_stats(ctx.db, company_id, from_ms, to_ms)
        return respond(
            200,
            {
                "from": start.isoformat(),
                "to": to.isoformat(),
                "bookings": made,
                "messages": {"in": turns["messagesIn"], "out": turns["messagesOut"]},
                "conversations": turns["conversations"],
                "turns": turns["turns"],
                "ai": {
                    "calls": turns["aiCalls"],
                    "promptTokens": turns["promptTokens"],
                    "completionTokens": turns["completionTokens"],
                    "cost": turns["cost"],
                    "fallbackRate": turns["fallbackRate"],
                },
                "responseMs": turns["responseMs"],
            },
        )


REFUSALS = {
    "slot_taken": "that time is taken",
    "past": "that time is in the past",
    "closed_day": "the company is closed that day",
    "outside_hours": "that time is outside opening hours",
    "beyond_horizon": "that day is beyond the booking horizon",
}


def _slot_refused(outcome: Any) -> bottle.HTTPResponse:
    """409 with the engine's reason and the nearest free starts, for a booking or a reschedule."""
    return respond(
        409,
        {
            "error": {"code": outcome.reason.value, "message": _refusal_message(outcome.reason.value)},
            "alternatives": [a.isoformat() for a in outcome.alternatives],
        },
    )


def _refusal_message(code: str) -> str:
    return REFUSALS.get(code, code) + "; alternatives lists the nearest free starts"


def _code(raw: str) -> str:
    code = raw.upper()
    if len(code) != bookings.CODE_LENGTH or any(c not in bookings.CODE_ALPHABET for c in code):
        raise ApiError(404, "not_found", "a booking code is 6 characters")
    return code


def _conversation_json(row: store.ConversationRow) -> dict[str, Any]:
    state = row.state
    until = row.paused_until
    paused = until is not None and until > now_ms()
    return {
        "phone": row.peer,
        "language": state.get("language"),
        "flow": state.get("flow"),
        "pending": state.get("pending"),
        "slots": {k: state.get(k) for k in ("service", "date", "time", "resource", "code")},
        "offered": state.get("offered") or [],
        "paused": paused,
        "pausedUntil": iso(until) if paused and until != FOREVER_MS else None,
        "startedAt": iso(row.started_at),
        "updatedAt": iso(row.updated_at),
    }
