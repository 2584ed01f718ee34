"""/api/sandbox: the far side of the sandbox link (a phone that scans, WhatsApp that drops)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import bottle
from pydantic import Field

from wafleet.actors import messages as m
from wafleet.actors.status import CLOSE_REASONS, ExitReason
from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import MULTILINE, SOME_TEXT, Model, Phone, Reply, text
from wafleet.http.routes_sessions import COMMAND_ERRORS, NoBody

# Every way a link can close, but ``auth`` (a Cloud API token Meta refused; not a sandbox event).
DISCONNECT_REASONS = tuple(r.value for r in CLOSE_REASONS if r != ExitReason.AUTH)
CustomerText = text(4096, pattern=SOME_TEXT, min_length=1)


class Scan(Model):
    phoneNumber: Phone | None = None  # noqa: N815 (the phone that scans)


class EnterCode(Model):
    code: text(16)  # as the pairing code was shown: ABCD-EFGH


class Disconnect(Model):
    """``until``: a ban's end (ISO-8601; default in an hour; null: no end)."""

    reason: Literal[DISCONNECT_REASONS]  # type: ignore[valid-type]
    message: text(500, pattern=MULTILINE) | None = None
    until: text(40) | None = None


class Zombie(Model):
    starts: int = Field(default=0, ge=0, le=10)  # the next N starts answer nothing either


class Inbound(Model):
    from_: Phone = Field(alias="from")
    text: CustomerText


class Accepted(Reply):
    companyId: str  # noqa: N815
    action: str
    accepted: bool


class Outbox(Reply):
    companyId: str  # noqa: N815
    messages: list[dict[str, Any]]


def install(app: bottle.Bottle, ctx: Context) -> None:
    def act(company_id: str, action: str, args: dict[str, Any]) -> Any:
        ctx.tree.call(m.Sandbox(company_id, action, args))
        return respond(202, {"companyId": company_id, "action": action, "accepted": True})

    def scan(company_id: str, body: Scan) -> Any:
        ctx.authorised_record(company_id)
        return act(company_id, "scan", {"phone": body.phoneNumber})

    def enter_code(company_id: str, body: EnterCode) -> Any:
        ctx.authorised_record(company_id)
        return act(company_id, "enter_code", {"code": body.code})

    def disconnect(company_id: str, body: Disconnect) -> Any:
        ctx.authorised_record(company_id)
        extra: dict[str, Any] = {}
        if body.reason == ExitReason.BANNED:
            until = body.until
            if "until" in body.model_fields_set and until is None:
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
        args = {"reason": body.reason, "message": body.message, "data": extra}
        return act(company_id, "disconnect", args)

    def zombie(company_id: str, body: Zombie) -> Any:
        """The link stops answering without closing; ``starts``: so do the next N starts."""
        ctx.authorised_record(company_id)
        return act(company_id, "zombie", {"starts": body.starts})

    def crash(company_id: str, body: NoBody) -> Any:
        ctx.authorised_record(company_id)
        return act(company_id, "crash", {})

    def inbound(company_id: str, body: Inbound) -> Any:
        ctx.authorised_record(company_id)
        return act(company_id, "inbound", {"from": body.from_, "text": body.text.replace("\r\n", "\n")})

    def outbox(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return respond(200, {"companyId": company_id, "messages": ctx.links.sandbox_outbox(company_id)})

    one = "/api/sandbox/<company_id>"
    tag, company = "sandbox", Access.COMPANY
    for suffix, handler, model, required, summary in (
        ("inbound", inbound, Inbound, True, "A customer writes to the company"),
        ("scan", scan, Scan, False, "The phone scans the pending QR code"),
        ("enter-code", enter_code, EnterCode, True, "The phone enters the pairing code"),
        ("disconnect", disconnect, Disconnect, True, "WhatsApp closes the link, for a reason"),
        ("crash", crash, NoBody, False, "The link crashes"),
        ("zombie", zombie, Zombie, False, "The link stops answering without closing"),
    ):
        declare(
            app, "POST", f"{one}/{suffix}", handler, summary=summary, tag=tag, access=company, body=model,
            body_required=required, ok={202: Accepted}, errors=COMMAND_ERRORS, twin=True,
        )  # fmt: skip
    declare(
        app, "GET", f"{one}/outbox", outbox, summary="What the company's session sent", tag=tag,
        access=company, ok={200: Outbox}, twin=True,
    )  # fmt: skip
