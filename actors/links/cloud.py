"""The Cloud API link: a company's number on the WhatsApp Business Cloud API (Meta Graph API).

No QR and no pairing: ``start`` checks the number with ``GET /{version}/{phone_number_id}`` in a
greenlet and reports ``connected`` (or ``closed`` with reason ``auth`` / ``transient``). Inbound
messages and statuses arrive at our webhook, not here.

``send`` makes ONE attempt and classifies a failure by Meta's ``error.code`` (never by the HTTP
status, which Meta does not keep consistent): see :func:`classify` (Meta's error-code table). The
caller (the outbox) owns retries, backoff and jitter. Before the attempt the link waits for a token
from its bucket (``throughput`` msgs/s, cooperative) and refuses to send to a recipient that hit the
pair limit (131056) until its "not before" time has passed.

The access token never appears in a log line, an exception or an event.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import httpx

from wafleet.actors.links.base import Emit, LinkConflict, SendError
from wafleet.actors.status import ExitReason

log = logging.getLogger(__name__)

# Retryable codes -> a base wait in seconds (a hint: the caller adds backoff with jitter).
RETRYABLE: dict[int, float] = {
    1: 2.0,  # API unknown
    2: 2.0,  # API service (temporarily unavailable)
    4: 30.0,  # app-level Graph API call rate limit: back off longer
    80007: 30.0,  # WABA rate limit
    130429: 1.0,  # throughput (mps) reached
    131000: 2.0,  # something went wrong
    131016: 2.0,  # service unavailable
}
PAIR_LIMIT = 131056  # (business, consumer) pair rate limit: that recipient only, >= 6 s
PAIR_WAIT = 6.0
AUTH_CODES = (0, 190)  # token invalid / expired
FINAL_CODES = (131047, 131026)  # 24-hour window (needs a template) / undeliverable
NETWORK_WAIT = 2.0
NOT_CONNECTED_WAIT = 5.0


@dataclass(frozen=True)
class CloudConfig:
    phone_number_id: str
    access_token: str = field(repr=False)
    base_url: str = "https://graph.facebook.com"
    version: str = "v21.0"
    throughput: float = 80.0  # messages per second for this number
    timeout: float = 10.0  # seconds, per HTTP request
    check_every: float = 600.0  # seconds between the health monitor's checks of the number
    connect_timeout: float = 10.0  # seconds to open a connection (WHATSAPP_CONNECTION_TIMEOUT)
    keepalive: float = (
        30.0  # seconds an idle connection to the Graph API is kept (WHATSAPP_KEEPALIVE_INTERVAL)
    )

    def client(self) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=httpx.Limits(keepalive_expiry=self.keepalive),
        )

    def url(self, *parts: str) -> str:
        return "/".join([self.base_url.rstrip("/"), self.version.strip("/"), self.phone_number_id, *parts])


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts up to ``capacity``; waits cooperatively."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = gevent.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("throughput must be > 0 messages per second")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self.clock = clock
        self.sleep = sleep
        self._tokens = self.capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds waited."""
        waited = 0.0
        while True:
            self._refill()
            if self._tokens >= 1.0 - 1e-9:  # float slack: a clock step may not add a full token
                self._tokens = max(0.0, self._tokens - 1.0)
                return waited
            wait = (1.0 - self._tokens) / self.rate
            self.sleep(wait)
            waited += wait


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _error_object(body: Any) -> dict[str, Any] | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return None


