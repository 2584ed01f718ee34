"""POST /api/whatsapp/send: 202 once the message is durably queued; the deliverer sends it."""

from __future__ import annotations

from typing import Any

import bottle

from wafleet.actors.errors import RateLimited
from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import DIGITS, SOME_TEXT, CompanyId, Model, Phone, Reply, text
from wafleet.storage import outbox

MAX_TEXT = 4096  # WhatsApp's limit for a text message body

# 1 to 4,096 characters of text; newlines and tabs are the only control characters (a Windows
# line end becomes a newline).
MessageText = text(MAX_TEXT, pattern=SOME_TEXT, min_length=1)


class Send(Model):
    """``companyId`` may be left out with a company's token (or in single-tenant mode)."""

    companyId: CompanyId | None = None  # noqa: N815
    phone: Phone
    message: MessageText


class Outgoing(Reply):
    id: int
    companyId: str  # noqa: N815
    phone: str
    status: str
    attempts: int
    waId: str | None  # noqa: N815
    error: Any
    createdAt: str | None  # noqa: N815


def install(app: bottle.Bottle, ctx: Context) -> None:
    def send(body: Send) -> Any:
        principal = ctx.auth.principal()
        company_id = body.companyId
        if company_id is None:
            if ctx.settings.multi_tenant and principal.admin:
                raise ApiError(400, "invalid_field", "companyId is required")
            company_id = principal.company_id or ctx.settings.default_company_id
        _, record = ctx.authorised_record(company_id)
        phone = body.phone
        message = body.message.replace("\r\n", "\n")
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

    def sent(message_id: str) -> Any:
        principal = ctx.auth.principal()
        if not message_id.isascii() or not message_id.isdigit() or len(message_id) > 18:
            raise ApiError(400, "invalid_id", "the id is the number that send returned")
        row = outbox.get(ctx.db, int(message_id))
        if row is None or not (principal.admin or principal.company_id == row.company_id):
            raise ApiError(404, "not_found", f"no outgoing message {message_id}")
        return respond(200, row.json())

    declare(
        app, "POST", "/api/whatsapp/send", send, summary="Queue a text message (202 once stored)",
        tag="messages", access=Access.TOKEN, body=Send, ok={202: Outgoing}, errors=(404,),
    )  # fmt: skip
    declare(
        app, "GET", "/api/whatsapp/send/<message_id>", sent, summary="An outgoing message's state",
        tag="messages", access=Access.TOKEN, params={"message_id": {"type": "string", "pattern": DIGITS}},
        ok={200: Outgoing},
    )  # fmt: skip
