"""A contract fake of Meta's Graph API (WhatsApp Cloud API) for tests and demos.

Follows Meta's documented send, webhook and error contracts and the saved responses in
``../shared/fixtures/meta-cloud/graph_api_responses/``:

* ``GET /{version}/{phone_number_id}`` -> the number's fields (display_phone_number, verified_name…);
* ``POST /{version}/{phone_number_id}/messages`` -> ``{messaging_product, contacts:[{input, wa_id}],
  messages:[{id: "wamid.…"}]}``;
* errors are ``{"error": {message: "(#code) Title", type, code, error_subcode?, error_data?, fbtrace_id}}``
  with Meta's HTTP statuses (401 for 190, 400 for the 13xxxx codes, 500 for 131000/131016);
* injected: 190 for a wrong/missing/expired token, 130429 over ``rate`` msgs/s per number, 131056 for a
  second accepted message to one recipient inside ``pair_interval`` (6 s), 131047 for recipients marked
  outside the 24-hour window (synchronously, or as an async ``failed`` status with ``window_errors="async"``),
  plus anything queued with :meth:`FakeGraph.fail_next`.

It also posts signed status webhooks (sent, delivered, read, failed) for a sent message, shaped like
the real payloads (whatsapp-api-js v25 fixtures), out of order and twice, like Meta does.

    fake = FakeGraph(tokens={"123456123": "tok"}, app_secret="s3cret").start()
    ... CloudConfig(base_url=fake.url, phone_number_id="123456123", access_token="tok") ...
    fake.post_statuses("http://127.0.0.1:8080/api/whatsapp/webhook/cloud", fake.sent[0]["id"])
    fake.stop()
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle
import httpx

# (title, HTTP status, error_data.details) per code, from Meta's error-code table.
ERRORS: dict[int, tuple[str, int, str]] = {
    1: ("API Unknown", 400, "Invalid request or possible server error."),
    2: ("API Service", 503, "Temporary due to downtime or due to being overloaded."),
    4: ("API Too Many Calls", 400, "The app has reached its API call rate limit."),
    80007: ("Rate limit issues", 400, "The WhatsApp Business Account has reached its rate limit."),
    130429: ("Rate limit hit", 400, "Cloud API message throughput has been reached."),
    131000: ("Something went wrong", 500, "Message failed to send due to an unknown error."),
    131016: ("Service unavailable", 500, "A service is temporarily unavailable."),
    131026: ("Message undeliverable", 400, "Unable to deliver message."),
    131047: (
        "Re-engagement message",
        400,
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        400,
        "Message failed to send because there were too many messages sent from this phone number to the same "
        "phone number in a short period of time.",
    ),
}
HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
EXPIRED_MESSAGE = (
    "Error validating access token: Session has expired on Friday, 26-Apr-24 06:00:00 PDT. "
    "The current time is Sunday, 28-Apr-24 03:40:10 PDT."
)


def fbtrace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(17)).decode().rstrip("=")[:23]


def new_wamid() -> str:
    return "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18\x12" + secrets.token_bytes(24)).decode().rstrip(
        "="
    )


def error_body(code: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    """Meta's error envelope for ``code`` (a Graph API response, not a webhook error object)."""
    title, _status, details = ERRORS.get(code, ("Unknown error", 400, ""))
    err: dict[str, Any] = {"message": message or f"(#{code}) {title}", "type": "OAuthException", "code": code}
    if code not in (190, 0) and details:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    err.update(extra)
    err["fbtrace_id"] = fbtrace_id()
    return {"error": err}


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for these exact bytes."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    """Serialise like Meta: compact, non-ASCII escaped as \\uXXXX (the signature covers these bytes)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class FakeGraph:
    def __init__(
        self,
        tokens: dict[str, str],
        app_secret: str = "fake-app-secret",
        *,
        rate: float = 80.0,
        pair_interval: float = 6.0,
        display_numbers: dict[str, str] | None = None,
        waba_id: str = "102290129340398",
        window_errors: str = "sync",  # "sync": 131047 answers the send; "async": 200 then a failed status
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.tokens = dict(tokens)
        self.app_secret = app_secret
        self.rate = rate
        self.pair_interval = pair_interval
        self.display_numbers = dict(display_numbers or {})
        self.waba_id = waba_id
        self.window_errors = window_errors
        self.clock = clock
        self.host, self.port = host, port
        self.outside_window: set[str] = set()  # recipients whose 24-hour window is closed
        self.expired: set[str] = set()  # phone_number_ids whose token has expired (190/463)
        self.sent: list[dict[str, Any]] = []  # accepted messages
        self.requests: list[dict[str, Any]] = []  # every request: method, path, status, code
        self.webhooks: list[dict[str, Any]] = []  # webhooks posted: url, payload, status
        # Called with the new wamid after a send is accepted and before it is answered: Meta's
        # status webhooks can overtake the answer, and a test reproduces that here.
        self.before_reply: Callable[[str], None] | None = None
        self._failures: deque[tuple[int, dict[str, Any] | str]] = deque()
        self._buckets: dict[str, tuple[float, float]] = {}  # phone_number_id -> (tokens, at)
        self._last_to: dict[tuple[str, str], float] = {}  # (phone_number_id, to) -> last accepted
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Graph API is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> FakeGraph:
        self._server = make_server(
            self.host, self.port, self.app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-graph", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------------------------
    def fail_next(self, code: int, *, times: int = 1, status: int | None = None, **extra: Any) -> None:
        """The next ``times`` sends answer Meta's error ``code`` (HTTP status from Meta's table)."""
        body = error_body(code, **extra)
        for _ in range(times):
            self._failures.append((status or ERRORS.get(code, ("", 400, ""))[1], body))

    def fail_next_raw(self, status: int, body: str = "Service Unavailable", *, times: int = 1) -> None:
        """The next sends answer a bare HTTP error without Meta's envelope (a proxy or outage)."""
        for _ in range(times):
            self._failures.append((status, body))

    def expire_token(self, phone_number_id: str) -> None:
        self.expired.add(phone_number_id)

    # -- the Graph API -------------------------------------------------------------------------
    def _build_app(self) -> bottle.Bottle:
        app = bottle.Bottle()
        app.route("/<version>/<pnid>", "GET", self._get_number)
        app.route("/<version>/<pnid>/messages", "POST", self._post_message)
        return app

    def _reply(self, status: int, body: dict[str, Any] | str, code: int | None = None) -> bottle.HTTPResponse:
        self.requests.append(
            {"method": bottle.request.method, "path": bottle.request.path, "status": status, "code": code}
        )
        headers = {"Content-Type": "application/json; charset=UTF-8", "x-fb-trace-id": fbtrace_id()}
        if status == 401:
            headers["WWW-Authenticate"] = (
                'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token"'
            )
        if isinstance(body, str):
            headers["Content-Type"] = "text/plain"
            return bottle.HTTPResponse(body=body, status=status, headers=headers)
        return bottle.HTTPResponse(body=json.dumps(body), status=status, headers=headers)

    def _error(self, code: int, **extra: Any) -> bottle.HTTPResponse:
        return self._reply(ERRORS.get(code, ("", 400, ""))[1], error_body(code, **extra), code)

    def _auth(self, pnid: str) -> bottle.HTTPResponse | None:
        header = bottle.request.get_header("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        expected = self.tokens.get(pnid)
        if token is None or expected is None or not hmac.compare_digest(token, expected):
            if token is not None and expected is None and token in self.tokens.values():
                # A good token for another number: Meta says the object does not exist for you.
                return self._reply(400, self._unknown_object(pnid), 100)
            return self._reply(
                401, error_body(190, "Invalid OAuth access token - Cannot parse access token"), 190
            )
        if pnid in self.expired:
            return self._reply(401, error_body(190, EXPIRED_MESSAGE, error_subcode=463), 190)
        return None

    @staticmethod
    def _unknown_object(pnid: str) -> dict[str, Any]:
        return {
            "error": {
                "message": f"Unsupported get request. Object with ID '{pnid}' does not exist, cannot be loaded "
                "due to missing permissions, or does not support this operation.",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
                "fbtrace_id": fbtrace_id(),
            }
        }

    def _display(self, pnid: str) -> str:
        return self.display_numbers.get(pnid) or f"+1 555-01{pnid[-5:-4] or '0'}-{pnid[-4:].rjust(4, '0')}"

    def _get_number(self, version: str, pnid: str) -> bottle.HTTPResponse:
        refused = self._auth(pnid)
        if refused is not None:
            return refused
        return self._reply(
            200,
            {
                "verified_name": "Fake Company",
                "code_verification_status": "VERIFIED",
                "display_phone_number": self._display(pnid),
                "quality_rating": "GREEN",
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
                "id": pnid,
            },
        )

    def _take_rate_token(self, pnid: str, now: float) -> bool:
        tokens, at = self._buckets.get(pnid, (self.rate, now))
        tokens = min(self.rate, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[pnid] = (tokens - 1.0 if ok else tokens, now)
        return ok

    def _post_message(self, version: str, pnid: str) -> bottle.HTTPResponse:
        refused = self._auth(pnid)
        if refused is not None:
            return refused
        try:
            body = json.loads(bottle.request.body.read() or b"null")
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or body.get("messaging_product") != "whatsapp"
            or not body.get("to")
            or body.get("type", "text") != "text"
            or not isinstance(body.get("text"), dict)
            or not body["text"].get("body")
        ):
            return self._reply(400, error_body(100, "(#100) Invalid parameter"), 100)
        to = str(body["to"]).lstrip("+")
        with self._lock:
            if self._failures:
                status, failure = self._failures.popleft()
                code = failure["error"]["code"] if isinstance(failure, dict) else None
                return self._reply(status, failure, code)
            now = self.clock()
            if not self._take_rate_token(pnid, now):
                return self._error(130429, error_subcode=2494055)
            if to in self.outside_window and self.window_errors == "sync":
                return self._error(131047)
            last = self._last_to.get((pnid, to))
            if last is not None and now - last < self.pair_interval:
                return self._error(131056, error_subcode=2494055)
            self._last_to[(pnid, to)] = now
            wamid = new_wamid()
            self.sent.append(
                {
                    "id": wamid,
                    "phone_number_id": pnid,
                    "to": to,
                    "text": body["text"]["body"],
                    "body": body,
                    "at": time.time(),
                    "outside_window": to in self.outside_window,
                }
            )
        if self.before_reply is not None:
            self.before_reply(wamid)
        return self._reply(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": str(body["to"]), "wa_id": to}],
                "messages": [{"id": wamid}],
            },
        )

    # -- webhooks back to the app --------------------------------------------------------------
    def status_payload(self, wamid: str, statuses: Iterable[str] = ("sent",)) -> dict[str, Any]:
        """A ``statuses`` webhook for a sent message, shaped like the v25 fixtures (one entry, one change)."""
        msg = next((m for m in self.sent if m["id"] == wamid), None)
        if msg is None:
            raise KeyError(f"no message {wamid!r} was sent through the fake")
        pnid, to = msg["phone_number_id"], msg["to"]
        stamp = str(int(msg["at"]))
        conversation_id = hashlib.sha1(f"{pnid}:{to}".encode()).hexdigest()[:30]
        items: list[dict[str, Any]] = []
        for status in statuses:
            item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": stamp, "recipient_id": to}
            if status in ("sent", "delivered"):  # like the v25 fixtures: pricing only on "sent"
                item["conversation"] = {
                    "id": conversation_id,
                    "expiration_timestamp": str(int(msg["at"]) + 86400),
                    "origin": {"type": "service"},
                }
                if status == "sent":
                    item["pricing"] = {
                        "billable": True,
                        "pricing_model": "PMP",
                        "type": "regular",
                        "category": "service",
                    }
            elif status == "failed":
                title, _status, details = ERRORS[131047]
                item["errors"] = [
                    {
                        "code": 131047,
                        "title": title,
                        "message": title,
                        "error_data": {"details": details},
                        "href": HREF,
                    }
                ]
            items.append(item)
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": self.waba_id,
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "".join(
                                        c for c in self._display(pnid) if c.isdigit()
                                    ),
                                    "phone_number_id": pnid,
                                },
                                "statuses": items,
                                "contacts": [{"profile": {"name": "Fake Customer"}, "wa_id": to}],
                            },
                        }
                    ],
                }
            ],
        }

    def signed(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The exact bytes Meta would post and its headers (both signatures, like Meta sends)."""
        body = encode(payload)
        return body, {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature": "sha1=" + hmac.new(self.app_secret.encode(), body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": sign(self.app_secret, body),
        }

    def post_webhook(self, url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> int:
        body, headers = self.signed(payload)
        try:
            status = httpx.post(url, content=body, headers=headers, timeout=timeout).status_code
        except httpx.HTTPError:
            status = 0
        self.webhooks.append({"url": url, "payload": payload, "body": body, "status": status})
        return status

    def post_statuses(
        self,
        url: str,
        wamid: str,
        statuses: Iterable[str] | None = None,
        *,
        shuffle: bool = True,
        twice: bool = True,
        batch: bool = False,
        seed: int | None = None,
    ) -> list[int]:
        """Post the message's status webhooks like Meta: out of order and each one twice (by default).

        ``statuses`` defaults to sent, delivered, read — or sent, failed (131047) for a message
        accepted outside the 24-hour window in ``window_errors="async"`` mode. ``batch`` puts them
        all in one payload's ``statuses[]``. Returns the HTTP statuses the app answered (0: unreachable).
        """
        if statuses is None:
            msg = next((m for m in self.sent if m["id"] == wamid), None)
            statuses = ("sent", "failed") if msg and msg["outside_window"] else ("sent", "delivered", "read")
        order = list(statuses)
        if batch:
            payloads = [self.status_payload(wamid, order)]
        else:
            payloads = [self.status_payload(wamid, [s]) for s in order]
        if twice:
            payloads = payloads + [json.loads(json.dumps(p)) for p in payloads]
        if shuffle:
            rng = random.Random(seed)
            while True:
                rng.shuffle(payloads)
                # out of order for real: the first posted status is not the earliest one
                if (
                    len(order) < 2
                    or batch
                    or payloads[0]["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] != order[0]
                ):
                    break
        return [self.post_webhook(url, p) for p in payloads]
