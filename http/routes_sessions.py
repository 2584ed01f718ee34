"""/api/whatsapp/sessions: connect, watch and steer one company's session."""

from __future__ import annotations

from typing import Any, Literal

import bottle
import gevent
from pydantic import Field

from wafleet.actors import messages as m
from wafleet.actors.directory import STATES, search
from wafleet.http import qr_image
from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, Content, declare
from wafleet.http.fields import ONE_LINE, Model, Phone, Query, Reply, query_int, text

MAX_PAGE = 1000
MAX_QUERY = 200
MAX_CURSOR = 64

State = Literal[STATES]  # type: ignore[valid-type]
# What a session command may answer besides 200: a refused state change, a ban, the session
# not answering, the node at capacity.
COMMAND_ERRORS = (409, 429, 503, 504)


class Initialize(Model):
    """``usePairingCode``: a pairing code for ``phoneNumber`` (or the company's stored phone)
    instead of a QR code; default WHATSAPP_USE_PAIRING_CODE."""

    usePairingCode: bool | None = None  # noqa: N815
    phoneNumber: Phone | None = None  # noqa: N815


class PairingRequest(Model):
    phoneNumber: Phone | None = None  # noqa: N815 (default: the company's stored phone)


class NoBody(Model):
    """No fields: a body is optional, but if one is sent it must be an empty JSON object."""


class QrQuery(Query):
    """``round``: the QR round the page shows, so a browser never reuses an old image (ignored)."""

    format: Literal["svg", "png", "json"] | None = None
    round: query_int(0, 10**9) | None = None


class SessionQuery(Query):
    status: State | None = None
    limit: query_int(1, MAX_PAGE) | None = None
    q: text(MAX_QUERY, pattern=ONE_LINE) = ""
    cursor: text(MAX_CURSOR, pattern=ONE_LINE) = ""


class Expiring(Reply):
    code: str
    expiresAt: str | None  # noqa: N815


class SessionStatus(Reply):
    companyId: str  # noqa: N815
    status: State
    connected: bool
    phoneNumber: str | None  # noqa: N815
    qr: Expiring | None
    pairingCode: Expiring | None  # noqa: N815
    restarts: int
    lastError: dict[str, Any] | None  # noqa: N815
    since: str | None
    blockedUntil: str | None  # noqa: N815
    history: list[dict[str, Any]]


class SessionItem(SessionStatus):
    history: list[dict[str, Any]] = Field(default_factory=list)
    name: str


class SessionList(Reply):
    sessions: list[SessionItem]
    total: int
    nextCursor: str | None = None  # noqa: N815 (with limit)


class QrJson(Reply):
    code: str
    expiresAt: str | None  # noqa: N815
    round: int


class PairingCode(Reply):
    success: bool
    companyId: str  # noqa: N815
    pairingCode: str  # noqa: N815
    expiresIn: int  # noqa: N815


