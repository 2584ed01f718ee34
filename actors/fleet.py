"""Fleet: simple_one_for_one supervisor with one CompanySession per running company.

It owns the directory of session records, starts and stops sessions, and decides after every
exit: restart now (``restart_required``), back off with full jitter (crash, ``transient``,
``replaced`` after a cool-off), or stay down (``logged_out``, ``banned``, ``auth``, too many
restarts inside the window -> ``failed``). Many sessions crashing together trips the Fleet's
own intensity: it stops its children and escalates to the Root.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import pykka

from wafleet.actors.boot import Boot
from wafleet.actors.directory import Directory, SessionRecord
from wafleet.actors.errors import Booting, RateLimited
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.links.base import LinkConflict
from wafleet.actors.links.factory import LinkUnavailable
from wafleet.actors.messages import (
    ChildExited,
    Cleanup,
    Close,
    Crash,
    CreateCompany,
    DeleteCompany,
    Initialize,
    Ping,
    Reconnect,
    RequestPairing,
    Sandbox,
    Send,
    Shutdown,
    StartChild,
    Started,
    StopSession,
    UpdateCompany,
)
from wafleet.actors.restart import Intensity, RestartPolicy, RestartTracker
from wafleet.actors.session import CompanySession, SessionDeps
from wafleet.storage import companies, inbox
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.tokens import hash_token, new_token

log = logging.getLogger(__name__)

FINAL_REASONS = {"logged_out", "banned", "auth"}


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class AtCapacity(Exception):
    pass


@dataclass(frozen=True)
class FleetConfig:
    policy: RestartPolicy
    max_sessions: int = 1000
    boot_rate: float = 500.0  # sessions restored per second on boot
    replaced_cooloff: float = 30.0
    escalate_after: int = 20  # crashes inside escalate_period, at least; or half the fleet
    escalate_period: float = 10.0
    gauge_interval: float = 1.0


@dataclass
class Child:
    generation: int
    tracker: RestartTracker
    ref: pykka.ActorRef[Any] | None = None
    timer: gevent.Greenlet | None = None
    closing: bool = False  # the fleet itself asked it to stop
    replaced: deque[float] = field(default_factory=deque)


class Fleet(SupervisedActor):
    def __init__(
        self,
        *,
        db: Database,
        directory: Directory,
        deps: SessionDeps,
        config: FleetConfig,
        on_exit: Callable[[Exit], None],
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.db = db
        self.directory = directory
        self.deps = deps
        self.journal = deps.journal
        self.config = config
        self.rng = rng or random.Random()
        self.children: dict[str, Child] = {}
        self.intensity = Intensity(config.escalate_after, config.escalate_period)
        self._background: list[gevent.Greenlet] = []
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------
    def on_start(self) -> None:
        boot = Boot(
            db=self.db,
            directory=self.directory,
            deps=self.deps,
            rate=self.config.boot_rate,
            restore=self._restore_one,
            on_blocked=self._schedule_unblock,
        )
        greenlet = boot.start()
        # A boot that fails (the database is down) fails the Fleet: the Root restarts it.
        greenlet.link_exception(lambda g: self._tell(_BootFailed(repr(g.exception))))
        self._background.append(greenlet)
        self._background.append(gevent.spawn(self._publish_gauges))

    def _restore_one(self, company_id: str) -> None:
        """From the boot's greenlet: returns once the Fleet has started the session. Told
        without waiting, restores pile up in the Fleet's inbox whenever it starts sessions more
        slowly than the boot rate, and every operator's command waits behind all of them."""
        try:
            self.actor_ref.ask(_Restore(company_id), timeout=30)
        except pykka.ActorDeadError:
            pass  # the Fleet is stopping; its cleanup ends the boot too
        except pykka.Timeout:
            log.warning("company %s: the fleet did not start the session within 30 s", company_id)

    def _schedule_unblock(self, record: SessionRecord) -> None:
        delay = max(0.0, ((record.blocked_until or 0) - now_ms()) / 1000)
        self._background.append(gevent.spawn_later(delay, self._tell, _Unblock(record.company_id)))

    def _tell(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _publish_gauges(self) -> None:
        while True:
            for state, count in self.directory.counts().items():
                self.deps.metrics.gauge(f"sessions.{state}", count)
            now = now_ms()
            pending = sum(
                1 for r in self.directory.records.values() if r.pairing and r.pairing["expiresAt"] > now
            )
            self.deps.metrics.gauge("pairing.pending", pending)
            gevent.sleep(self.config.gauge_interval)

    def cleanup(self) -> None:
        for greenlet in self._background:
            greenlet.kill(block=False)

    def on_stop(self) -> None:
        self.cleanup()

    def on_failure(self, *exc_info: Any) -> None:
        self.cleanup()

    # -- messages -------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildExited():
                return self._child_exited(message)
            case StartChild(id=company_id, generation=generation):
                child = self.children.get(company_id)
                if child is not None and child.generation == generation and child.ref is None:
                    self._start(company_id)
                return None
            case _Unblock(id=company_id):
                record = self.directory.get(company_id)
                if (
                    record is not None
                    and record.status == "blocked"
                    and (record.blocked_until or 0) <= now_ms()
                ):
                    self.journal.transition(record, "stopped", reason="cooldown_over")
                return None
            case _Restore(id=company_id):
                record = self.directory.get(company_id)
                if record is not None and record.desired == "running" and company_id not in self.children:
                    self._start(company_id)
                return None
            case CreateCompany():
                return self._create(message)
            case UpdateCompany(id=company_id, fields=fields):
                return self._update(company_id, fields)
            case DeleteCompany(id=company_id):
                return self._delete(company_id)
            case Initialize(id=company_id, pairing_phone=phone):
                return self._initialize(company_id, phone)
            case Reconnect(id=company_id):
                return self._reconnect(company_id)
            case StopSession(id=company_id):
                return self._stop_session(company_id, "stop")
            case Cleanup(id=company_id):
                return self._stop_session(company_id, "logout")
            case RequestPairing(id=company_id):
                return self._request_pairing(message)
            case Send(id=company_id):
                return self._running_ref(company_id).ask(message, block=False)
            case Sandbox(id=company_id, action="crash"):
                self._running_ref(company_id).tell(Crash())
                return None
            case Sandbox(id=company_id):
                return self._running_ref(company_id).ask(message, block=False)
            case _BootFailed(error=error):
                raise RuntimeError(f"boot failed: {error}")
            case Ping():
                return True
            case Shutdown():
                return self._shutdown()
        return super().on_receive(message)

    # -- companies ------------------------------------------------------------------------------
    def _record(self, company_id: str) -> SessionRecord:
        record = self.directory.get(company_id)
        if record is None:
            if not self.directory.loaded:
                raise Booting("the node is still loading its companies: try again in a moment")
            raise NotFound(f"company {company_id!r} does not exist")
        return record

    def _create(self, msg: CreateCompany) -> tuple[SessionRecord, str]:
        token = new_token()
        row = companies.create(
            self.db,
            id=msg.id,
            name=msg.name,
            phone=msg.phone,
            link=msg.link,
            token_hash=hash_token(token),
            cloud=msg.cloud,
        )
        record = SessionRecord(
            company_id=row.id,
            name=row.name,
            link=row.link,
            company_phone=row.phone,
            token_hash=row.token_hash,
            cloud_number=row.cloud_phone_number_id,
            created_at=row.created_at,
            since=row.created_at,
        )
        self.directory.add(record)
        self.journal.event(row.id, "company", reason="created", data={"link": row.link})
        self._claim_unrouted(row.id, row.cloud_phone_number_id)
        return record, token

    def _update(self, company_id: str, fields: dict[str, Any]) -> SessionRecord:
        record = self._record(company_id)
        if "link" in fields and fields["link"] != record.link and company_id in self.children:
            raise Conflict("stop the session before changing its link")
        companies.update(self.db, company_id, **fields)
        record.name = fields.get("name", record.name)
        record.company_phone = fields.get("phone", record.company_phone)
        record.link = fields.get("link", record.link)
        record.cloud_number = fields.get("cloud_phone_number_id", record.cloud_number)
        self.journal.event(company_id, "company", reason="updated", data={"fields": sorted(fields)})
        self._claim_unrouted(company_id, fields.get("cloud_phone_number_id"))
        return record

    def _claim_unrouted(self, company_id: str, phone_number_id: str | None) -> None:
        """Webhooks Meta sent for this number before any company owned it are processed again."""
        if not phone_number_id:
            return
        count = inbox.requeue_unrouted(self.db, phone_number_id)
        if count:
            self.journal.event(company_id, "company", reason="unrouted_claimed", data={"payloads": count})

    def _delete(self, company_id: str) -> None:
        self._record(company_id)
        self._close_child(company_id, "logout")
        self.deps.auth.wipe(company_id)
        companies.delete(self.db, company_id)
        self.deps.shared.forget(company_id)
        self.deps.links.forget(company_id)
        self.directory.remove(company_id)
        self.journal.event(None, "company", reason="deleted", data={"company": company_id})

    # -- sessions -------------------------------------------------------------------------------
    def _check_not_blocked(self, record: SessionRecord) -> None:
        until = record.blocked_until if record.status == "blocked" else None
        shared_until = self.deps.shared.blocked_until(record.company_id)
        if shared_until:
            until = max(until or 0, int(shared_until * 1000))
        if until and until > now_ms():
            minutes = max(1, round((until - now_ms()) / 60000))
            raise RateLimited(
                (until - now_ms()) / 1000,
                f"the company is blocked after too many pairing codes: try again in {minutes} min",
            )

    def _initialize(self, company_id: str, pairing_phone: str | None) -> Any:
        record = self._record(company_id)
        self._check_not_blocked(record)
        child = self.children.get(company_id)
        if record.status == "connected":
            raise Conflict("the session is already connected")
        if child is not None and child.ref is not None:
            if pairing_phone:
                child.ref.tell(RequestPairing(company_id, pairing_phone))
            return record  # already connecting: initialize is idempotent
        self._check_capacity(company_id)
        record.pairing_phone = pairing_phone
        durable = self._set_desired(record, "running", wait=False)
        self._fresh_start(company_id)
        return self._when_started(company_id, record, durable)

    def _reconnect(self, company_id: str) -> Any:
        record = self._record(company_id)
        self._check_not_blocked(record)
        self._check_capacity(company_id)
        self._close_child(company_id, "stop")
        durable = self._set_desired(record, "running", wait=False)
        self._fresh_start(company_id)
        return self._when_started(company_id, record, durable)

    def _when_started(
        self, company_id: str, record: SessionRecord, durable: gevent.event.AsyncResult | None
    ) -> Any:
        """The answer to a start: the record once the desired state and the new session's first
        transition are durable (the client then reads ``starting``, not the status from before),
        awaited by the caller, not by the Fleet, which goes on with other companies meanwhile.
        The desired state was queued first, so it is committed no later than the transition."""
        child = self.children.get(company_id)
        answer: Any = record
        if child is not None and child.ref is not None:
            try:
                answer = child.ref.ask(Started(), block=False)
            except pykka.ActorDeadError:
                pass
        if durable is None:
            return answer
        chained = gevent.event.AsyncResult()
        durable.rawlink(
            lambda done: chained.set(answer) if done.successful() else chained.set_exception(done.exception)
        )
        return chained

    def _stop_session(self, company_id: str, mode: str) -> SessionRecord:
        record = self._record(company_id)
        if record.status == "blocked" and mode == "stop":
            return record  # already down; the cooldown protects the number and stays
        self._set_desired(record, "stopped")
        self._close_child(company_id, mode)
        if mode == "logout":
            self.deps.auth.wipe(company_id)
            record.phone = None
        if record.status != "stopped" or mode == "logout":
            reason = "cleanup" if mode == "logout" else "stopped by request"
            self.journal.transition(record, "stopped", reason=reason)
        return record

    def _request_pairing(self, msg: RequestPairing) -> Any:
        record = self._record(msg.id)
        if record.link == "cloud":
            raise Conflict(
                "the Cloud API has no QR or pairing codes: the number is linked in Meta's dashboard"
            )
        self._check_not_blocked(record)
        child = self.children.get(msg.id)
        if child is None or child.ref is None:
            if record.status == "connected":
                raise Conflict("the session is already connected")
            self._check_capacity(msg.id)
            record.pairing_phone = msg.phone
            self._set_desired(record, "running")
            self._fresh_start(msg.id)
            child = self.children[msg.id]
        assert child.ref is not None
        return child.ref.ask(msg, block=False)

    def _running_ref(self, company_id: str) -> pykka.ActorRef[Any]:
        record = self._record(company_id)
        child = self.children.get(company_id)
        if child is None or child.ref is None:
            raise Conflict(f"the session is {record.status}: no live session to act on")
        return child.ref

    def _check_capacity(self, company_id: str) -> None:
        if company_id not in self.children and len(self.children) >= self.config.max_sessions:
            raise AtCapacity(
                f"this node already runs WHATSAPP_MAX_SESSIONS={self.config.max_sessions} sessions"
            )

    def _set_desired(
        self, record: SessionRecord, desired: str, wait: bool = True
    ) -> gevent.event.AsyncResult | None:
        """With ``wait=False`` the write is only queued: the caller must not answer before the
        returned result is set."""
        if record.desired == desired:
            return None
        durable = self.journal.set_desired(record.company_id, desired, wait=wait)
        record.desired = desired
        return durable

    # -- children -------------------------------------------------------------------------------
    def _fresh_start(self, company_id: str) -> None:
        """An operator's start: forget past failures (this is what clears ``failed``)."""
        child = self.children.get(company_id)
        if child is not None:
            self._cancel_timer(child)
            child.tracker.reset()
            child.replaced.clear()
        self._start(company_id)

    def _start(self, company_id: str) -> None:
        record = self.directory.get(company_id)
        if record is None or self._stopping:
            return
        child = self.children.get(company_id)
        if child is None:
            child = Child(generation=0, tracker=RestartTracker(self.config.policy, self.rng))
            self.children[company_id] = child
        self._cancel_timer(child)
        child.generation += 1
        child.closing = False
        generation = child.generation
        me = self.actor_ref

        def on_exit(exit_: Exit) -> None:
            me.tell(ChildExited(company_id, generation, exit_))

        try:
            child.ref = CompanySession.start(record, self.deps, on_exit)
        except LinkUnavailable as exc:
            if exc.transient:  # back off like any transient close
                child.tracker.started(time.monotonic())
                self._child_exited(ChildExited(company_id, generation, Exit("transient", str(exc))))
                return
            del self.children[company_id]
            self.journal.transition(record, "failed", reason="link_unavailable", message=str(exc), error=True)
            return
        child.tracker.started(time.monotonic())

    def _close_child(self, company_id: str, mode: str) -> None:
        """Stop a child and wait for it: its last words are persisted before we answer."""
        child = self.children.pop(company_id, None)
        if child is None:
            return
        self._cancel_timer(child)
        if child.ref is not None:
            child.closing = True
            try:
                child.ref.ask(Close(mode), timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                child.ref.stop(block=False)
            except Exception:
                log.exception("company %s: session failed while closing", company_id)

    def _cancel_timer(self, child: Child) -> None:
        if child.timer is not None:
            child.timer.kill(block=False)
            child.timer = None

    def _child_exited(self, msg: ChildExited) -> None:
        company_id, exit_ = msg.id, msg.exit
        child = self.children.get(company_id)
        if child is None or child.generation != msg.generation or child.closing:
            return  # a child we stopped on purpose, or one already replaced
        child.ref = None
        record = self.directory.get(company_id)
        if record is None or self._stopping:
            return
        now = time.monotonic()
        reason = exit_.reason
        self.deps.metrics.incr(f"sessions.exits.{reason}")

        if reason == "normal":
            del self.children[company_id]
            if record.status != "stopped":
                self.journal.transition(record, "stopped", reason="session ended")
            return

        if reason == "blocked":
            del self.children[company_id]
            self._set_desired(record, "stopped")
            record.blocked_until = int(exit_.data.get("until") or now_ms())
            self.journal.transition(
                record,
                "blocked",
                reason="pairing_limit",
                message=exit_.message,
                error=True,
                data={"until": record.blocked_until},
            )
            self.journal.alert(company_id, "pairing_limit", exit_.message)
            self._schedule_unblock(record)
            return

        if reason == "qr_exhausted":
            del self.children[company_id]
            self._set_desired(record, "stopped")
            self.journal.transition(
                record, "stopped", reason=reason, message=exit_.message, error=True, data=dict(exit_.data)
            )
            return

        if reason in FINAL_REASONS:
            del self.children[company_id]
            if reason == "logged_out":
                record.phone = None
                self.journal.transition(
                    record, "logged_out", reason=reason, message=exit_.message, error=True
                )
            else:
                self.journal.transition(
                    record,
                    "failed",
                    reason=reason,
                    message=exit_.message,
                    error=True,
                    data=dict(exit_.data) or None,
                )
                if "until" in exit_.data and record.last_error is not None:
                    record.last_error["until"] = exit_.data["until"]
            return

        if reason == "restart_required":
            child.tracker.exited(now, counted=False)
            self.journal.transition(record, "starting", reason=reason, message=exit_.message)
            self._start(company_id)
            return

        if reason == "crash" and self._escalating(now, company_id):
            return

        decision = child.tracker.exited(now)
        record.restarts += 1
        self.deps.metrics.incr("sessions.restarts")
        self.deps.metrics.incr(f"sessions.restarts.{reason}")
        if decision.give_up:
            del self.children[company_id]
            message = (
                f"{len(child.tracker.times)} restarts within {self.config.policy.window:.0f}s "
                f"(last: {reason}: {exit_.message})"
            )
            self.journal.transition(record, "failed", reason="too_many_restarts", message=message, error=True)
            self.journal.alert(company_id, "session_failed", message)
            return
        delay = decision.delay
        if reason == "replaced":
            delay += self.config.replaced_cooloff
            child.replaced.append(now)
            while child.replaced and child.replaced[0] <= now - self.config.policy.window:
                child.replaced.popleft()
            if len(child.replaced) == 3:
                self.journal.alert(
                    company_id,
                    "replaced_loop",
                    "the session was replaced 3 times: is it open on another server?",
                )
        self.journal.transition(
            record, "reconnecting", reason=reason, message=exit_.message, retry_in=delay, error=True
        )
        generation = child.generation
        child.timer = gevent.spawn_later(delay, self._tell_start, company_id, generation)

    def _tell_start(self, company_id: str, generation: int) -> None:
        try:
            self.actor_ref.tell(StartChild(company_id, generation))
        except pykka.ActorDeadError:
            pass

    def _escalating(self, now: float, company_id: str) -> bool:
        """Many sessions crashing at once means the node is sick (database down): escalate."""
        live = sum(1 for c in self.children.values() if c.ref is not None)
        limit = max(self.config.escalate_after, live // 2)
        if not self.intensity.failed(now, company_id, limit):
            return False
        message = f"more than {limit} sessions crashed within {self.config.escalate_period:.0f}s"
        log.error("fleet escalates: %s", message)
        try:
            self.journal.alert(None, "fleet_escalated", message)
        except Exception:
            log.exception("could not record the escalation")
        self._stop_children()
        self.exit("escalated", message)
        return True

    def _shutdown(self) -> None:
        self._stop_children()
        self.exit("normal", "shutdown")

    def _stop_children(self) -> None:
        """Stop every child concurrently (never one by one: 10,000 sessions)."""
        self._stopping = True
        futures = []
        for child in self.children.values():
            self._cancel_timer(child)
            child.closing = True
            if child.ref is not None:
                try:
                    futures.append(child.ref.ask(Close("node"), block=False))
                except pykka.ActorDeadError:
                    pass
        for future in futures:
            try:
                future.get(timeout=10)
            except Exception:
                pass
        self.children.clear()


@dataclass(frozen=True)
class _Restore:
    id: str


@dataclass(frozen=True)
class _Unblock:
    id: str


@dataclass(frozen=True)
class _BootFailed:
    error: str


__all__ = ["AtCapacity", "Conflict", "Fleet", "FleetConfig", "LinkConflict", "NotFound"]
