"""/api/whatsapp/webhook/cloud: Meta's verify handshake and its signed event notifications.

Not behind bearer auth (Meta calls it). POST checks ``X-Hub-Signature-256`` over the raw body
bytes in constant time before anything reads the body as JSON; a missing or wrong signature is a
401 and nothing is stored. A signed body is committed to the webhook inbox before the 200 (the
durability rule: what was acknowledged is already committed) and processed off the request by actors.webhook.

Secrets: WHATSAPP_WEBHOOK_SECRET (the Meta app secret) and WHATSAPP_VERIFY_TOKEN. Per-company
app secrets and verify tokens (encrypted columns on companies) are not consulted yet.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import bottle

from wafleet.actors.webhook import Wake
from wafleet.http.api import ApiError, raw_body, respond
from wafleet.http.context import Context
from wafleet.http.webhook_secrets import WebhookSecrets
from wafleet.storage import inbox
from wafleet.storage.clock import now_ms

PATH = "/api/whatsapp/webhook/cloud"
MAX_WEBHOOK_BODY = 1024 * 1024  # Meta's payloads are a few KiB


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    presented = header.strip().encode("latin-1", "replace")
    if presented[:7].lower() == b"sha256=":
        presented = b"sha256=" + presented[7:].lower()
    return hmac.compare_digest(expected, presented)


def _plain(status: int, text: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        body=text,
        status=status,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def install(app: bottle.Bottle, ctx: Context) -> None:
    secrets = WebhookSecrets(ctx.db, ctx.cipher, ctx.settings.webhook_secret, ctx.settings.verify_token)

    def verify() -> Any:
        query = bottle.request.query
        mode = query.get("hub.mode")
        token = query.get("hub.verify_token") or ""
        challenge = query.get("hub.challenge")
        presented = token.encode("utf-8", "surrogateescape")
        matches = [hmac.compare_digest(presented, expected) for expected in secrets.verify_tokens()]
        ok = mode == "subscribe" and challenge is not None and any(matches)
        if not ok:
            return _plain(403, "Forbidden")
        return _plain(200, challenge)

    def receive() -> Any:
        if not secrets.configured():
            raise ApiError(
                503, "webhook_not_configured", "WHATSAPP_WEBHOOK_SECRET is not set: cannot check signatures"
            )
        raw = raw_body(MAX_WEBHOOK_BODY)
        header = bottle.request.get_header("X-Hub-Signature-256")
        if not any(signature_ok(s, raw, header) for s in secrets.secrets()) and not any(
            signature_ok(s, raw, header) for s in secrets.secrets(refresh=True)
        ):
            raise ApiError(
                401, "invalid_signature", "X-Hub-Signature-256 is missing or does not match the body"
            )
        # Meta sends ASCII (non-ASCII escaped); anything else is kept as well as text can keep it.
        body = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
        row_id = inbox.append(ctx.db, body, now_ms())
        ctx.tree.tell_child("inbox", Wake(row_id))
        return _plain(200, "OK")

    @app.get("/api/whatsapp/webhook/unrouted")
    def unrouted() -> Any:
        """Payloads kept because no company owned their number (the newest 100)."""
        ctx.auth.admin()
        rows = inbox.unrouted(ctx.db)
        return respond(200, {"payloads": [{"inboxId": i, "phoneNumberIds": p} for i, p in rows]})

    app.route(PATH, method="GET", callback=verify)
    app.route(PATH, method="POST", callback=receive)
