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
from typing import Annotated, Any

import bottle
from pydantic import ConfigDict, Field, StringConstraints

from wafleet.actors.webhook import Wake
from wafleet.http.api import ApiError, raw_body, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, Content, declare
from wafleet.http.fields import Query, Reply, query_int
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


Said = Annotated[str, StringConstraints(max_length=2048)]


class Handshake(Query):
    """Meta's subscription check: answered with ``hub.challenge`` when the token matches (any
    other parameter Meta may add is ignored)."""

    model_config = ConfigDict(extra="ignore")

    mode: Said | None = Field(default=None, alias="hub.mode")
    verify_token: Said | None = Field(default=None, alias="hub.verify_token")
    challenge: Said | None = Field(default=None, alias="hub.challenge")


class Page(Query):
    limit: query_int(1, 1000) = 100
    cursor: query_int(0, 10**18 - 1) | None = None  # the previous page's nextCursor


class Kept(Reply):
    inboxId: int  # noqa: N815
    phoneNumberIds: Any  # noqa: N815
    receivedAt: int  # noqa: N815
    source: str | None


class KeptPage(Reply):
    payloads: list[Kept]
    nextCursor: str | None  # noqa: N815


PLAIN = {"type": "string"}
SIGNED = Content(
    media="application/json",
    schema={"type": "object", "description": "Meta's notification, signed as it was sent"},
)
SIGNATURE = {"X-Hub-Signature-256": {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"}}


def install(app: bottle.Bottle, ctx: Context) -> None:
    secrets = WebhookSecrets(ctx.db, ctx.cipher, ctx.settings.webhook_secret, ctx.settings.verify_token)
    writer = inbox.InboxWriter(ctx.db, on_commit=lambda: ctx.tree.tell_child("inbox", Wake()))
    max_body = ctx.settings.webhook_max_body

    def verify(expected: bytes | None, query: Handshake) -> Any:
        token = (query.verify_token or "").encode("utf-8", "surrogateescape")
        challenge = query.challenge
        ok = (
            expected is not None
            and query.mode == "subscribe"
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

    def company_verify(company_id: str, query: Handshake) -> Any:
        keys = company_keys(company_id)
        return verify(keys.verify_token if keys else None, query)

    def company_receive(company_id: str) -> Any:
        keys = company_keys(company_id)
        return receive(keys.secret if keys else None, company_id)

    def kept(kind: str, query: Page) -> Any:
        page, next_cursor = inbox.kept(ctx.db, kind, query.limit, query.cursor)
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

    tag = "meta webhook"
    declare(
        app, "GET", "/api/whatsapp/webhook/unrouted", lambda query: kept("unrouted", query),
        summary="Payloads kept because no company owned their number, newest first", tag=tag,
        access=Access.ADMIN, query=Page, ok={200: KeptPage},
    )  # fmt: skip
    declare(
        app, "GET", "/api/whatsapp/webhook/rejected", lambda query: kept("rejected", query),
        summary="Payloads naming a number their URL may not touch (not applied), newest first",
        tag=tag, access=Access.ADMIN, query=Page, ok={200: KeptPage},
    )  # fmt: skip
    handshake = {
        200: Content(media="text/plain", schema=PLAIN, description="hub.challenge, as sent"),
        403: Content(media="text/plain", schema=PLAIN, description="Wrong mode or verify token"),
    }
    received = {200: Content(media="text/plain", schema=PLAIN, description="Stored: Meta stops retrying")}
    declare(
        app, "GET", PATH, lambda query: verify(secrets.platform.verify_token, query),
        summary="Meta's verify handshake (WHATSAPP_VERIFY_TOKEN)", tag=tag, access=Access.META,
        query=Handshake, ok=handshake,
    )  # fmt: skip
    declare(
        app, "POST", PATH, global_receive, summary="Meta's signed notifications (the platform's app)",
        tag=tag, access=Access.META, payload=SIGNED, headers=SIGNATURE, ok=received, errors=(401, 408, 413),
    )  # fmt: skip
    declare(
        app, "GET", f"{PATH}/<company_id>", company_verify,
        summary="Meta's verify handshake for a company with its own Meta app", tag=tag,
        access=Access.META, query=Handshake, ok=handshake,
    )  # fmt: skip
    declare(
        app, "POST", f"{PATH}/<company_id>", company_receive,
        summary="Meta's signed notifications for a company with its own Meta app", tag=tag,
        access=Access.META, payload=SIGNED, headers=SIGNATURE, ok=received, errors=(401, 408, 413),
    )  # fmt: skip
