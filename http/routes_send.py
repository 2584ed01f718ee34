"""POST /api/whatsapp/send: 202 once the message is durably queued; the deliverer sends it."""

from __future__ import annotations

from typing import Any

import bottle

from wafleet.actors.errors import RateLimited
from wafleet.http.api import ApiError, field, json_body, only_fields, respond, text
from wafleet.http.context import Context
from wafleet.storage import outbox

MAX_TEXT = 4096  # WhatsApp's limit for a text message body


def message_text(value: str) -> str:
    """1 to 4,096 characters; newlines and tabs are the only control characters (a Windows
    line end becomes a newline)."""
    value = text(value.replace("\r\n", "\n"), "message", multiline=True)
    if "\r" in value:
        raise ApiError(
            400, "invalid_field", "message must not contain control characters other than newline and tab"
        )
    if not value.strip() or len(value) > MAX_TEXT:
        raise ApiError(400, "invalid_field", f"message must be 1 to {MAX_TEXT} characters")
    return value


def install(app: bottle.Bottle, ctx: Context) -> None:
    @app.post("/api/whatsapp/send")
    def send() -> Any:
        principal = ctx.auth.principal()
        data = json_body(required=True)
        only_fields(data, {"companyId", "phone", "message"})
        company_id = field(data, "companyId", str)
        if company_id is None:
            if ctx.settings.multi_tenant and principal.admin:
                raise ApiError(400, "invalid_field", "companyId is required")
            company_id = principal.company_id or ctx.settings.default_company_id
        _, record = ctx.authorised_record(company_id)
        phone = ctx.phone(data.get("phone"), "phone")
        message = message_text(field(data, "message", str, required=True))
        if ctx.blocklist is not None and ctx.blocklist.is_blocked(record.company_id, phone):
            raise ApiError(403, "blocked_number", f"{phone} is blocked: messages to it are refused")
        limits = ctx.settings.send_limits
        allowed, retry_after = ctx.shared.take_send_slot(
            record.company_id, limits.rate_per_company, limits.rate_window_ms / 1000
        )
        if not allowed:  # nothing is queued: the client tries again after Retry-After
            raise RateLimited(
                retry_after,
                f"{record.company_id} may send {limits.rate_per_company} messages per "
                f"{limits.rate_window_ms / 1000:g} s; try again in {max(1, round(retry_after))} s",
            )
        row = outbox.enqueue(ctx.db, record.company_id, phone, message)
        if ctx.assistant is not None:  # a person wrote to this customer: the assistant steps back
            ctx.assistant.handoff(record.company_id, phone)
        ctx.tree.wake_deliverer(record.company_id)
        return respond(202, row.json())

    @app.get("/api/whatsapp/send/<message_id>")
    def sent(message_id: str) -> Any:
        principal = ctx.auth.principal()
        if not message_id.isascii() or not message_id.isdigit() or len(message_id) > 18:
            raise ApiError(400, "invalid_id", "the id is the number that send returned")
        row = outbox.get(ctx.db, int(message_id))
        if row is None or not (principal.admin or principal.company_id == row.company_id):
            raise ApiError(404, "not_found", f"no outgoing message {message_id}")
        return respond(200, row.json())