def _retry_after_header(headers: httpx.Headers | None) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(status: int, body: Any, headers: httpx.Headers | None = None) -> SendError:
    """The :class:`SendError` for a failed Graph API response, by Meta's ``error.code``."""
    err = _error_object(body)
    raw: dict[str, Any] = body if isinstance(body, dict) else {}
    if err is None or not isinstance(err.get("code"), int):
        if status >= 500 or status == 429:
            hint = max(NETWORK_WAIT, _retry_after_header(headers) or 0.0)
            return SendError(f"Graph API answered HTTP {status}", retry_after=hint, raw=raw)
        if status == 401:
            return SendError(f"Graph API answered HTTP {status}", auth=True, raw=raw)
        return SendError(f"Graph API answered HTTP {status} without an error code", final=True, raw=raw)
    code: int = err["code"]
    details = (
        (err.get("error_data") or {}).get("details") if isinstance(err.get("error_data"), dict) else None
    )
    message = str(err.get("message") or f"(#{code})")
    if details and details not in message:
        message = f"{message}: {details}"
    header_hint = _retry_after_header(headers) or 0.0
    if code in AUTH_CODES:
        return SendError(message, code=code, auth=True, raw=raw)
    if code == PAIR_LIMIT:
        return SendError(message, code=code, retry_after=max(PAIR_WAIT, header_hint), raw=raw)
    if code in RETRYABLE:
        return SendError(message, code=code, retry_after=max(RETRYABLE[code], header_hint), raw=raw)
    if code in FINAL_CODES or status < 500:
        return SendError(message, code=code, final=True, raw=raw)
    return SendError(message, code=code, retry_after=max(NETWORK_WAIT, header_hint), raw=raw)


