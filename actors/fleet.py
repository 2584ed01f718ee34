"""Fleet: simple_one_for_one supervisor with one CompanySession per running company.

Mechanism only: its children (``wafleet.actors.supervisor.Children``), their restart timers,
the operator's commands (serialized: the Fleet is one actor), the boot. What happens after a
session ends is not decided here but in ``wafleet.actors.exit_policy``: the Fleet asks
``decide`` for a plan and applies it. Many sessions crashing together trips the Fleet's own
intensity: it stops its children and escalates to the Root.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import pykka

from wafleet.actors import cooldown, gauges
from wafleet.actors.boot import Boot
from wafleet.actors.company_admin import CompanyAdmin
from wafleet.actors.directory import Directory, SessionRecord
from wafleet.actors.error_classes import exit_class
from wafleet.actors.errors import AtCapacity, Banned, Booting, Conflict, NotFound
from wafleet.actors.exit_policy import Backoff, Plan, Restart, decide, rule_for
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import (
    ChildExited,
    Cleanup,
    Close,
    Crash,
    CreateCompany,
    DeleteCompany,
    Expire,
    Initialize,
    Ping,
    Probe,
    ProbeMany,
    Reconnect,
    RequestPairing,
    Revive,
    RotateToken,
    Sandbox,
    Send,
    Shutdown,
    StartChild,
    Started,
    StopSession,
    UpdateCompany,
)
from wafleet.actors.restart import Intensity, RestartPolicy
from wafleet.actors.session import CompanySession, SessionDeps
from wafleet.actors.status import ExitReason, Status
from wafleet.actors.supervisor import Children, ChildSpec, RestartType, Slot
from wafleet.storage.clock import iso, now_ms
from wafleet.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetConfig:
    policy: RestartPolicy
    max_sessions: int = 1000
    boot_rate: float = 500.0  # sessions restored per second on boot
    replaced_cooloff: float = 30.0
    escalate_after: int = 20  # crashes inside escalate_period, at least; or half the fleet
    escalate_period: float = 10.0
    gauge_interval: float = 1.0
    session_shutdown: float = 4.0  # seconds a session has to close its link and persist


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
        self.children = Children(lambda: self.actor_ref, config.policy, rng)
        self.admin = CompanyAdmin(db, directory, deps.journal)
        self.intensity = Intensity(config.escalate_after, config.escalate_period)
        # When each company's session was replaced, inside the restart window: a loop is an alert.
        self.replaced: dict[str, deque[float]] = {}
        self._background: list[gevent.Greenlet] = []
        self._restoring: set[str] = set()  # restored at boot, staggered: not started yet

    # -- lifecycle ------------------------------------------------------------------------------
    def on_start(self) -> None:
        boot = Boot(
            db=self.db,
            directory=self.directory,
            deps=self.deps,
            rate=self.config.boot_rate,
            restore=self._restore,
            on_blocked=self._schedule_unblock,
        )
        self._restoring = boot.pending
        greenlet = boot.start()
        # A boot that fails (the database is down) fails the Fleet: the Root restarts it.
        greenlet.link_exception(lambda g: self._tell(_BootFailed(repr(g.exception))))
        self._background.append(greenlet)
        self._background.append(
            gevent.spawn(
                gauges.publish_forever, self.directory, self.deps.metrics, self.config.gauge_interval
            )
        )

    def _restore(self, company_ids: list[str]) -> None:
        """From the boot's greenlet: returns once the Fleet has started the sessions. Told
        without waiting, restores pile up in the Fleet's inbox whenever it starts sessions more
        slowly than the boot rate, and every operator's command waits behind all of them."""
        try:
            self.actor_ref.ask(_Restore(tuple(company_ids)), timeout=30)
        except pykka.ActorDeadError:
            pass  # the Fleet is stopping; its cleanup ends the boot too
        except pykka.Timeout:
            log.warning("the fleet did not start %d sessions within 30 s", len(company_ids))

    def _probe(self, company_id: str) -> Any:
        ref = self.children.ref(company_id)
        record = self.directory.get(company_id)
        if ref is None or record is None or record.status != Status.CONNECTED:
            return None  # nothing connected to probe (any more)
        return ref.ask(Probe(company_id), block=False)

    def _tell(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def cleanup(self) -> None:
        for greenlet in self._background:
            greenlet.kill(block=False)
        for slot in self.children.slots.values():
            self.children.cancel_timer(slot)

    # -- messages -------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildExited():
                return self._child_exited(message)
            case StartChild():
                slot = self.children.due(message)
                if slot is not None:
                    self._start(slot.spec.id)
                return None
            case _Unblock(id=company_id):
                return self._unblock(company_id)
            case _Restore(ids=company_ids):
                for company_id in company_ids:
                    self._restoring.discard(company_id)
                    record = self.directory.get(company_id)
                    if (
                        record is not None
                        and record.desired == "running"
                        and company_id not in self.children
                        and not cooldown.ban_pending(record)
                    ):
                        self._start(company_id)
                return None
            case CreateCompany():
                return self.admin.create(message)
            case UpdateCompany(id=company_id, fields=fields):
                record = self._record(company_id)
                if "link" in fields and fields["link"] != record.link and company_id in self.children:
                    raise Conflict("stop the session before changing its link")
                return self.admin.update(record, fields)
            case DeleteCompany(id=company_id):
                return self._delete(company_id)
            case RotateToken(id=company_id):
                return self._rotate(company_id)
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
            case Probe(id=company_id):
                return self._probe(company_id)
            case ProbeMany(ids=company_ids):
                return {company_id: self._probe(company_id) for company_id in company_ids}
            case Revive():
                return self._revive(message)
            case _BootFailed(error=error):
                raise RuntimeError(f"boot failed: {error}")
            case Ping():
                return True
            case Shutdown():
                self.children.stop_all(message=Close("node"))
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)

    # -- companies ------------------------------------------------------------------------------
    def _record(self, company_id: str) -> SessionRecord:
        record = self.directory.get(company_id)
        if record is None:
            if not self.directory.loaded:
                raise Booting("the node is still loading its companies: try again in a moment")
            raise NotFound(f"company {company_id!r} does not exist")
        return record

    def _rotate(self, company_id: str) -> str:
        return self.admin.rotate(self._record(company_id))

    def _delete(self, company_id: str) -> None:
        self._record(company_id)
        self.children.stop(company_id, Close("logout"))
        self.replaced.pop(company_id, None)
        self.deps.auth.wipe(company_id)
        self.deps.shared.forget(company_id)
        self.deps.links.forget(company_id)
        self.admin.delete(company_id)
        self.deps.metrics.figures.forget(company_id)

    # -- operator commands (one at a time: the Fleet is one actor) ------------------------------
    def _check_may_start(self, record: SessionRecord) -> None:
        """A pairing cool-down (429) or a ban with an end (409) still running refuses a start."""
        if cooldown.lapsed(record):  # the unblock timer has not run yet: end the cool-down now
            self.journal.transition(record, Status.STOPPED, reason="cooldown_over")
        cooldown.check_not_blocked(record, self.deps.shared)
        if cooldown.ban_pending(record):
            raise Banned(iso(record.blocked_until) or "", comes_back=record.desired == "running")

    def _initialize(self, company_id: str, pairing_phone: str | None) -> Any:
        record = self._record(company_id)
        self._check_may_start(record)
        if record.status == Status.CONNECTED:
            raise Conflict("the session is already connected")
        ref = self.children.ref(company_id)
        if ref is not None:
            if pairing_phone:
                ref.tell(RequestPairing(company_id, pairing_phone))
            return record  # already connecting: initialize is idempotent
        self._check_capacity(company_id)
        record.pairing_phone = pairing_phone
        durable = self._set_desired(record, "running", wait=False)
        self._fresh_start(company_id)
        return self._when_started(company_id, record, durable)

    def _reconnect(self, company_id: str) -> Any:
        record = self._record(company_id)
        self._check_may_start(record)
        self._check_capacity(company_id)
        self.children.stop(company_id, Close("stop"))
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
        if record.status == Status.BLOCKED and mode == "stop":
            return record  # already down; the cooldown protects the number and stays
        self._set_desired(record, "stopped")
        self.children.stop(company_id, Close(mode))
        if mode == "logout":
            self.deps.auth.wipe(company_id)
            record.phone = None
        if record.status != Status.STOPPED or mode == "logout":
            reason = "cleanup" if mode == "logout" else "stopped by request"
            self.journal.transition(record, Status.STOPPED, reason=reason)
        return record

    def _request_pairing(self, msg: RequestPairing) -> Any:
        record = self._record(msg.id)
        if record.link == "cloud":
            raise Conflict(
                "the Cloud API has no QR or pairing codes: the number is linked in Meta's dashboard"
            )
        self._check_may_start(record)
        ref = self.children.ref(msg.id)
        if ref is None:
            if record.status == Status.CONNECTED:
                raise Conflict("the session is already connected")
            self._check_capacity(msg.id)
            record.pairing_phone = msg.phone
            self._set_desired(record, "running")
            self._fresh_start(msg.id)
            ref = self.children.ref(msg.id)
            if ref is None:  # it could not start (its link is unavailable): the status says why
                raise Conflict(f"the session is {record.status}: it could not start")
        return ref.ask(msg, block=False)

    def _running_ref(self, company_id: str) -> pykka.ActorRef[Any]:
        record = self._record(company_id)
        ref = self.children.ref(company_id)
        if ref is None:
            raise Conflict(f"the session is {record.status}: no live session to act on")
        return ref

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

    def _unblock(self, company_id: str) -> None:
        """A cool-down's or a ban's end: blocked -> stopped; a ban with an end -> restart."""
        record = self.directory.get(company_id)
        if record is None or (record.blocked_until or 0) > now_ms():
            return
        if record.status == Status.BLOCKED:
            self.journal.transition(record, Status.STOPPED, reason="cooldown_over")
        elif cooldown.banned(record) and company_id not in self.children and record.desired == "running":
            self.journal.transition(record, Status.RECONNECTING, reason="ban_over", retry_in=0.0)
            self._start(company_id)

    def _revive(self, msg: Revive) -> bool:
        """The health monitor found a zombie: record it, and end the session (its exit policy
        restarts it) or start it when its restart was lost. False when it was stale: the
        session moved on since the monitor looked (its state, or a start now under way)."""
        record = self.directory.get(msg.id)
        if record is None or record.since != msg.since or record.desired != "running":
            return False
        ref = self.children.ref(msg.id)
        if record.status != REVIVE_FROM.get(msg.why):
            return False
        if record.status == Status.RECONNECTING:
            slot = self.children.get(msg.id)
            pending = msg.id in self._restoring or (
                slot is not None and slot.timer is not None and not slot.timer.dead
            )
            if ref is not None or pending or cooldown.ban_pending(record):
                return False  # starting now, or a restart (a boot restore, a ban's end) is due
        elif ref is None:
            return False
        self.journal.event(
            msg.id, "zombie", state=record.status, reason=msg.why, data={"message": msg.message}
        )
        self.deps.metrics.incr("health.zombies")
        self.deps.metrics.incr(f"health.zombies.{msg.why}")
        self.deps.metrics.figures.zombie()
        log.warning("company %s: zombie (%s): %s", msg.id, msg.why, msg.message)
        if ref is not None:
            ref.tell(Expire(msg.message))
        else:
            self._start(msg.id)
        return True

    def _schedule_unblock(self, record: SessionRecord) -> None:
        delay = max(0.0, ((record.blocked_until or 0) - now_ms()) / 1000)
        self._background.append(gevent.spawn_later(delay, self._tell, _Unblock(record.company_id)))

    # -- children -------------------------------------------------------------------------------
    def _fresh_start(self, company_id: str) -> None:
        """An operator's start: forget past failures (this is what clears ``failed``)."""
        slot = self.children.get(company_id)
        if slot is not None:
            self.children.cancel_timer(slot)
            slot.tracker.reset()
        self.replaced.pop(company_id, None)
        self._start(company_id)

    def _spec(self, record: SessionRecord) -> ChildSpec:
        deps = self.deps

        def start(on_exit: Callable[[Exit], None]) -> pykka.ActorRef[Any]:
            return CompanySession.start(record, deps, on_exit)

        return ChildSpec(
            record.company_id,
            start,
            RestartType.TRANSIENT,  # what comes next is the exit policy's call
            shutdown=self.config.session_shutdown,
            stop_message=Close("node"),
        )

    def _start(self, company_id: str) -> None:
        record = self.directory.get(company_id)
        if record is None or self.children.stopping:
            return
        self.children.add(self._spec(record))
        self.children.start(company_id)

    def _child_exited(self, msg: ChildExited) -> None:
        slot = self.children.exited(msg)
        if slot is None:
            return  # a child we stopped on purpose, or one already replaced
        company_id, exit_ = msg.id, msg.exit
        record = self.directory.get(company_id)
        if record is None:
            return
        now = time.monotonic()
        reason = exit_.reason
        self.deps.metrics.incr(f"sessions.exits.{reason}")
        if record.status == Status.CONNECTED:
            self.deps.metrics.figures.disconnected()  # a live link dropped (not a stop we asked for)
        error_class = exit_class(reason)
        if error_class is not None:
            self.deps.metrics.figures.error(company_id, error_class)
        rule = rule_for(reason)
        if rule.escalates and self._escalating(now, company_id):
            return
        backoff = None
        if rule.counted:
            decision = slot.tracker.exited(now)
            backoff = Backoff(
                decision.give_up, decision.delay, len(slot.tracker.times), self.config.policy.window
            )
        elif rule.restart is Restart.NOW:
            slot.tracker.exited(now, counted=False)
        replaced = 0
        if rule.cooloff:
            times = self.replaced.setdefault(company_id, deque())
            times.append(now)
            while times and times[0] <= now - self.config.policy.window:
                times.popleft()
            replaced = len(times)
        plan = decide(
            reason,
            exit_.message,
            exit_.data,
            now_ms=now_ms(),
            backoff=backoff,
            replaced_recently=replaced,
            cooloff=self.config.replaced_cooloff,
        )
        self._apply(record, slot, plan)

    def _apply(self, record: SessionRecord, slot: Slot, plan: Plan) -> None:
        """Carry out a plan: count, record the transition, alert, forget, restart or not."""
        company_id = record.company_id
        if plan.counted and plan.status == Status.RECONNECTING:
            record.restarts += 1
            self.deps.metrics.incr("sessions.restarts")
            self.deps.metrics.incr(f"sessions.restarts.{plan.reason}")
            self.deps.metrics.figures.restarted()
        if plan.stop_desired:
            self._set_desired(record, "stopped")
        if plan.forget_credentials:
            self.deps.auth.wipe(company_id)
        if plan.status == record.status == Status.STOPPED and not plan.error:
            self.children.remove(company_id)  # it ended while already stopped: nothing to record
            return
        self.journal.transition(
            record,
            plan.status,
            reason=plan.reason,
            message=plan.message,
            retry_in=plan.retry_in,
            error=plan.error,
            data=plan.data or None,
            until=plan.until,
        )
        for alert in plan.alerts:
            self.journal.alert(company_id, alert.kind, alert.message)
        if plan.restart is Restart.NOW:
            self._start(company_id)
        elif plan.restart is Restart.BACKOFF:
            self.children.restart_later(slot, plan.delay)
        elif plan.restart is Restart.AT_UNTIL:
            self.children.remove(company_id)
            self._schedule_unblock(record)
        else:
            self.children.remove(company_id)
            if plan.status == Status.BLOCKED:
                self._schedule_unblock(record)

    def _escalating(self, now: float, company_id: str) -> bool:
        """Many sessions crashing at once means the node is sick (database down): escalate."""
        limit = max(self.config.escalate_after, self.children.live() // 2)
        if not self.intensity.failed(now, company_id, limit):
            return False
        message = f"more than {limit} sessions crashed within {self.config.escalate_period:.0f}s"
        log.error("fleet escalates: %s", message)
        try:
            self.journal.alert(None, "fleet_escalated", message)
        except Exception:
            log.exception("could not record the escalation")
        self.children.stop_all(message=Close("node"))
        self.exit(ExitReason.ESCALATED, message)
        return True


# What the health monitor may call a zombie, by the state it was seen in.
REVIVE_FROM: dict[str, Status] = {
    "link_silent": Status.CONNECTED,  # connected, but the link does not answer
    "stuck_starting": Status.STARTING,  # starting longer than the connection timeout
    "stuck_reconnecting": Status.RECONNECTING,  # its restart is long overdue and not pending
}


@dataclass(frozen=True)
class _Restore:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class _Unblock:
    id: str


@dataclass(frozen=True)
class _BootFailed:
    error: str


__all__ = ["AtCapacity", "Conflict", "Fleet", "FleetConfig", "NotFound"]
