"""CompanySession: one company's WhatsApp session, from opening its link to its link closing.

One actor lives for one connection attempt and drives the states a live link goes through
(starting, qr, pairing, connected). When the link closes, the actor ends with the close reason
and its supervisor (the Fleet) applies ``wafleet.actors.exit_policy``: restart now, back off, or
stay down. A bug in here is a crash like any other: the Fleet restarts the session with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.event
import pykka

from wafleet.actors.directory import SessionRecord
from wafleet.actors.errors import RateLimited
from wafleet.actors.figures import Op
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.journal import Journal
from wafleet.actors.links.base import HOST_EVENT, Link, LinkConflict
from wafleet.actors.links.factory import LinkFactory, LinkUnavailable
from wafleet.actors.links.sandbox import SandboxLink
from wafleet.actors.messages import (
    Close,
    Crash,
    Expire,
    LinkEvent,
    Probe,
    RequestPairing,
    Sandbox,
    Send,
    Started,
)
from wafleet.actors.metrics import Metrics
from wafleet.actors.status import ExitReason, Status
from wafleet.storage import pairing as pairing_log
from wafleet.storage.authstate import AuthStore
from wafleet.storage.clock import now_ms
from wafleet.storage.shared_state import SharedState

log = logging.getLogger(__name__)


class InjectedCrash(RuntimeError):
    pass


@dataclass(frozen=True)
class ConnectLimits:
    """QR rounds before falling back to a pairing code; pairing codes per hour and the cool-down
    when that limit trips (WhatsApp bans numbers that ask too often)."""

    max_qr_attempts: int = 3
    pairing_per_hour: int = 5
    pairing_cooldown: float = 1800.0
    qr_count_ttl: float = 900.0


@dataclass(frozen=True)
class SessionDeps:
    journal: Journal
    auth: AuthStore
    links: LinkFactory
    metrics: Metrics
    shared: SharedState = field(default_factory=SharedState)
    limits: ConnectLimits = field(default_factory=ConnectLimits)
    # Stores an inbound message once and announces it (wired by the composition root).
    inbound: Callable[[str, dict[str, Any]], None] = lambda company_id, data: None
    receipt: Callable[[str, dict[str, Any]], None] = lambda company_id, data: None


class CompanySession(SupervisedActor):
    def __init__(self, record: SessionRecord, deps: SessionDeps, on_exit: Callable[[Exit], None]) -> None:
        super().__init__(on_exit)
        self.record = record
        self.deps = deps
        self.link: Link | None = None
        self.pending_pair: str | None = None
        self.pairing_for: str | None = None
        self.pair_waiters: list[gevent.event.AsyncResult] = []
        self.blocked_until: int | None = None  # set when this session trips the pairing limit
        self.started_at = now_ms()  # the connect time is measured from here
        # What the link started from: saving it again on reconnect would cost an fsync per
        # session (100,000 of them after a restart).
        self.stored_creds: dict[str, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def on_start(self) -> None:
        record = self.record
        creds = self.deps.auth.load(record.company_id, record.link)
        self.stored_creds = creds
        if creds is None and record.pairing_phone:
            self.pending_pair = record.pairing_phone
        try:
            self.link = self.deps.links.create(record.link, record.company_id, self._emit)
        except LinkUnavailable as exc:
            reason = ExitReason.TRANSIENT if exc.transient else ExitReason.LINK_UNAVAILABLE
            self.exit(reason, str(exc))
            return
        if record.status != Status.STARTING:  # the fleet may have said so already (restart_required)
            reason = "resume" if creds else ("pairing" if self.pending_pair else "qr")
            self.deps.journal.transition(record, Status.STARTING, reason=reason)
        self.link.start(creds)

    def cleanup(self) -> None:
        """However the session ended (even in ``on_start``): its link's timers and connection go,
        and whoever waits for a pairing code hears why."""
        if self.link is not None:
            self.link.stop()
        for waiter in self.pair_waiters:
            waiter.set_exception(LinkConflict("the session stopped before a pairing code arrived"))
        self.pair_waiters.clear()

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.actor_ref.tell(LinkEvent(kind, data))
        except pykka.ActorDeadError:
            pass  # a late timer of a link whose session already ended

    # -- messages -------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case LinkEvent(kind=kind, data=data):
                return self._on_link(kind, data)
            case Sandbox(action=action, args=args):
                return self._sandbox(action, args)
            case RequestPairing(phone=phone):
                return self._request_pairing(phone)
            case Send(to=to, text=text):
                if self.record.status != "connected" or self.link is None:
                    raise LinkConflict(f"the session is {self.record.status}, not connected")
                return self.link.send(to, text)
            case Probe():
                if self.record.status != Status.CONNECTED or self.link is None:
                    return None
                return self.link.ping()
            case Expire(message=text):
                if self.link is not None:
                    self.link.stop()
                self.exit(ExitReason.ZOMBIE, text)
                return None
            case Close(mode=mode):
                return self._close(mode)
            case Started():
                return self.record
            case Crash():
                raise InjectedCrash("sandbox: injected crash")
        return super().on_receive(message)

    def _on_link(self, kind: str, data: dict[str, Any]) -> None:
        record, journal = self.record, self.deps.journal
        if kind == "qr":
            record.qr = {
                "code": data["code"],
                "expiresAt": now_ms() + int(data["ttl"] * 1000),
                "round": data["round"],
            }
            self.deps.metrics.incr("qr.rounds")
            if self.pending_pair:
                phone, self.pending_pair = self.pending_pair, None
                self._pair(phone)
                return
            limits = self.deps.limits
            rounds = self.deps.shared.qr_attempt(record.company_id, limits.qr_count_ttl)
            if rounds > limits.max_qr_attempts:
                self._qr_exhausted(rounds - 1)
                return
            if record.status != "qr":
                journal.transition(record, "qr", reason=f"round {data['round']}")
            else:
                journal.event(record.company_id, "qr", state="qr", data={"round": data["round"]})
        elif kind == "pairing_code":
            expires_in = int(data["ttl"])
            record.pairing = {"code": data["code"], "expiresAt": now_ms() + expires_in * 1000}
            self.deps.metrics.incr("pairing.codes")
            if record.status != "pairing":
                journal.transition(record, "pairing", reason="code issued")
            else:
                journal.event(record.company_id, "pairing_code", state="pairing")
            for waiter in self.pair_waiters:
                waiter.set({"code": data["code"], "expiresIn": expires_in})
            self.pair_waiters.clear()
            phone = self.pairing_for or ""
            pairing_log.record(
                journal.db, record.company_id, phone, "issued", data["code"], record.pairing["expiresAt"]
            )
            self.deps.shared.set_pairing(
                record.company_id,
                {
                    "codeHash": pairing_log.code_hash(data["code"]),
                    "phone": phone,
                    "expiresAt": record.pairing["expiresAt"],
                },
                expires_in,
            )
        elif kind == "pairing_expired":
            record.pairing = None
            self.deps.shared.clear_pairing(record.company_id)
            pairing_log.settle(journal.db, record.company_id, "expired")
            journal.event(record.company_id, "pairing_code", state=record.status, reason="expired")
        elif kind == "connected":
            creds = data.get("creds")
            if creds and creds != self.stored_creds:  # a resumed login is on disk already
                self.deps.auth.save(record.company_id, record.link, creds)
            record.phone = data.get("phone") or record.phone
            record.pairing_phone = None
            self.deps.shared.reset_qr(record.company_id)
            if record.pairing is not None:
                pairing_log.settle(journal.db, record.company_id, "used")
                self.deps.shared.clear_pairing(record.company_id)
            if record.status == Status.STARTING:  # no human in the loop: the link's own time
                self.deps.metrics.observe(Op.CONNECT, now_ms() - self.started_at)
            journal.transition(record, "connected", reason="linked")
        elif kind == HOST_EVENT:
            host_event = getattr(self.link, "host_event", None)
            if host_event is not None:
                host_event(data)  # the link turns it into the events above, in this greenlet
        elif kind == "message":
            self.deps.inbound(record.company_id, data)
        elif kind == "receipt":
            self.deps.receipt(record.company_id, data)
        elif kind == "closed":
            reason = str(data.get("reason", ExitReason.TRANSIENT))
            if self.link is not None:
                self.link.stop()
            extra = {k: v for k, v in data.items() if k not in ("reason", "message")}
            self.exit(reason, str(data.get("message", "")), **extra)
        else:
            log.warning("company %s: unknown link event %r", record.company_id, kind)

    def _sandbox(self, action: str, args: dict[str, Any]) -> None:
        link = self.link
        if not isinstance(link, SandboxLink):
            raise LinkConflict("this company's session does not use the sandbox link")
        if action == "scan":
            link.scan(args.get("phone") or self.record.company_phone or "15550000000")
        elif action == "enter_code":
            link.enter_code(args["code"])
        elif action == "inbound":
            link.inbound(args["from"], args["text"])
        elif action == "zombie":
            link.zombie()
            self.deps.links.silence_starts(self.record.company_id, int(args.get("starts", 0)))
        elif action == "disconnect":
            link.disconnect(
                args["reason"], args.get("message") or "sandbox: injected disconnect", **args.get("data", {})
            )
        else:
            raise LinkConflict(f"the sandbox has no action {action!r}")

    def _request_pairing(self, phone: str) -> gevent.event.AsyncResult:
        if self.record.status == "connected":
            raise LinkConflict("the session is already connected")
        waiter = gevent.event.AsyncResult()
        if self.record.status in ("qr", "pairing"):
            if not self._pair(phone):
                until = self.blocked_until or 0
                raise RateLimited(until / 1000 - time.time(), self._limit_message(until))
        else:
            self.pending_pair = phone  # asked for as soon as the link shows its first QR
        self.pair_waiters.append(waiter)
        return waiter

    def _pair(self, phone: str) -> bool:
        """Ask the link for a pairing code, within the company's limit (WhatsApp bans numbers
        that ask too often). Over the limit the session ends ``blocked`` for the cooldown."""
        limits, record = self.deps.limits, self.record
        allowed, retry_after = self.deps.shared.take_pairing_slot(
            record.company_id, limits.pairing_per_hour, 3600.0, limits.pairing_cooldown
        )
        if not allowed:
            until = int((time.time() + retry_after) * 1000)  # the Fleet records it from the exit
            self.deps.metrics.incr("pairing.limit_trips")
            pairing_log.record(self.deps.journal.db, record.company_id, phone, "refused")
            message = self._limit_message(until)
            for waiter in self.pair_waiters:
                waiter.set_exception(RateLimited(retry_after, message))
            self.pair_waiters.clear()
            self.blocked_until = until
            self.exit(ExitReason.BLOCKED, message, until=until)
            return False
        assert self.link is not None
        self.pairing_for = phone
        self.link.pair(phone)
        return True

    def _limit_message(self, until_ms: int) -> str:
        minutes = max(1, round((until_ms / 1000 - time.time()) / 60))
        return (
            f"pairing-code limit reached ({self.deps.limits.pairing_per_hour} an hour): "
            f"try again in {minutes} min"
        )

    def _qr_exhausted(self, rounds: int) -> None:
        """Nobody scanned: switch to a pairing code for the stored phone, or stop asking."""
        record = self.record
        phone = record.pairing_phone or record.company_phone
        self.deps.shared.reset_qr(record.company_id)
        if phone:
            self.deps.metrics.incr("pairing.fallbacks")
            self.deps.journal.event(
                record.company_id, "qr_exhausted", reason="fallback_to_pairing", data={"rounds": rounds}
            )
            self._pair(phone)
            return
        self.exit(
            ExitReason.QR_EXHAUSTED,
            f"no scan after {rounds} QR codes: give a phone number to get a pairing code instead",
            needs="phoneNumber",
        )

    def _close(self, mode: str) -> None:
        if self.link is not None:
            if mode == "logout":
                self.link.logout()
            else:
                self.link.stop()
        if mode == "logout":
            self.deps.auth.wipe(self.record.company_id)
        self.exit("normal", mode)