def install(app: bottle.Bottle, ctx: Context) -> None:
    base = "/api/whatsapp/sessions"

    def initialize(company_id: str, body: Initialize) -> Any:
        _, record = ctx.authorised_record(company_id)
        use_pairing = body.usePairingCode
        if use_pairing is None:  # WHATSAPP_USE_PAIRING_CODE: a code when there is a phone to pair
            use_pairing = ctx.settings.guide.use_pairing_code and bool(
                body.phoneNumber or record.company_phone
            )
        phone = None
        if use_pairing:
            phone = ctx.phone(body.phoneNumber or record.company_phone)
        record = ctx.tree.call(m.Initialize(company_id, phone))
        return respond(202, record.status_json())

    def status(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        return respond(200, record.status_json())

    def qr(company_id: str, query: QrQuery) -> Any:
        _, record = ctx.authorised_record(company_id)
        pending = record.qr
        if record.status != "qr" or pending is None:
            raise ApiError(404, "no_qr", f"no QR code is pending: the session is {record.status}")
        fmt = query.format
        accept = bottle.request.get_header("Accept", "")
        if fmt == "json" or (fmt is None and "application/json" in accept):
            return respond(200, {**record.status_json()["qr"], "round": pending["round"]})
        # Encoding is CPU work: keep it off the hub so other requests and sessions go on.
        render = qr_image.png if fmt == "png" else qr_image.svg
        body = gevent.get_hub().threadpool.apply(render, (pending["code"],))
        headers = {
            "Content-Type": "image/png" if fmt == "png" else "image/svg+xml",
            "Cache-Control": "no-store",
            "X-QR-Round": str(pending["round"]),
        }
        return bottle.HTTPResponse(body=body, status=200, headers=headers)

    def pairing_code(company_id: str, body: PairingRequest) -> Any:
        _, record = ctx.authorised_record(company_id)
        phone = ctx.phone(body.phoneNumber or record.company_phone)
        result = ctx.tree.call(m.RequestPairing(company_id, phone))
        return respond(
            200,
            {
                "success": True,
                "companyId": company_id,
                "pairingCode": result["code"],
                "expiresIn": result["expiresIn"],
            },
        )

    def command(message: type) -> Any:
        def handler(company_id: str, body: NoBody) -> Any:
            ctx.authorised_record(company_id)
            record = ctx.tree.call(message(company_id))
            return respond(200, record.status_json())

        return handler

    def all_sessions(query: SessionQuery) -> Any:
        """Every session, or with ``limit`` one page of them (``cursor``: the last id seen);
        ``status`` filters, ``q`` searches ids, names and phones."""
        page, total, next_cursor = search(
            ctx.directory.records, query.status, query.q, query.cursor, query.limit
        )
        sessions = []
        for record in page:
            item = record.status_json()
            item.pop("history")
            item["name"] = record.name
            sessions.append(item)
        out: dict[str, Any] = {"sessions": sessions, "total": total}
        if query.limit is not None:
            out["nextCursor"] = next_cursor
        return respond(200, out)

    one = f"{base}/<company_id>"
    tag, company = "sessions", Access.COMPANY
    declare(
        app, "POST", f"{one}/initialize", initialize, summary="Start connecting (QR or pairing code)",
        tag=tag, access=company, body=Initialize, body_required=False, ok={202: SessionStatus},
        errors=COMMAND_ERRORS, twin=True,
    )  # fmt: skip
    declare(
        app, "GET", f"{one}/status", status, summary="The session's state, phone, restarts and history",
        tag=tag, access=company, ok={200: SessionStatus}, twin=True,
    )  # fmt: skip
    qr_headers = ("Cache-Control", "X-QR-Round")
    declare(
        app, "GET", f"{one}/qr", qr, summary="The pending QR code: SVG, PNG (?format=png) or JSON",
        tag=tag, access=company, query=QrQuery, twin=True,
        ok={
            200: [
                Content(media="image/svg+xml", schema={"type": "string"}, headers=qr_headers),
                Content(media="image/png", schema={"type": "string", "contentMediaType": "image/png"}),
                Content(model=QrJson),
            ]
        },
    )  # fmt: skip
    declare(
        app, "POST", f"{one}/pairing-code", pairing_code, summary="A pairing code for the phone",
        tag=tag, access=company, body=PairingRequest, body_required=False, ok={200: PairingCode},
        errors=COMMAND_ERRORS, twin=True,
    )  # fmt: skip
    for suffix, message, summary in (
        ("reconnect", m.Reconnect, "Reconnect now (clears failed)"),
        ("stop", m.StopSession, "Stop the session (it stays stopped)"),
        ("cleanup", m.Cleanup, "Log out and wipe the session's credentials"),
    ):
        declare(
            app, "POST", f"{one}/{suffix}", command(message), summary=summary, tag=tag, access=company,
            body=NoBody, body_required=False, ok={200: SessionStatus}, errors=COMMAND_ERRORS, twin=True,
        )  # fmt: skip
    declare(
        app, "GET", base, all_sessions, summary="Every session, filtered, searched and paged", tag=tag,
        access=Access.ADMIN, query=SessionQuery, ok={200: SessionList},
    )  # fmt: skip
