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
import pykka

from wafleet.actors import cooldown, gauges
from wafleet.actors.company_admin import CompanyAdmin
from wafleet.actors.directory import HISTORY_LENGTH, Directory, SessionRecord
from wafleet.actors.error_classes import exit_class
from wafleet.actors.errors import AtCapacity, Banned, Conflict, NotFound
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
    Reconnect,
    RequestPairing,
    Revive,
    Sandbox,
    Send,
    Shutdown,
    StartChild,
    StopSession,
    UpdateCompany,
)
from wafleet.actors.restart import Intensity, RestartPolicy
from wafleet.actors.session import CompanySession, SessionDeps
from wafleet.actors.status import ACTIVE, ExitReason, Status
from wafleet.actors.supervisor import Children, ChildSpec, RestartType, Slot
from wafleet.storage import companies, events
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
        records = []
        restore: list[SessionRecord] = []
        for company, session in companies.load_all(self.db):
            record = SessionRecord(
                company_id=company.id,
                name=company.name,
                link=company.link,
                company_phone=company.phone,
                token_hash=company.token_hash,
                created_at=company.created_at,
                desired=session.desired_state,
                status=session.status,
                since=session.since,
                phone=session.phone,
                restarts=session.restarts,
                last_error=session.last_error,
                blocked_until=session.blocked_until,
                cloud_number=company.cloud_phone_number_id,
            )
            for event in events.recent(self.db, company.id, "status", HISTORY_LENGTH):
                entry = {"status": event.state, "at": event.at, "reason": event.reason}
                if "retryIn" in event.data:
                    entry["retryIn"] = event.data["retryIn"]
                record.history.append(entry)
            records.append(record)
        for record in records:
            if self._banned(record):
                self._schedule_unblock(record)  # the ban's end brings it back, not the boot
                continue
            self._restore_block(record)
            if record.desired == "running" and record.status != "blocked":
                restore.append(record)
        for record in records:
            if record.status in ACTIVE and record.desired != "running":
                self.journal.transition(record, "stopped", reason="boot")
        to_start = []
        for record in restore:
            if self.deps.auth.load(record.company_id, record.link) is None:
                # No stored login: reconnecting would only show a QR nobody is watching.
                if record.status != "stopped":
                    self.journal.transition(record, "stopped", reason="boot_no_credentials")
                continue
            self.journal.transition(record, "reconnecting", reason="boot", retry_in=0.0)
            to_start.append(record.company_id)
        # Published only now: nobody reads a stale "connected" from before the boot.
        self.directory.replace_all(records)
        self._restoring = set(to_start)
        if to_start:
            log.info("restoring %d sessions at %.0f/s", len(to_start), self.config.boot_rate)
        self._background.append(gevent.spawn(self._restore, to_start))
        self._background.append(
            gevent.spawn(
                gauges.publish_forever, self.directory, self.deps.metrics, self.config.gauge_interval
            )
        )

    def _restore_block(self, record: SessionRecord) -> None:
        """A pairing cooldown outlives the process: from the database, or from Redis."""
        shared_until = self.deps.shared.blocked_until(record.company_id)
        until = max(record.blocked_until or 0, int(shared_until * 1000) if shared_until else 0)
        if until > now_ms():
            if record.status != "blocked" or record.blocked_until != until:
                self.journal.transition(
                    record, "blocked", reason="pairing_limit", data={"until": until}, until=until
                )
            self._schedule_unblock(record)
        elif record.status == "blocked":
            self.journal.transition(record, "stopped", reason="cooldown_over")

    def _restore(self, company_ids: list[str]) -> None:
        """Staggered boot: no reconnect storm against WhatsApp or the database."""
        step = 1.0 / self.config.boot_rate if self.config.boot_rate > 0 else 0.0
        for company_id in company_ids:
            try:
                self.actor_ref.tell(_Restore(company_id))
            except pykka.ActorDeadError:
                return
            if step:
                gevent.sleep(step)

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
            case _Restore(id=company_id):
                self._restoring.discard(company_id)
                record = self.directory.get(company_id)
                if record is not None and record.desired == "running" and company_id not in self.children:
                    if not self._ban_pending(record):
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
                ref = self.children.ref(company_id)
                record = self.directory.get(company_id)
                if ref is None or record is None or record.status != Status.CONNECTED:
                    return None  # nothing connected to probe (any more)
                return ref.ask(message, block=False)
            case Revive():
                return self._revive(message)
            case Ping():
                return True  # answered only once on_start (the boot) has finished
            case Shutdown():
                self.children.stop_all(message=Close("node"))
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)

    # -- companies ------------------------------------------------------------------------------
    def _record(self, company_id: str) -> SessionRecord:
        record = self.directory.get(company_id)
        if record is None:
            raise NotFound(f"company {company_id!r} does not exist")
        return record

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
        if self._ban_pending(record):
            raise Banned(iso(record.blocked_until) or "")

    @staticmethod
    def _banned(record: SessionRecord) -> bool:
        """Failed by a ban that has an end (``blocked_until``)."""
        return (
            record.status == Status.FAILED
            and record.last_error is not None
            and record.last_error.get("reason") == ExitReason.BANNED
            and record.blocked_until is not None
        )

    def _ban_pending(self, record: SessionRecord) -> bool:
        return self._banned(record) and (record.blocked_until or 0) > now_ms()

    def _initialize(self, company_id: str, pairing_phone: str | None) -> SessionRecord:
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
        self._set_desired(record, "running")
        self._fresh_start(company_id)
        return record

    def _reconnect(self, company_id: str) -> SessionRecord:
        record = self._record(company_id)
        self._check_may_start(record)
        self._check_capacity(company_id)
        self.children.stop(company_id, Close("stop"))
        self._set_desired(record, "running")
        self._fresh_start(company_id)
        return record

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

    def _set_desired(self, record: SessionRecord, desired: str) -> None:
        if record.desired != desired:
            self.journal.set_desired(record.company_id, desired)
            record.desired = desired

    def _unblock(self, company_id: str) -> None:
        """A cool-down's or a ban's end: blocked -> stopped; a ban with an end -> restart."""
        record = self.directory.get(company_id)
        if record is None or (record.blocked_until or 0) > now_ms():
            return
        if record.status == Status.BLOCKED:
            self.journal.transition(record, Status.STOPPED, reason="cooldown_over")
        elif self._banned(record) and company_id not in self.children and record.desired == "running":
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
            if ref is not None or pending or self._ban_pending(record):
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
    id: str


@dataclass(frozen=True)
class _Unblock:
    id: str


__all__ = ["AtCapacity", "Conflict", "Fleet", "FleetConfig", "NotFound"]
