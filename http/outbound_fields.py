"""The company fields that configure outbound deliveries: ``webhooks`` and ``notificationEmail``.

Parsed and checked before anything is written; a webhook secret is encrypted here (it is
never stored, returned or logged in plain).
"""

from __future__ import annotations

import re
from typing import Any

from wafleet.actors.outbound_url import UrlRefused, check
from wafleet.actors.webhook_deliverer import webhook_secret_aad
from wafleet.http.api import ApiError, text
from wafleet.http.context import Context
from wafleet.storage import endpoints
from wafleet.storage.webhook_events import EVENT_TYPES

HOOK_FIELDS = {"url", "events", "secret"}
SECRET_MIN, SECRET_MAX = 16, 512
# A plain address: no display name, no comments, nothing a header could be folded or split on.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def webhooks(ctx: Context, company_id: str, value: Any) -> list[dict[str, Any]]:
    """``[{url, events, secret}]`` -> rows for storage (secret encrypted for this company)."""
    outbound = ctx.settings.outbound
    assert outbound is not None
    if not isinstance(value, list):
        raise ApiError(400, "invalid_field", "webhooks must be a list of {url, events, secret}")
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
        if not isinstance(hook, dict):
            raise ApiError(400, "invalid_field", f"{where} must be an object {{url, events, secret}}")
        unknown = sorted(set(hook) - HOOK_FIELDS)
        if unknown:
            raise ApiError(400, "unknown_field", f"unknown {where} field(s): {', '.join(unknown)}")
        url = hook.get("url")
        if not isinstance(url, str):
            raise ApiError(400, "invalid_field", f"{where}.url must be a string")
        try:
            check(url, outbound.allow_private)
        except UrlRefused as exc:
            raise ApiError(400, "invalid_webhook_url", f"{where}.url: {exc}") from None
        if url in seen:
            raise ApiError(400, "invalid_field", f"{where}.url is listed twice")
        seen.add(url)
        events = hook.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise ApiError(
                400,
                "invalid_field",
                f"{where}.events must be a non-empty list of: {', '.join(EVENT_TYPES)}",
            )
        unknown_events = sorted({e for e in events if e not in EVENT_TYPES})
        if unknown_events:
            raise ApiError(
                400,
                "invalid_event",
                f"{where}.events: unknown event(s) {', '.join(repr(e)[:40] for e in unknown_events[:5])}; "
                f"known: {', '.join(EVENT_TYPES)}",
            )
        secret = hook.get("secret")
        if not isinstance(secret, str) or not SECRET_MIN <= len(secret) <= SECRET_MAX:
            raise ApiError(
                400,
                "invalid_field",
                f"{where}.secret must be a string of {SECRET_MIN} to {SECRET_MAX} characters",
            )
        text(secret, f"{where}.secret")
        assert ctx.cipher is not None
        hooks.append(
            {
                "url": url,
                "events": list(dict.fromkeys(events)),
                "secret": ctx.cipher.encrypt(secret, aad=webhook_secret_aad(company_id)),
            }
        )
    return hooks


def notification_email(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.fullmatch(value) or ".." in value:
        raise ApiError(
            400, "invalid_field", "notificationEmail must be a plain email address (name@example.com)"
        )
    return value


def parse(ctx: Context, company_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The outbound fields present in a create/PATCH body, checked: {"webhooks"?, "email"?}."""
    out: dict[str, Any] = {}
    if "webhooks" in data:
        out["webhooks"] = webhooks(ctx, company_id, data["webhooks"] if data["webhooks"] is not None else [])
    if "notificationEmail" in data:
        out["email"] = notification_email(data["notificationEmail"])
    return out


def save(ctx: Context, company_id: str, parsed: dict[str, Any]) -> None:
    if "webhooks" in parsed:
        endpoints.replace_webhooks(ctx.db, company_id, parsed["webhooks"])
    if "email" in parsed:
        endpoints.set_email(ctx.db, company_id, parsed["email"])
