"""/api/whatsapp/sessions: connect, watch and steer one company's session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle
import gevent

from wafleet.actors import messages as m
from wafleet.actors.directory import STATES, search
from wafleet.http import qr_image
from wafleet.http.api import ApiError, field, json_body, only_fields, respond
from wafleet.http.context import Context

MAX_PAGE = 1000
MAX_QUERY = 200
MAX_CURSOR = 64


def _limit(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and 1 <= int(raw) <= MAX_PAGE):
        raise ApiError(400, "invalid_query", f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def company_routes(
    app: bottle.Bottle, ctx: Context, prefix: str, suffix: str, method: str, fn: Callable[[str], Any]
) -> None:
    """Mount ``prefix/<company_id>/suffix``; in single-tenant mode also ``prefix/suffix``."""
    app.route(f"{prefix}/<company_id>/{suffix}", method=method, callback=fn)
    if not ctx.settings.multi_tenant:
        default = ctx.settings.default_company_id
        app.route(f"{prefix}/{suffix}", method=method, callback=lambda: fn(default))


def install(app: bottle.Bottle, ctx: Context) -> None:
    base = "/api/whatsapp/sessions"

    def initialize(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        data = json_body()
        only_fields(data, {"usePairingCode", "phoneNumber"})
        use_pairing = field(data, "usePairingCode", bool)
        if use_pairing is None:  # WHATSAPP_USE_PAIRING_CODE: a code when there is a phone to pair
            use_pairing = ctx.settings.guide.use_pairing_code and bool(
                data.get("phoneNumber") or record.company_phone
            )
        phone = None
        if use_pairing:
            phone = ctx.phone(data.get("phoneNumber") or record.company_phone)
        elif data.get("phoneNumber") is not None:
            ctx.phone(data["phoneNumber"])
        record = ctx.tree.call(m.Initialize(company_id, phone))
        return respond(202, record.status_json())

    def status(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        return respond(200, record.status_json())

    def qr(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        pending = record.qr
        if record.status != "qr" or pending is None:
            raise ApiError(404, "no_qr", f"no QR code is pending: the session is {record.status}")
        fmt = bottle.request.query.get("format")
        accept = bottle.request.get_header("Accept", "")
        if fmt not in (None, "svg", "png", "json"):
            raise ApiError(400, "invalid_query", "format must be svg, png or json")
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

    def pairing_code(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        data = json_body()
        only_fields(data, {"phoneNumber"})
        phone = ctx.phone(data.get("phoneNumber") or record.company_phone)
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

    def command(message: type) -> Callable[[str], Any]:
        def handler(company_id: str) -> Any:
            ctx.authorised_record(company_id)
            json_body()  # a body is optional, but if one is sent it must be JSON
            record = ctx.tree.call(message(company_id))
            return respond(200, record.status_json())

        return handler

    company_routes(app, ctx, base, "initialize", "POST", initialize)
    company_routes(app, ctx, base, "status", "GET", status)
    company_routes(app, ctx, base, "qr", "GET", qr)
    company_routes(app, ctx, base, "pairing-code", "POST", pairing_code)
    company_routes(app, ctx, base, "reconnect", "POST", command(m.Reconnect))
    company_routes(app, ctx, base, "stop", "POST", command(m.StopSession))
    company_routes(app, ctx, base, "cleanup", "POST", command(m.Cleanup))

    @app.get(base)
    def all_sessions() -> Any:
        """Every session, or with ``limit`` one page of them (``cursor``: the last id seen);
        ``status`` filters, ``q`` searches ids, names and phones."""
        ctx.auth.admin()
        query = bottle.request.query
        wanted = query.get("status")
        if wanted is not None and wanted not in STATES:
            raise ApiError(400, "invalid_query", f"status must be one of {', '.join(STATES)}")
        limit = _limit(query.get("limit"))
        text = query.getunicode("q", default="") or ""
        if len(text) > MAX_QUERY:
            raise ApiError(400, "invalid_query", f"q must be at most {MAX_QUERY} characters")
        cursor = query.getunicode("cursor", default="") or ""
        if len(cursor) > MAX_CURSOR:
            raise ApiError(400, "invalid_query", f"cursor must be at most {MAX_CURSOR} characters")
        page, total, next_cursor = search(ctx.directory.records, wanted, text, cursor, limit)
        sessions = []
        for record in page:
            item = record.status_json()
            item.pop("history")
            item["name"] = record.name
            sessions.append(item)
        body: dict[str, Any] = {"sessions": sessions, "total": total}
        if limit is not None:
            body["nextCursor"] = next_cursor
        return respond(200, body)
