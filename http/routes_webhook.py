"""Meta's webhook URLs: the verify handshake and signed event notifications; the admin's lists of
kept payloads.

* ``/api/whatsapp/webhook/cloud``: the platform's Meta app. Verify token WHATSAPP_VERIFY_TOKEN,
  signature by WHATSAPP_WEBHOOK_SECRET only. Its payloads route only to companies without an app
  of their own; payloads naming a number nobody owns yet are kept (and replayed when a company
  claims the number).
* ``/api/whatsapp/webhook/cloud/{companyId}``: a company with its own Meta app. Its own verify
  token and its own app secret only; its payloads may touch that company's number only.

Not behind bearer auth (Meta calls them). POST checks ``X-Hub-Signature-256`` over the raw body
bytes in constant time before anything reads the body as JSON: exactly one HMAC per request. A
missing or wrong signature is a 401 and nothing is stored; an unknown company, or one without its
own app secret, gets the same 401 (the URL says nothing about which companies exist). A signed
body is committed to the webhook inbox before the 200, in a group commit with the payloads that
arrived meanwhile, and processed off the request by actors.webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import bottle

from wafleet.actors.webhook import Wake
from wafleet.http.api import ApiError, raw_body, respond
from wafleet.http.context import Context
from wafleet.http.webhook_secrets import WebhookSecrets
from wafleet.storage import inbox
from wafleet.storage.clock import now_ms

PATH = "/api/whatsapp/webhook/cloud"
COMMIT_TIMEOUT = 30.0  # seconds a request waits for its commit before answering 503
# A key nobody holds: an unknown company's request costs the same one HMAC as a known one's.
_NO_KEY = hashlib.sha256(b"wafleet: no app secret").digest()


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


def _cursor() -> tuple[int, int | None]:
    query = bottle.request.query
    raw_limit, raw_cursor = query.get("limit"), query.get("cursor")
    limit = 100
    if raw_limit is not None:
        if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= 1000:
            raise ApiError(400, "invalid_query", "limit must be a whole number from 1 to 1000")
        limit = int(raw_limit)
    cursor = None
    if raw_cursor is not None:
        if not re.fullmatch(r"[0-9]{1,18}", raw_cursor):
            raise ApiError(400, "invalid_query", "cursor must be the nextCursor of the previous page")
        cursor = int(raw_cursor)
    return limit, cursor


def install(app: bottle.Bottle, ctx: Context) -> None:
    secrets = WebhookSecrets(ctx.db, ctx.cipher, ctx.settings.webhook_secret, ctx.settings.verify_token)
    writer = inbox.InboxWriter(ctx.db, on_commit=lambda: ctx.tree.tell_child("inbox", Wake()))
    max_body = ctx.settings.webhook_max_body

    def verify(expected: bytes | None) -> Any:
        query = bottle.request.query
        token = (query.get("hub.verify_token") or "").encode("utf-8", "surrogateescape")
        challenge = query.get("hub.challenge")
        ok = (
            expected is not None
            and query.get("hub.mode") == "subscribe"
            and challenge is not None
            and hmac.compare_digest(token, expected)
        )
        return _plain(200, challenge) if ok else _plain(403, "Forbidden")

    # WHATSAPP_VALIDATE_WEBHOOKS=false (the settings allow it only with the sandbox on): a local
    # test rig may post unsigned payloads.
    validate = ctx.settings.guide.validate_webhooks

    def receive(secret: bytes | None, source: str | None) -> Any:
        raw = raw_body(max_body)
        header = bottle.request.get_header("X-Hub-Signature-256")
        if validate and (not signature_ok(secret or _NO_KEY, raw, header) or secret is None):
            raise ApiError(
                401, "invalid_signature", "X-Hub-Signature-256 is missing or does not match the body"
            )
        # Meta sends ASCII (non-ASCII escaped); anything else is kept as well as text can keep it.
        body = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
        try:
            writer.submit(body, now_ms(), source, timeout=COMMIT_TIMEOUT)
        except Exception:
            raise ApiError(503, "inbox_unavailable", "the payload could not be stored; retry later") from None
        return _plain(200, "OK")

    def global_receive() -> Any:
        if validate and secrets.platform.secret is None:
            raise ApiError(
                503, "webhook_not_configured", "WHATSAPP_WEBHOOK_SECRET is not set: cannot check signatures"
            )
        return receive(secrets.platform.secret, None)

    def company_keys(company_id: str) -> Any:
        return secrets.company(company_id) if len(company_id) <= 64 else None

    def company_verify(company_id: str) -> Any:
        keys = company_keys(company_id)
        return verify(keys.verify_token if keys else None)

    def company_receive(company_id: str) -> Any:
        keys = company_keys(company_id)
        return receive(keys.secret if keys else None, company_id)

    def kept(kind: str) -> Any:
        ctx.auth.admin()
        limit, cursor = _cursor()
        page, next_cursor = inbox.kept(ctx.db, kind, limit, cursor)
        payloads = [
            {
                "inboxId": k.id,
                "phoneNumberIds": k.phone_number_ids,
                "receivedAt": k.received_at,
                "source": k.source,
            }
            for k in page
        ]
        return respond(200, {"payloads": payloads, "nextCursor": str(next_cursor) if next_cursor else None})

    @app.get("/api/whatsapp/webhook/unrouted")
    def unrouted() -> Any:
        """Global-URL payloads kept because no company owned their number, newest first, paged."""
        return kept("unrouted")

    @app.get("/api/whatsapp/webhook/rejected")
    def rejected() -> Any:
        """Payloads naming a number their URL may not touch (not applied), newest first, paged."""
        return kept("rejected")

    app.route(PATH, method="GET", callback=lambda: verify(secrets.platform.verify_token))
    app.route(PATH, method="POST", callback=global_receive)
    app.route(f"{PATH}/<company_id>", method="GET", callback=company_verify)
    app.route(f"{PATH}/<company_id>", method="POST", callback=company_receive)
