"""Every state change of a session: applied to its record, persisted, and counted.

Called only from inside actors (the session, or the fleet while the session is down). The event
row and the session row are written in one transaction, so history and state never disagree;
that transaction is shared with every other write queued meanwhile (storage/journal_writer.py),
so a session's answer waits for one batched commit, not for a pooled connection of its own.
Only legal edges of the state machine (``wafleet.actors.status.LEGAL_FROM``) are taken; what
entering a state does to the record is ``wafleet.actors.exit_policy.ENTRY``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gevent.event import AsyncResult

from wafleet.actors import cooldown
from wafleet.actors.broadcast import Broadcaster
from wafleet.actors.directory import SessionRecord
from wafleet.actors.exit_policy import ENTRY, Phone
from wafleet.actors.metrics import Metrics
from wafleet.actors.status import IllegalTransition, Status, check_edge
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.events import EventRow
from wafleet.storage.journal_writer import EventWrite, JournalWriter, SessionWrite, Write

log = logging.getLogger(__name__)


def clean(text: str | None) -> str | None:
    """Text from a link (a close message, a reason) made safe for any database: no NUL, no lone
    surrogates. A bad byte from WhatsApp must never fail the write that records the failure."""
    if text is None:
        return None
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class Transition:
    """One status change of one record, as the journal will write and then apply it.

    ``until`` (epoch ms): the end of a cool-down or a ban, kept by the states whose entry keeps
    it and cleared by every other."""

    record: SessionRecord
    status: str
    reason: str | None = None
    message: str | None = None
    retry_in: float | None = None
    error: bool = False
    data: dict[str, Any] | None = None
    until: int | None = None


@dataclass
class _Plan:
    """A legal transition, ready to write; ``changes`` go onto the record after the commit."""

    change: Transition
    status: str
    writes: list[Write]
    entry: dict[str, Any]
    payload: dict[str, Any]
    changes: dict[str, Any]


class Journal:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        broadcaster: Broadcaster | None = None,
        writer: JournalWriter | None = None,
        *,
        strict: bool = False,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.broadcaster = broadcaster or Broadcaster()
        self.writer = writer or JournalWriter(db)
        # strict (tests): an illegal edge raises; otherwise it is logged and refused.
        self.strict = strict

    def transition(
        self,
        record: SessionRecord,
        status: str,
        *,
        reason: str | None = None,
        message: str | None = None,
        retry_in: float | None = None,
        error: bool = False,
        data: dict[str, Any] | None = None,
        until: int | None = None,
    ) -> bool:
        """Enter ``status``; False (and nothing written) when it is not a legal edge. Durable
        first, then visible: the record (what status requests read) and the live streams
        change only once the event and the session row are committed."""
        (taken,) = self.transitions(
            [Transition(record, status, reason, message, retry_in, error, data, until)]
        )
        return taken

    def transitions(self, changes: list[Transition]) -> list[bool]:
        """Several transitions committed together (one wait for all), then applied in order;
        for each, whether it was a legal edge (an illegal one is neither written nor applied)."""
        now = now_ms()
        plans = [self._plan(change, now) for change in changes]
        legal = [plan for plan in plans if plan is not None]
        if legal:
            ids = self.writer.write([w for plan in legal for w in plan.writes])
            for plan, event_id in zip(legal, ids, strict=True):
                self._apply(plan, event_id, now)
        return [plan is not None for plan in plans]

    def _plan(self, change: Transition, now: int) -> _Plan | None:
        record = change.record
        status = Status(change.status).value  # plain text from here on: the wire and the database
        try:
            check_edge(record.status, status)
        except IllegalTransition as exc:
            if self.strict:
                raise
            log.error("company %s: %s (reason %s): refused", record.company_id, exc, change.reason)
            self.metrics.incr("sessions.illegal_transitions")
            return None
        entry_effects = ENTRY[status]
        reason, message = clean(change.reason), clean(change.message)
        entry: dict[str, Any] = {"status": status, "at": now, "reason": reason}
        if change.retry_in is not None:
            entry["retryIn"] = round(change.retry_in, 3)
        payload = dict(change.data or {})
        if message:
            payload["message"] = message
        if change.retry_in is not None:
            payload["retryIn"] = entry["retryIn"]
        fields: dict[str, Any] = {"status": status, "since": now, "restarts": record.restarts}
        changes: dict[str, Any] = {}
        if entry_effects.keeps_until:
            changes["blocked_until"] = fields["blocked_until"] = change.until
        elif entry_effects.keeps_ban and cooldown.ban_pending(record, now):
            pass  # WhatsApp's ban outlives an operator's stop: its end stays
        elif record.blocked_until is not None:
            changes["blocked_until"] = fields["blocked_until"] = None
        if change.error:
            # A ban's end is not copied into the error: it is ``blocked_until`` (shown with it).
            changes["last_error"] = {"reason": reason, "message": message or "", "at": now}
            fields.update(last_error_reason=reason, last_error_message=message or "", last_error_at=now)
        if entry_effects.phone is Phone.FORGET:
            changes["phone"] = fields["phone"] = None
        else:  # written with every status: a cleanup's forgotten phone stays forgotten after a restart
            fields["phone"] = record.phone
        writes: list[Write] = [
            EventWrite(record.company_id, "status", status, reason, payload or None, now),
            SessionWrite(record.company_id, fields),
        ]
        return _Plan(change, status, writes, entry, payload, changes)

    def _apply(self, plan: _Plan, event_id: int, now: int) -> None:
        record, status, entry = plan.change.record, plan.status, plan.entry
        entry_effects = ENTRY[status]
        reason = entry["reason"]
        previous = record.status
        for name, value in plan.changes.items():
            setattr(record, name, value)
        if status == Status.CONNECTED and previous != status:
            self.metrics.figures.connected(record.company_id)
        record.status = status
        record.since = now
        record.history.append(entry)
        if not entry_effects.keeps_qr:
            record.qr = None
        if not entry_effects.keeps_pairing:
            record.pairing = None
        self.broadcaster.publish(
            EventRow(event_id, record.company_id, "status", status, reason, plan.payload, now)
        )
        self.metrics.incr("sessions.transitions")
        self.metrics.incr(f"sessions.transitions.{status}")
        log.info(
            "company %s: %s -> %s%s",
            record.company_id,
            previous,
            status,
            f" ({reason})" if reason else "",
        )

    def event(
        self,
        company_id: str | None,
        kind: str,
        *,
        reason: str | None = None,
        state: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        now = now_ms()
        (event_id,) = self.writer.write([EventWrite(company_id, kind, state, reason, data, now)])
        self.broadcaster.publish(EventRow(event_id, company_id, kind, state, reason, data or {}, now))

    def set_desired(self, company_id: str, desired: str, wait: bool = True) -> AsyncResult | None:
        """Committed before the API acknowledges: a stop must survive a kill -9. ``wait=False``
        only queues it and returns what to wait on before acknowledging."""
        pending = self.writer.submit([SessionWrite(company_id, {"desired_state": desired})])
        if not wait:
            return pending
        pending.get()
        return None

    def alert(
        self, company_id: str | None, kind: str, message: str, *, state: str | None = None, **data: Any
    ) -> None:
        """An ``alert`` event (reason: its kind). Alerts that hold while a condition does (the
        thresholds) have ``state`` ``firing``, and a later ``resolved`` one when it clears."""
        self.event(company_id, "alert", reason=kind, state=state, data=dict(data, message=message))
        self.metrics.incr(f"alerts.{kind}" if state != "resolved" else f"alerts.{kind}.resolved")
        log.warning(
            "ALERT %s%s%s: %s",
            kind,
            " resolved" if state == "resolved" else "",
            f" company {company_id}" if company_id else "",
            message,
        )