class CloudLink:
    def __init__(
        self,
        company_id: str,
        emit: Emit,
        config: CloudConfig,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = gevent.sleep,
    ) -> None:
        self.company_id = company_id
        self.emit = emit
        self.config = config
        self._own_http = http is None
        self.http = http if http is not None else config.client()
        self.clock = clock
        self.bucket = TokenBucket(config.throughput, clock=clock, sleep=sleep)
        self._not_before: dict[str, float] = {}  # recipient -> monotonic time (after 131056)
        self._check: gevent.Greenlet | None = None
        self._checked_at = clock()  # the number was last checked (start, or a health probe)
        self._state = "idle"  # idle | starting | connected | closed
        self.phone: str | None = None

    def __repr__(self) -> str:
        return f"CloudLink(company={self.company_id!r}, phone_number_id={self.config.phone_number_id!r})"

    @property
    def state(self) -> str:
        return self._state

    # -- driven by the session -------------------------------------------------------------
    def start(self, creds: dict[str, Any] | None) -> None:
        self._kill_check()
        if self._own_http and self.http.is_closed:
            self.http = self.config.client()
        self._state = "starting"
        self._check = gevent.spawn(self._check_number)

    def pair(self, phone: str) -> None:
        raise LinkConflict("the Cloud API has no pairing codes")

    def ping(self) -> gevent.event.AsyncResult:
        """No connection to go silent: the number is checked again at a slow cadence
        (``check_every``); between checks the link answers for itself. A refused token closes
        the link (``auth``); an unreachable Graph API leaves the answer unset (silent)."""
        answer = gevent.event.AsyncResult()
        if self._state != "connected":
            answer.set(False)
        elif self.clock() - self._checked_at < self.config.check_every:
            answer.set(True)
        else:
            self._checked_at = self.clock()
            gevent.spawn(self._recheck, answer)
        return answer

    def _recheck(self, answer: gevent.event.AsyncResult) -> None:
        try:
            resp = self.http.get(self.config.url(), headers=self._headers())
        except httpx.HTTPError:
            return  # silent: the monitor's wait times out and it reconnects (which checks again)
        if resp.status_code == 200 and _error_object(_json(resp)) is None:
            answer.set(True)
            return
        error = classify(resp.status_code, _json(resp), resp.headers)
        if error.auth:
            self._close(ExitReason.AUTH, _scrub(str(error), self.config.access_token), code=error.code)
            answer.set(False)
        else:
            answer.set(True)  # Meta answered: a reconnect would not change its trouble

    def logout(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._kill_check()
        self._state = "closed"
        if self._own_http:
            self.http.close()

    def send(self, to: str, text: str) -> str:
        if self._state != "connected":
            raise SendError("the Cloud API link is not connected", retry_after=NOT_CONNECTED_WAIT)
        to = to.strip()
        wait = self._pair_wait(to)
        if wait > 0:
            raise SendError(
                f"(#{PAIR_LIMIT}) pair rate limit: not sending to this recipient for {wait:.1f} s",
                code=PAIR_LIMIT,
                retry_after=wait,
            )
        self.bucket.take()
        if self._state != "connected":  # stopped while waiting for a token
            raise SendError("the Cloud API link is not connected", retry_after=NOT_CONNECTED_WAIT)
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": text, "preview_url": False},
        }
        try:
            resp = self.http.post(self.config.url("messages"), json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            kind = "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else "NETWORK"
            raise SendError(self._network_message(exc), retry_after=NETWORK_WAIT, kind=kind) from None
        payload = _json(resp)
        if resp.status_code == 200 and _error_object(payload) is None:
            try:
                return str(payload["messages"][0]["id"])
            except (KeyError, IndexError, TypeError):
                # Meta may have accepted it: retrying could send it twice. Fail it loudly instead.
                raise SendError(
                    "Graph API answered 200 without a message id", final=True, raw=_dict(payload)
                ) from None
        error = classify(resp.status_code, payload, resp.headers)
        if self.config.access_token and self.config.access_token in str(error):
            error = SendError(
                _scrub(str(error), self.config.access_token),
                code=error.code,
                retry_after=error.retry_after,
                final=error.final,
                auth=error.auth,
                raw=error.raw,
            )
        if error.code == PAIR_LIMIT:
            self._not_before[to] = self.clock() + (error.retry_after or PAIR_WAIT)
        if error.auth:
            self._close(ExitReason.AUTH, str(error), code=error.code)
        log.info("company %s: send failed: code=%s %s", self.company_id, error.code, error)
        raise error

    # -- internals ---------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token}"}

    def _network_message(self, exc: Exception) -> str:
        return _scrub(f"Graph API unreachable: {type(exc).__name__}: {exc}", self.config.access_token)

    def _pair_wait(self, to: str) -> float:
        now = self.clock()
        if len(self._not_before) > 1000:
            self._not_before = {k: v for k, v in self._not_before.items() if v > now}
        until = self._not_before.get(to)
        if until is None:
            return 0.0
        if until <= now:
            del self._not_before[to]
            return 0.0
        return until - now

    def _check_number(self) -> None:
        try:
            resp = self.http.get(self.config.url(), headers=self._headers())
        except httpx.HTTPError as exc:
            self._close(ExitReason.TRANSIENT, self._network_message(exc))
            return
        payload = _json(resp)
        if resp.status_code == 200 and _error_object(payload) is None:
            data = _dict(payload)
            digits = re.sub(r"\D", "", str(data.get("display_phone_number") or ""))
            self.phone = digits or self.config.phone_number_id
            self._state = "connected"
            self.emit("connected", {"phone": self.phone, "creds": None})
            return
        error = classify(resp.status_code, payload, resp.headers)
        message = _scrub(str(error), self.config.access_token)
        if error.auth or (error.final and not resp.status_code >= 500):
            # 190/0, or any other refusal (unknown number id, permissions): needs new credentials.
            self._close(ExitReason.AUTH, message, code=error.code)
        else:
            self._close(ExitReason.TRANSIENT, message, code=error.code)

    def _close(self, reason: str, message: str, code: int | None = None) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        data: dict[str, Any] = {"reason": reason, "message": message}
        if code is not None:
            data["code"] = code
        log.warning("company %s: cloud link closed (%s): %s", self.company_id, reason, message)
        self.emit("closed", data)

    def _kill_check(self) -> None:
        if self._check is not None and gevent.getcurrent() is not self._check:
            self._check.kill(block=False)
        self._check = None


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
