"""Every state change of a session: applied to its record, persisted, and counted.

Called only from inside actors (the session, or the fleet while the session is down). The event
row and the session row are written in one transaction, so history and state never disagree.
Only legal edges of the state machine (``wafleet.actors.status.LEGAL_FROM``) are taken; what
entering a state does to the record is ``wafleet.actors.exit_policy.ENTRY``.
"""

from __future__ import annotations

import logging
from typing import Any

from wafleet.actors.broadcast import Broadcaster
from wafleet.actors.directory import SessionRecord
from wafleet.actors.exit_policy import ENTRY, Phone
from wafleet.actors.metrics import Metrics
from wafleet.actors.status import IllegalTransition, Status, check_edge
from wafleet.storage import companies, events
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.events import EventRow

log = logging.getLogger(__name__)


def clean(text: str | None) -> str | None:
    """Text from a link (a close message, a reason) made safe for any database: no NUL, no lone
    surrogates. A bad byte from WhatsApp must never fail the write that records the failure."""
    if text is None:
        return None
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


class Journal:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        broadcaster: Broadcaster | None = None,
        *,
        strict: bool = False,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.broadcaster = broadcaster or Broadcaster()
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
        """Enter ``status``; False (and nothing written) when it is not a legal edge.

        ``until`` (epoch ms): the end of a cool-down or a ban, kept by the states whose entry
        is set by a transition into a state that keeps it, and cleared by every other."""
        status = Status(status).value  # plain text from here on: the wire and the database
        try:
            check_edge(record.status, status)
        except IllegalTransition as exc:
            if self.strict:
                raise
            log.error("company %s: %s (reason %s): refused", record.company_id, exc, reason)
            self.metrics.incr("sessions.illegal_transitions")
            return False
        entry_effects = ENTRY[status]
        now = now_ms()
        reason, message = clean(reason), clean(message)
        entry: dict[str, Any] = {"status": status, "at": now, "reason": reason}
        if retry_in is not None:
            entry["retryIn"] = round(retry_in, 3)
        payload = dict(data or {})
        if message:
            payload["message"] = message
        if retry_in is not None:
            payload["retryIn"] = entry["retryIn"]
        fields: dict[str, Any] = {"status": status, "since": now, "restarts": record.restarts}
        # The record changes only once the rows are committed: a reader never sees half a state.
        changes: dict[str, Any] = {}
        if error:
            changes["last_error"] = {"reason": reason, "message": message or "", "at": now}
            fields.update(last_error_reason=reason, last_error_message=message or "", last_error_at=now)
        if entry_effects.phone is Phone.SAVE:
            fields["phone"] = record.phone
        elif entry_effects.phone is Phone.FORGET:
            changes["phone"] = fields["phone"] = None
        if entry_effects.keeps_until:
            changes["blocked_until"] = fields["blocked_until"] = until
        elif record.blocked_until is not None:
            changes["blocked_until"] = fields["blocked_until"] = None
        with self.db.work(), self.db.atomic():
            event_id = events.append(
                record.company_id, "status", state=status, reason=reason, data=payload, at=now
            )
            companies.save_session(self.db, record.company_id, **fields)
        previous = record.status
        for name, value in changes.items():
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
        return True

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
        with self.db.work():
            event_id = events.append(company_id, kind, state=state, reason=reason, data=data, at=now)
        self.broadcaster.publish(EventRow(event_id, company_id, kind, state, reason, data or {}, now))

    def set_desired(self, company_id: str, desired: str) -> None:
        """Committed before the API acknowledges: a stop must survive a kill -9."""
        with self.db.work():
            companies.save_session(self.db, company_id, desired_state=desired)

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
