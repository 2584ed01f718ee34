"""/api/assistant/{companyId}/…: the assistant's config, bookings, availability, conversations
and stats. Admin or the company's own token; every booking goes through the same engine the
conversations use."""

from __future__ import annotations

import datetime as dt
from typing import Any

import bottle

from wafleet.actors.assistant.config import CompanyConfig, ConfigInvalid
from wafleet.actors.assistant.engine import Booked, EngineError
from wafleet.actors.assistant.protocol import FOREVER_MS, Active, Pause
from wafleet.actors.assistant.service import Assistant, AssistantUnavailable
from wafleet.http.api import ApiError, field, int_query, json_body, only_fields, respond, text
from wafleet.http.context import Context
from wafleet.storage import assistant as store
from wafleet.storage import bookings
from wafleet.storage.clock import iso, now_ms

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
TURNS_SHOWN = 100
STATS_DEFAULT_DAYS = 30


def _moment(raw: Any, name: str, tz: dt.tzinfo, *, need_offset: bool) -> dt.datetime:
    """An ISO-8601 time (or, when an offset is not required, a bare date: its midnight)."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise ApiError(
            400, "invalid_field", f"{name} must be an ISO-8601 time such as 2026-12-01T14:00:00+00:00"
        )
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

    def mount(method: str, suffix: str) -> Any:
        """``base/suffix``; in single-tenant mode also without the company segment."""

        def register(fn: Any) -> Any:
            app.route(f"{base}/{suffix}", method=method, callback=fn)
            if not ctx.settings.multi_tenant:
                default = ctx.settings.default_company_id
                app.route(f"/api/assistant/{suffix}", method=method, callback=lambda **kw: fn(default, **kw))
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
    @mount("GET", "config")
    def get_config(company_id: str) -> Any:
        return respond(200, configured(company_id).document)

    @mount("PUT", "config")
    def put_config(company_id: str) -> Any:
        company(company_id)
        data = json_body(required=True)
        try:
            cfg = assistant.put_config(company_id, data)
        except ConfigInvalid as exc:
            return respond(
                400, {"error": {"code": "invalid_config", "message": str(exc), "field": exc.field}}
            )
        return respond(200, cfg.document)

    # -- bookings ---------------------------------------------------------------------------------
    @mount("GET", "bookings")
    def list_bookings(company_id: str) -> Any:
        cfg = configured(company_id)
        query = bottle.request.query
        limit = int_query("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        status = query.get("status") or None
        if status is not None and status not in bookings.STATUSES:
            raise ApiError(400, "invalid_query", f"status must be one of {', '.join(bookings.STATUSES)}")
        bounds = {}
        for name in ("from", "to"):
            raw = query.get(name)
            if raw:
                bounds[name] = int(_moment(raw, name, cfg.tz, need_offset=False).timestamp() * 1000)
        after = None
        cursor = query.get("cursor")
        if cursor:
            start, _, last_id = cursor.partition(".")
            if not (start.lstrip("-").isdigit() and last_id.isdigit() and len(cursor) < 40):
                raise ApiError(400, "invalid_query", "cursor must be a nextCursor this route returned")
            after = (int(start), int(last_id))
        rows, next_after = bookings.page(
            ctx.db,
            company_id,
            limit=limit,
            after=after,
            from_ms=bounds.get("from"),
            to_ms=bounds.get("to"),
            status=status,
        )
        return respond(
            200,
            {
                "bookings": [assistant.engine.view(cfg, r).json() for r in rows],
                "nextCursor": f"{next_after[0]}.{next_after[1]}" if next_after else None,
            },
        )

    @mount("POST", "bookings")
    def create_booking(company_id: str) -> Any:
        cfg = configured(company_id)
        data = json_body(required=True)
        only_fields(data, {"service", "resource", "start", "customerPhone", "customerName"})
        service = field(data, "service", str, required=True)
        resource = field(data, "resource", str)
        start = _moment(field(data, "start", str, required=True), "start", cfg.tz, need_offset=True)
        phone = ctx.phone(data.get("customerPhone"), "customerPhone")
        name = field(data, "customerName", str)
        if name is not None:
            name = text(name, "customerName").strip()[:200] or None
        try:
            outcome = assistant.engine.book(
                cfg, service_id=service, start=start, phone=phone, name=name, resource=resource, source="api"
            )
        except EngineError as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        if isinstance(outcome, Booked):
            return respond(201, outcome.booking.json())
        return respond(
            409,
            {
                "error": {"code": outcome.reason.value, "message": _refusal_message(outcome.reason.value)},
                "alternatives": [a.isoformat() for a in outcome.alternatives],
            },
        )

    @mount("POST", "bookings/<code>/cancel")
    def cancel_booking(company_id: str, code: str) -> Any:
        cfg = configured(company_id)
        json_body()
        code = _code(code)
        view = assistant.engine.cancel(cfg, code)
        if view is None:
            row = assistant.engine.find(cfg, code)
            if row is None:
                raise ApiError(404, "not_found", f"no booking {code}")
            raise ApiError(409, "wrong_state", f"booking {code} is {row.status}, not confirmed")
        return respond(200, view.json())

    @mount("POST", "bookings/<code>/reschedule")
    def reschedule_booking(company_id: str, code: str) -> Any:
        cfg = configured(company_id)
        data = json_body(required=True)
        only_fields(data, {"start", "resource"})
        start = _moment(field(data, "start", str, required=True), "start", cfg.tz, need_offset=True)
        row = assistant.engine.find(cfg, _code(code))
        if row is None:
            raise ApiError(404, "not_found", f"no booking {code}")
        if row.status != "confirmed":
            raise ApiError(409, "wrong_state", f"booking {row.code} is {row.status}, not confirmed")
        outcome = assistant.engine.reschedule(cfg, row, start, field(data, "resource", str))
        if isinstance(outcome, Booked):
            return respond(200, outcome.booking.json())
        return respond(
            409,
            {
                "error": {"code": outcome.reason.value, "message": _refusal_message(outcome.reason.value)},
                "alternatives": [a.isoformat() for a in outcome.alternatives],
            },
        )

    @mount("GET", "availability")
    def availability(company_id: str) -> Any:
        cfg = configured(company_id)
        service = bottle.request.query.get("service") or ""
        raw_date = bottle.request.query.get("date") or ""
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
    @mount("GET", "conversations")
    def conversations(company_id: str) -> Any:
        company(company_id)
        limit = int_query("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        cursor = int_query("cursor", None, 1, 10**18)
        rows, next_id = store.conversations_page(ctx.db, company_id, limit, cursor)
        active = _active(company_id)
        return respond(
            200,
            {
                "conversations": [dict(_conversation_json(r), active=r.peer in active) for r in rows],
                "nextCursor": str(next_id) if next_id is not None else None,
            },
        )

    @mount("GET", "conversations/<phone>")
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
        def handler(company_id: str, phone: str) -> Any:
            configured(company_id)
            ctx.phone(phone, "phone")
            until_ms = until()
            try:
                state = assistant.ask(Pause(company_id, phone, until_ms))
            except AssistantUnavailable as exc:
                raise ApiError(503, "unavailable", str(exc), {"Retry-After": "2"}) from None
            return respond(200, state)

        return handler

    def pause_until() -> int:
        data = json_body()
        only_fields(data, {"minutes"})
        minutes = field(data, "minutes", int)
        if minutes is None:
            return FOREVER_MS
        if not 1 <= minutes <= 60 * 24 * 365:
            raise ApiError(400, "invalid_field", "minutes must be a whole number from 1 to 525600")
        return now_ms() + minutes * 60_000

    def resume_now() -> None:
        json_body()
        return None

    mount("POST", "conversations/<phone>/pause")(pause_route(pause_until))
    mount("POST", "conversations/<phone>/resume")(pause_route(resume_now))

    # -- stats ------------------------------------------------------------------------------------
    @mount("GET", "stats")
    def stats(company_id: str) -> Any:
        company(company_id)
        cfg = assistant.config(company_id)
        tz = cfg.tz if cfg else dt.UTC
        query = bottle.request.query
        to = (
            _moment(query.get("to"), "to", tz, need_offset=False)
            if query.get("to")
            else dt.datetime.now(dt.UTC)
        )
        start = (
            _moment(query.get("from"), "from", tz, need_offset=False)
            if query.get("from")
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
