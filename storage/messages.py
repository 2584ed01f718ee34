"""Messages in and out, from any link: stored once (a WhatsApp id is unique per company),
statuses only forward.

Every function takes the connection itself (``db.work()`` is re-entrant) and is safe inside a
caller's transaction: a duplicate insert yields to the unique key (INSERT ... ON CONFLICT DO
NOTHING), so on PostgreSQL it does not abort the surrounding transaction.
"""

from __future__ import annotations

import enum
import json
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import peewee

from wafleet.storage import events
from wafleet.storage.clock import now_ms
from wafleet.storage.crypto import PLAIN, TextSeal
from wafleet.storage.database import Database
from wafleet.storage.models import Message, PendingStatus
from wafleet.storage.paging import newest_first
from wafleet.storage.sql import Insert, Statement, columns, table

# Delivery statuses of our messages, in the only order they may move. ``failed`` is final.
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}
FINAL = "failed"
BLOCKED = "blocked"  # the status of an inbound message from a number the company blocked


def _dumps(value: Any) -> str | None:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else None


def _clip(value: str | None, size: int) -> str | None:
    return value if value is None or len(value) <= size else value[:size]


class _Inserts:
    """The message inserts for one set of columns, written once: every message in and out is
    stored, and building the statement with peewee cost as much CPU as SQLite's work."""

    def __init__(self, names: tuple[str, ...]) -> None:
        marks = ", ".join("?" for _ in names)
        ignore = f"INSERT INTO {table(Message)} ({columns(names)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        self.plain = Insert(Message, names)
        self.ignore = Statement(ignore)
        self.ignore_returning = Statement(ignore + ' RETURNING "id"')


_INSERTS: dict[tuple[str, ...], _Inserts] = {}  # by the columns given
_BY_WA_ID = Statement(f"SELECT id FROM {table(Message)} WHERE company = ? AND wa_id = ?")


def _insert(db: Database, fields: dict[str, Any]) -> tuple[int, bool]:
    """One statement whether or not the WhatsApp id is known (INSERT that yields to the unique
    key): no savepoint, so it costs no extra round trips inside a caller's transaction."""
    fields = dict(fields, text=db.text_seal.seal(fields["company"], fields.get("text")))
    wa_id = fields.get("wa_id")
    names = tuple(fields)
    statements = _INSERTS.get(names) or _INSERTS.setdefault(names, _Inserts(names))
    values = tuple(fields.values())
    with db.work():
        if wa_id is None:
            return statements.plain.run(db, values), True
        if db.kind == "sqlite":
            cursor = statements.ignore.run(db, values)
            if cursor.rowcount == 1:
                return cursor.lastrowid, True
        else:
            row = statements.ignore_returning.one(db, values)
            if row is not None:
                return row[0], True
        existing = _BY_WA_ID.one(db, (fields["company"], wa_id))
        if existing is None:
            raise peewee.IntegrityError(f"message {wa_id!r} could not be stored")
        return existing[0], False


TEXT_IN_EVENT = 1000  # the event carries a preview; the message itself is in the messages table


@dataclass(frozen=True)
class Stored:
    id: int
    created: bool  # False: its WhatsApp id was known already (a redelivery, our own send back)
    event: events.EventRow | None = None  # the ``message`` event committed with it


