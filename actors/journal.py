"""Every state change of a session: applied to its record, persisted, and counted.

Called only from inside actors (the session, or the fleet while the session is down). The event
row and the session row are written in one transaction, so history and state never disagree;
that transaction is shared with every other write queued meanwhile (storage/journal_writer.py),
so a session's answer waits for one batched commit, not for a pooled connection of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gevent.event import AsyncResult

from wafleet.actors.broadcast import Broadcaster
from wafleet.actors.directory import SessionRecord
from wafleet.actors.metrics import Metrics
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
    """One status change of one record, as the journal will write and then apply it."""

    record: SessionRecord
    status: str
    reason: str | None = None
    message: str | None = None
    retry_in: float | None = None
    error: bool = False
    data: dict[str, Any] | None = None


class Journal:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        broadcaster: Broadcaster | None = None,
        writer: JournalWriter | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.broadcaster = broadcaster or Broadcaster()
        self.writer = writer or JournalWriter(db)

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
    ) -> None:
        """Durable first, then visible: the record (what status requests read) and the live
        streams change only once the event and the session row are committed."""
        self.transitions([Transition(record, status, reason, message, retry_in, error, data)])

    def transitions(self, changes: list[Transition]) -> None:
        """Several transitions committed together (one wait for all), then applied in order."""
        if not changes:
            return
        now = now_ms()
        planned = [self._plan(change, now) for change in changes]
        ids = self.writer.write([w for plan in planned for w in plan[1]])
        for (change, _writes, entry, payload, last_error), event_id in zip(planned, ids, strict=True):
            self._apply(change, entry, payload, last_error, event_id, now)

    def _plan(
        self, change: Transition, now: int
    ) -> tuple[Transition, list[Write], dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        record, status = change.record, change.status
        reason, message = clean(change.reason), clean(change.message)
        entry: dict[str, Any] = {"status": status, "at": now, "reason": reason}
        if change.retry_in is not None:
            entry["retryIn"] = round(change.retry_in, 3)
        payload = dict(change.data or {})
        if message:
            payload["message"] = message
        if change.retry_in is not None:
            payload["retryIn"] = entry["retryIn"]
        # The phone is written with every status: a logout or cleanup forgets it for good.
        fields: dict[str, Any] = {
            "status": status,
            "since": now,
            "restarts": record.restarts,
            "phone": record.phone,
        }
        last_error = record.last_error
        if change.error:
            last_error = {"reason": reason, "message": message or "", "at": now}
            if status == "failed" and change.data and "until" in change.data:
                last_error["until"] = change.data["until"]  # a ban's end is part of the error
            fields.update(
                last_error_reason=reason,
                last_error_message=message or "",
                last_error_at=now,
                last_error_until=last_error.get("until"),
            )
        fields["blocked_until"] = record.blocked_until if status == "blocked" else None
        writes: list[Write] = [
            EventWrite(record.company_id, "status", status, reason, payload or None, now),
            SessionWrite(record.company_id, fields),
        ]
        return change, writes, entry, payload, last_error

    def _apply(
        self,
        change: Transition,
        entry: dict[str, Any],
        payload: dict[str, Any],
        last_error: dict[str, Any] | None,
        event_id: int,
        now: int,
    ) -> None:
        record, status, reason = change.record, change.status, entry["reason"]
        previous = record.status
        record.status = status
        record.since = now
        record.last_error = last_error
        if status != "blocked":
            record.blocked_until = None
        record.history.append(entry)
        if status not in ("qr", "pairing"):
            record.qr = None
        if status != "pairing":
            record.pairing = None
        self.broadcaster.publish(
            EventRow(event_id, record.company_id, "status", status, reason, payload, now)
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

    def alert(self, company_id: str | None, kind: str, message: str, **data: Any) -> None:
        self.event(company_id, "alert", reason=kind, data=dict(data, message=message))
        self.metrics.incr(f"alerts.{kind}")
        log.warning("ALERT %s%s: %s", kind, f" company {company_id}" if company_id else "", message)
