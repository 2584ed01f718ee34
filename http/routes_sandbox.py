"""/api/sandbox: the far side of the sandbox link (a phone that scans, WhatsApp that drops)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import bottle

from wafleet.actors import messages as m
from wafleet.actors.status import CLOSE_REASONS, ExitReason
from wafleet.http.api import ApiError, field, json_body, only_fields, respond, text
from wafleet.http.context import Context
from wafleet.http.routes_sessions import company_routes

# Every way a link can close, but ``auth`` (a Cloud API token Meta refused; not a sandbox event).
DISCONNECT_REASONS = tuple(r for r in CLOSE_REASONS if r != ExitReason.AUTH)


def install(app: bottle.Bottle, ctx: Context) -> None:
    base = "/api/sandbox"

    def act(company_id: str, action: str, args: dict[str, Any]) -> Any:
        ctx.tree.call(m.Sandbox(company_id, action, args))
        return respond(202, {"companyId": company_id, "action": action, "accepted": True})

    def scan(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        data = json_body()
        only_fields(data, {"phoneNumber"})
        phone = ctx.phone(data["phoneNumber"]) if data.get("phoneNumber") is not None else None
        return act(company_id, "scan", {"phone": phone})

    def enter_code(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        data = json_body(required=True)
        only_fields(data, {"code"})
        code = field(data, "code", str, required=True)
        if len(code) > 16:
            raise ApiError(400, "invalid_field", "code must look like ABCD-EFGH")
        return act(company_id, "enter_code", {"code": code})

    def disconnect(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        data = json_body(required=True)
        only_fields(data, {"reason", "message", "until"})
        reason = field(data, "reason", str, required=True)
        if reason not in DISCONNECT_REASONS:
            raise ApiError(400, "invalid_field", f"reason must be one of {', '.join(DISCONNECT_REASONS)}")
        message = field(data, "message", str)
        if message is not None:
            if len(message) > 500:
                raise ApiError(400, "invalid_field", "message must be at most 500 characters")
            text(message, "message", multiline=True)  # it ends up in the database, via the fleet
        extra: dict[str, Any] = {}
        if reason == ExitReason.BANNED:
            until = field(data, "until", str)
            if "until" in data and until is None:
                pass  # null: a ban without an end (it lasts until an operator acts)
            elif until is None:
                until = (
                    (datetime.now(UTC) + timedelta(hours=1))
                    .isoformat(timespec="seconds")
                    .replace("+00:00", "Z")
                )
            else:
                try:
                    datetime.fromisoformat(until.replace("Z", "+00:00"))
                except ValueError:
                    raise ApiError(400, "invalid_field", "until must be an ISO-8601 time") from None
            if until is not None:
                extra["until"] = until
        return act(company_id, "disconnect", {"reason": reason, "message": message, "data": extra})

    def zombie(company_id: str) -> Any:
        """The link stops answering without closing; ``starts``: so do the next N starts."""
        ctx.authorised_record(company_id)
        data = json_body()
        only_fields(data, {"starts"})
        starts = field(data, "starts", int) or 0
        if not 0 <= starts <= 10:
            raise ApiError(400, "invalid_field", "starts must be a whole number from 0 to 10")
        return act(company_id, "zombie", {"starts": starts})

    def crash(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        json_body()
        return act(company_id, "crash", {})

    def inbound(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        data = json_body(required=True)
        only_fields(data, {"from", "text"})
        sender = ctx.phone(data.get("from"), "from")
        body = text(field(data, "text", str, required=True), "text", multiline=True)
        if not body.strip() or len(body) > 4096:
            raise ApiError(400, "invalid_field", "text must be 1 to 4096 characters")
        return act(company_id, "inbound", {"from": sender, "text": body})

    def outbox(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return respond(200, {"companyId": company_id, "messages": ctx.links.sandbox_outbox(company_id)})

    company_routes(app, ctx, base, "inbound", "POST", inbound)
    company_routes(app, ctx, base, "outbox", "GET", outbox)
    company_routes(app, ctx, base, "scan", "POST", scan)
    company_routes(app, ctx, base, "enter-code", "POST", enter_code)
    company_routes(app, ctx, base, "disconnect", "POST", disconnect)
    company_routes(app, ctx, base, "crash", "POST", crash)
    company_routes(app, ctx, base, "zombie", "POST", zombie)