def _row(
    company_id: str,
    direction: str,
    peer: str,
    type: str,
    text: str | None,
    wa_id: str | None,
    status: str | None,
    at: int,
    media: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new message's columns, whichever way it goes."""
    return {
        "company": company_id,
        "direction": direction,
        "peer": _clip(peer, 64) or "",
        "type": _clip(type, 32) or "unknown",
        "text": text,
        "media": _dumps(media),
        "wa_id": wa_id,
        "status": status,
        "error": None,
        "at": at,
    }


def event_data(
    db: Database, message_id: int, direction: str, peer: str, type: str | None, wa_id: str | None, text: Any
) -> dict[str, Any]:
    """What a ``message`` event says: a preview of the text, none when texts are sealed at rest
    (the event is a stored row too)."""
    text = None if db.text_seal.on else text
    return {
        "messageId": message_id,
        "direction": direction,
        "peer": peer,
        "type": type,
        "waId": wa_id,
        "text": text[:TEXT_IN_EVENT] if isinstance(text, str) else None,
    }


def _store(db: Database, fields: dict[str, Any], announce: bool) -> Stored:
    """Insert once and, with ``announce``, write its ``message`` event (and the webhook
    deliveries it causes) in the same transaction: no message the company is never told of."""
    with db.work(), db.atomic():
        row_id, created = _insert(db, fields)
        if not (created and announce):
            return Stored(row_id, created)
        data = event_data(
            db, row_id, fields["direction"], fields["peer"], fields["type"], fields["wa_id"], fields["text"]
        )
        at = now_ms()
        kind, reason = "message", fields["direction"]
        event_id = events.append(fields["company"], kind, state=None, reason=reason, data=data, at=at)
    return Stored(row_id, True, events.EventRow(event_id, fields["company"], kind, None, reason, data, at))


def store_inbound(
    db: Database,
    company_id: str,
    peer: str,
    type: str,
    text: str | None,
    media: dict[str, Any] | None,
    wa_id: str | None,
    at: int,
    *,
    blocked: bool = False,
    announce: bool = False,
) -> Stored:
    """Insert an inbound message once (a known ``wa_id`` gives its row, ``created`` False). One
    from a number the company blocked is kept, marked, and never announced."""
    status = BLOCKED if blocked else None
    fields = _row(company_id, "in", peer, type, text, wa_id, status, at, media)
    return _store(db, fields, announce and not blocked)


def store_outbound(
    db: Database,
    company_id: str,
    peer: str,
    text: str,
    wa_id: str | None,
    status: str,
    at: int | None = None,
    *,
    announce: bool = False,
) -> Stored:
    """Record a message we sent (or queued); a known ``wa_id`` returns the row it already has.
    Statuses that arrived before this row (Meta's webhook can overtake the send's answer) are
    applied in the same transaction."""
    with db.work(), db.atomic():
        fields = _row(
            company_id, "out", peer, "text", text, wa_id, status, at if at is not None else now_ms()
        )
        stored = _store(db, fields, announce)
        if stored.created and wa_id is not None:
            parked = list(
                PendingStatus.select().where(
                    (PendingStatus.company == company_id) & (PendingStatus.wa_id == wa_id)
                )
            )
            if parked:
                _apply_parked(db, parked)
    return stored


def store_from_phone(
    db: Database,
    company_id: str,
    peer: str,
    text: str | None,
    wa_id: str | None,
    at: int,
    *,
    announce: bool = False,
) -> Stored:
    """A message the company sent from its own phone (not through us): stored once as ``out``;
    ``created`` False when its WhatsApp id is known already (our own send coming back)."""
    return _store(db, _row(company_id, "out", peer, "text", text, wa_id, "sent", at), announce)


class StatusResult(enum.Enum):
    APPLIED = "applied"  # the message's status moved
    IGNORED = "ignored"  # backwards, repeated, unknown status, or not an outgoing message
    PARKED = "parked"  # no such outgoing message yet: kept until its row appears


# What each status may replace. ``failed`` is final, and it never replaces a status that proves
# the message reached the customer (Meta's statuses arrive out of order: a late ``failed`` of an
# earlier attempt must not turn a read message into a failed one).
REPLACES: dict[str, tuple[str, ...]] = {
    **{s: tuple(p for p, rank in STATUS_RANK.items() if rank < r) for s, r in STATUS_RANK.items()},
    FINAL: ("queued", "sent"),
}


def _update_status(db: Database, company_id: str, wa_id: str, status: str, error: Any) -> bool:
    """One conditional UPDATE (no read-modify-write race) and, when it moved the status, a
    ``message_status`` event in the same transaction (audit, and the company's
    ``message.status`` webhooks), stamped now. ``error``: Meta's, as a dict or as stored JSON."""
    if isinstance(error, str):
        error = json.loads(error)
    fields: dict[str, Any] = {"status": status}
    if status == FINAL:
        fields["error"] = _dumps(error)
    with db.work(), nullcontext() if db.db.in_transaction() else db.atomic():
        changed = (
            Message.update(**fields)
            .where(
                (Message.company == company_id)
                & (Message.wa_id == wa_id)
                & (Message.direction == "out")
                & (Message.status.is_null() | Message.status.in_(list(REPLACES[status])))
            )
            .execute()
        )
        if changed:
            row = Message.get((Message.company == company_id) & (Message.wa_id == wa_id))
            data = {"messageId": row.id, "waId": wa_id, "peer": row.peer}
            if status == FINAL and error:
                data["error"] = error
            events.append(company_id, "message_status", state=status, reason=None, data=data, at=now_ms())
    return changed > 0


def apply_status(
    db: Database,
    company_id: str,
    wa_id: str,
    status: str,
    error: dict[str, Any] | None,
    at: int,
    *,
    park: bool = False,
) -> StatusResult:
    """Move the company's outgoing message ``wa_id`` forward: sent < delivered < read < played;
    ``failed`` only from queued or sent, keeping Meta's error. One conditional UPDATE: no
    read-modify-write race. Never by WhatsApp id alone: another company's message with the same
    id is not touched. With ``park``, a status for a message this company has no row for yet is
    kept (PendingStatus) and applied by :func:`store_outbound` when the row appears. ``at`` (the
    status time) is not stored: the table keeps the message's own time."""
    del at
    if status not in REPLACES:
        return StatusResult.IGNORED
    with db.work():
        if _update_status(db, company_id, wa_id, status, error):
            return StatusResult.APPLIED
        exists = (
            Message.select(Message.id)
            .where((Message.company == company_id) & (Message.wa_id == wa_id))
            .exists()
        )
        if exists or not park:
            return StatusResult.IGNORED
        PendingStatus.insert(
            company=company_id, wa_id=wa_id, status=status, error=_dumps(error), received_at=now_ms()
        ).execute()
    return StatusResult.PARKED


def _apply_parked(db: Database, parked: list[PendingStatus]) -> int:
    """Apply parked statuses in arrival order (each only moves forward), then forget them."""
    applied = 0
    for row in sorted(parked, key=lambda r: r.id):
        applied += _update_status(db, row.company, row.wa_id, row.status, row.error)
    ids = [row.id for row in parked]
    for start in range(0, len(ids), 500):
        PendingStatus.delete().where(PendingStatus.id.in_(ids[start : start + 500])).execute()
    return applied


def apply_parked(db: Database, older_than: int | None = None) -> int:
    """Apply every parked status whose message row exists now (a status and the row that were
    written at the same moment by two transactions miss each other: this catches them), and
    drop those received before ``older_than`` whose row never came. Returns statuses applied.
    Reads first and writes only when there is something to write (on SQLite any write takes the
    one write lock)."""
    with db.work():
        if not PendingStatus.select(PendingStatus.id).exists():
            return 0
        parked = list(
            PendingStatus.select(PendingStatus)
            .join(
                Message,
                on=(Message.company == PendingStatus.company) & (Message.wa_id == PendingStatus.wa_id),
            )
            .limit(5000)
        )
        expired = older_than is not None and (
            PendingStatus.select(PendingStatus.id).where(PendingStatus.received_at < older_than).exists()
        )
        if not parked and not expired:
            return 0
        with db.atomic():
            applied = _apply_parked(db, parked) if parked else 0
            if expired:
                PendingStatus.delete().where(PendingStatus.received_at < older_than).execute()
    return applied


def parked_count(db: Database) -> int:
    with db.work():
        return PendingStatus.select().count()


def mark_blocked(db: Database, row_id: int) -> None:
    """An inbound message from a blocked number: kept, and shown as such, never answered."""
    with db.work():
        Message.update(status=BLOCKED).where((Message.id == row_id) & (Message.direction == "in")).execute()


def as_dict(row: Message, seal: TextSeal = PLAIN) -> dict[str, Any]:
    """The row as the API shows it; a sealed text is opened (None when its key is gone)."""
    return {
        "id": row.id,
        "companyId": row.company,
        "direction": row.direction,
        "peer": row.peer,
        "type": row.type,
        "text": seal.open(row.company, row.text),
        "media": json.loads(row.media) if row.media else None,
        "waId": row.wa_id,
        "status": row.status,
        "blocked": row.direction == "in" and row.status == BLOCKED,
        "error": json.loads(row.error) if row.error else None,
        "at": row.at,
    }


def get(db: Database, company_id: str, wa_id: str) -> dict[str, Any] | None:
    """The company's message with this WhatsApp id (another company's is not it)."""
    with db.work():
        row = Message.get_or_none((Message.company == company_id) & (Message.wa_id == wa_id))
    return as_dict(row, db.text_seal) if row else None


def page(
    db: Database, company_id: str, limit: int, before_id: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """A company's messages, newest first, ``limit`` at a time; the cursor is the last id given
    (pass it back as ``before_id``), None when there is nothing older."""
    rows, cursor = newest_first(db, Message, company_id, limit, before_id)
    return [as_dict(r, db.text_seal) for r in rows], cursor
