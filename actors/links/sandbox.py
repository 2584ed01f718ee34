"""The sandbox link: a simulated WhatsApp inside the process, like a payment provider's test mode.

Its far side is driven by API calls: a QR is "scanned", a pairing code "entered", a disconnect of
any close reason injected. QR rounds follow WhatsApp's cadence (60 s first, 20 s after, shorter
when configured) and every round brings a new code.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event

from wafleet.actors.errors import WrongCode
from wafleet.actors.links.base import Emit, LinkConflict, SendError
from wafleet.storage.clock import iso, now_ms

PAIRING_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # WhatsApp's: no 0, O, I, U


def new_pairing_code(rng: random.Random) -> str:
    raw = "".join(rng.choice(PAIRING_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


@dataclass(frozen=True)
class SandboxTiming:
    qr_first: float = 60.0
    qr_next: float = 20.0
    pairing_ttl: float = 60.0
    reconnect: float = 0.05  # how long a stored login takes to come back


class SandboxLink:
    def __init__(
        self,
        company_id: str,
        emit: Emit,
        timing: SandboxTiming,
        rng: random.Random,
        delivered: deque[dict[str, Any]] | None = None,
        silent: bool = False,
    ) -> None:
        self.company_id = company_id
        self.emit = emit
        self.timing = timing
        self.rng = rng
        self._timer: gevent.Greenlet | None = None
        self._round = 0
        self._code: str | None = None  # the pairing code the phone must enter
        self._pair_phone: str | None = None
        self._state = "idle"  # idle | qr | pairing | connecting | connected | closed
        # the zombie fault: the far side stops answering without closing (a start never ends)
        self.silent = silent
        # What reached "WhatsApp": the far side's memory, kept by the factory across restarts.
        self.delivered: deque[dict[str, Any]] = delivered if delivered is not None else deque(maxlen=1000)

    # -- driven by the session -------------------------------------------------------------
    def start(self, creds: dict[str, Any] | None) -> None:
        if self.silent:
            self._state = "connecting"
            return
        if creds:
            self._state = "connecting"
            self._later(self.timing.reconnect, self._resume, creds)
        else:
            self._next_qr()

    def pair(self, phone: str) -> None:
        if self._state in ("connected", "closed"):
            raise LinkConflict(f"cannot request a pairing code while {self._state}")
        self._cancel()
        self._pair_phone = phone
        self._code = new_pairing_code(self.rng)
        self._state = "pairing"
        self.emit("pairing_code", {"code": self._code, "ttl": self.timing.pairing_ttl})
        self._later(self.timing.pairing_ttl, self._pairing_expired)

    def ping(self) -> gevent.event.AsyncResult:
        answer = gevent.event.AsyncResult()
        if not self.silent:
            answer.set(self._state == "connected")
        return answer

    def send(self, to: str, text: str) -> str:
        if self.silent:
            raise SendError("the sandbox link does not answer (zombie)", retry_after=5.0, kind="TIMEOUT")
        if self._state != "connected":
            raise SendError("the sandbox link is not connected", retry_after=5.0)
        wa_id = "wamid.sandbox." + secrets.token_hex(12)
        self.delivered.append({"to": to, "text": text, "waId": wa_id, "at": iso(now_ms())})
        return wa_id

    def logout(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._cancel()
        self._state = "closed"

    # -- the far side (the customer's phone, WhatsApp's servers) ------------------------------
    def zombie(self) -> None:
        """The link goes silent without closing: no event, no answer to pings or sends."""
        if self._state in ("idle", "closed"):
            raise LinkConflict("the link is not open")
        self._cancel()
        self.silent = True

    def _answering(self) -> None:
        if self.silent:
            raise LinkConflict("the link is silent (zombie): nothing reaches it")

    def scan(self, phone: str) -> None:
        self._answering()
        if self._state != "qr":
            raise LinkConflict("no QR code is being shown: nothing to scan")
        self._connect(phone)

    def enter_code(self, code: str) -> None:
        self._answering()
        if self._state != "pairing" or self._code is None:
            raise LinkConflict("no pairing code is pending")
        if _normalise(code) != _normalise(self._code):
            raise WrongCode("the code does not match the pending pairing code")
        self._connect(self._pair_phone or "")

    def inbound(self, peer: str, text: str) -> None:
        """A customer writes in."""
        self._answering()
        if self._state != "connected":
            raise LinkConflict("the session is not connected: no message can arrive")
        self.emit(
            "message",
            {
                "peer": peer,
                "type": "text",
                "text": text,
                "media": None,
                "wa_id": "wamid.sandbox.in." + secrets.token_hex(12),
            },
        )

    def disconnect(self, reason: str, message: str, **data: Any) -> None:
        if self._state in ("idle", "closed"):
            raise LinkConflict("the link is not open")
        self.stop()
        self.emit("closed", dict(data, reason=reason, message=message))

    # -- internals ---------------------------------------------------------------------------
    def _next_qr(self) -> None:
        self._round += 1
        ttl = self.timing.qr_first if self._round == 1 else self.timing.qr_next
        ref = base64.b64encode(secrets.token_bytes(18)).decode()
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        code = f"2@{ref},{key},{self.company_id},{self._round}"
        self._state = "qr"
        self.emit("qr", {"code": code, "ttl": ttl, "round": self._round})
        self._later(ttl, self._next_qr)

    def _pairing_expired(self) -> None:
        # Like WhatsApp: an unused code lapses and the device goes back to showing QR codes.
        self._code = None
        self.emit("pairing_expired", {})
        self._next_qr()

    def _resume(self, creds: dict[str, Any]) -> None:
        self._state = "connected"
        self.emit("connected", {"phone": creds.get("phone"), "creds": creds})

    def _connect(self, phone: str) -> None:
        self._cancel()
        self._state = "connected"
        creds = {"phone": phone, "device": secrets.token_hex(8)}
        self.emit("connected", {"phone": phone, "creds": creds})

    def _later(self, seconds: float, fn: Any, *args: Any) -> None:
        self._timer = gevent.spawn_later(seconds, fn, *args)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.kill(block=False)
            self._timer = None


def _normalise(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()
