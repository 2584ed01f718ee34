"""The company fields that configure outbound deliveries: ``webhooks`` and ``notificationEmail``.

Their shape is the models below; what needs the node (the URL's addresses, the per-company cap,
the encryption key) is checked here before anything is written. A webhook secret is encrypted
here (it is never stored, returned or logged in plain).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from wafleet.actors.outbound_url import MAX_URL, UrlRefused, check
from wafleet.actors.webhook_deliverer import webhook_secret_aad
from wafleet.http.api import ApiError
from wafleet.http.context import Context
from wafleet.http.fields import ONE_LINE, Model, coded, text
from wafleet.storage import endpoints
from wafleet.storage.webhook_events import EVENT_TYPES

SECRET_MIN, SECRET_MAX = 16, 512
# A plain address: no display name, no comments, nothing a header could be folded or split on.
EMAIL = (
    r"^(?!.*\.\.)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)

EventType = Annotated[Literal[EVENT_TYPES], coded("invalid_event")]  # type: ignore[valid-type]
Url = text(MAX_URL, pattern=ONE_LINE, min_length=1)
Secret = text(SECRET_MAX, pattern=ONE_LINE, min_length=SECRET_MIN)
Email = text(254, pattern=EMAIL)


class Webhook(Model):
    """An endpoint of the company's: ``https`` outside private ranges (unless the node allows
    them), the events it wants, and the secret its deliveries are signed with."""

    url: Url
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES) * 4)]
    secret: Secret


class Outbound(Model):
    """The outbound fields of a company body (create and PATCH)."""

    webhooks: list[Webhook] | None = None  # replaces the list; null or [] clears it
    notificationEmail: Email | None = None  # noqa: N815 (the JSON's spelling)


def webhooks(ctx: Context, company_id: str, value: list[Webhook]) -> list[dict[str, Any]]:
    """Checked webhooks -> rows for storage (secret encrypted for this company)."""
    outbound = ctx.settings.outbound
    assert outbound is not None
    if len(value) > outbound.per_company:
        raise ApiError(
            400,
            "invalid_field",
            f"at most {outbound.per_company} webhooks per company (WAFLEET_WEBHOOKS_PER_COMPANY)",
        )
    if value and ctx.cipher is None:
        raise ApiError(400, "no_encryption_key", "set WAFLEET_ENCRYPTION_KEY to store webhook secrets")
    hooks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, hook in enumerate(value):
        where = f"webhooks[{i}]"
        try:
            check(hook.url, outbound.allow_private)
        except UrlRefused as exc:
            raise ApiError(400, "invalid_webhook_url", f"{where}.url: {exc}") from None
        if hook.url in seen:
            raise ApiError(400, "invalid_field", f"{where}.url is listed twice")
        seen.add(hook.url)
        assert ctx.cipher is not None
        hooks.append(
            {
                "url": hook.url,
                "events": list(dict.fromkeys(hook.events)),
                "secret": ctx.cipher.encrypt(hook.secret, aad=webhook_secret_aad(company_id)),
            }
        )
    return hooks


def parse(ctx: Context, company_id: str, data: BaseModel) -> dict[str, Any]:
    """The outbound fields present in a create/PATCH body, checked: {"webhooks"?, "email"?}."""
    out: dict[str, Any] = {}
    sent = data.model_fields_set
    if "webhooks" in sent:
        out["webhooks"] = webhooks(ctx, company_id, data.webhooks or [])
    if "notificationEmail" in sent:
        out["email"] = data.notificationEmail
    return out


def save(ctx: Context, company_id: str, parsed: dict[str, Any]) -> None:
    if "webhooks" in parsed:
        endpoints.replace_webhooks(ctx.db, company_id, parsed["webhooks"])
    if "email" in parsed:
        endpoints.set_email(ctx.db, company_id, parsed["email"])
