"""The outbox: messages a client asked to send. ``enqueue`` returns only once the row is
committed, so a 202 from ``send`` survives a kill -9; the deliverer works the rows after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import peewee

from wafleet.storage.clock import now_ms
from wafleet.storage.crypto import PLAIN, TextSeal
from wafleet.storage.database import Database
from wafleet.storage.models import Outbox
from wafleet.storage.sql import Insert, Statement, columns, table

# A row still to be sent ('sending': an attempt was under way when the process stopped).
PENDING = ("queued", "sending")
_IN_PENDING = f"state IN ({', '.join(repr(state) for state in PENDING)})"
# enqueue runs for every reply the assistant sends: pre-built (query building cost as much as
# SQLite's work). "+ 0" keeps SQLite from answering MAX by walking every pending row in next_at
# order.
_LAST_PENDING = Statement(
    f"SELECT MAX(next_at + 0) FROM {table(Outbox)} WHERE company = ? AND peer = ? AND {_IN_PENDING}"
)
_INSERT = Insert(Outbox, ("company", "peer", "text", "state", "attempts", "next_at", "created_at"))
# The deliverer's statements for every row it sends, pre-built for the same reason.
_COLUMNS = ("id", "company", "peer", "text", "state", "attempts", "next_at", "wa_id", "error", "created_at")
_REQUEUE = Statement(f"UPDATE {table(Outbox)} SET state = 'queued' WHERE company = ? AND state = 'sending'")
_QUEUED_PAGE = Statement(
    f"SELECT {columns(_COLUMNS)} FROM {table(Outbox)} "
    "WHERE company = ? AND state = 'queued' AND next_at <= ? AND id > ? ORDER BY id LIMIT ?"
)
_EARLIER_PENDING = Statement(
    f"SELECT 1 FROM {table(Outbox)} WHERE company = ? AND peer = ? AND {_IN_PENDING} AND id < ? LIMIT 1"
)
_HAS_DUE = Statement(
    f"SELECT 1 FROM {table(Outbox)} WHERE company = ? AND {_IN_PENDING} AND next_at <= ? LIMIT 1"
)
_UPDATES: dict[tuple[str, ...], Statement] = {}  # by the columns set


@dataclass(frozen=True)
class OutboxRow:
    id: int
    company_id: str
    peer: str
    text: str
    state: str
    attempts: int
    next_at: int
    wa_id: str | None
    error: dict[str, Any] | None
    created_at: int

    def json(self) -> dict[str, Any]:
        from wafleet.storage.clock import iso

        return {
            "id": self.id,
            "companyId": self.company_id,
            "phone": self.peer,
            "status": self.state,
            "attempts": self.attempts,
            "waId": self.wa_id,
            "error": self.error,
            "createdAt": iso(self.created_at),
        }


def _from_values(values: tuple[Any, ...], seal: TextSeal = PLAIN) -> OutboxRow:
    """A row read by a pre-built statement selecting _COLUMNS."""
    row_id, company, peer, text, state, attempts, next_at, wa_id, error, created_at = values
    return OutboxRow(
        row_id, company, peer, seal.open(company, text) or "", state, attempts, next_at, wa_id,
        json.loads(error) if error else None, created_at,
    )  # fmt: skip


def _row(r: Outbox, seal: TextSeal = PLAIN) -> OutboxRow:
    return OutboxRow(
        id=r.id,
        company_id=r.company,
        peer=r.peer,
        text=seal.open(r.company, r.text) or "",
        state=r.state,
        attempts=r.attempts,
        next_at=r.next_at,
        wa_id=r.wa_id,
        error=json.loads(r.error) if r.error else None,
        created_at=r.created_at,
    )


def enqueue(db: Database, company_id: str, peer: str, text: str) -> OutboxRow:
    """Commit a new row. It is never due before an earlier pending row to the same customer: a
    customer's messages go out in the order accepted, so a later row waits with an earlier one."""
    now = now_ms()
    with db.work(), db.atomic():
        waiting = _LAST_PENDING.one(db, (company_id, peer))
        next_at = max(now, (waiting[0] if waiting else None) or 0)
        sealed = db.text_seal.seal(company_id, text)
        row_id = _INSERT.run(db, (company_id, peer, sealed, "queued", 0, next_at, now))
    return OutboxRow(row_id, company_id, peer, text, "queued", 0, next_at, None, None, now)


def due_companies(db: Database, now: int) -> list[str]:
    """Companies with a row whose time has come, the one waiting longest first."""
    with db.work():
        query = (
            Outbox.select(Outbox.company)
            .where(Outbox.state.in_(PENDING) & (Outbox.next_at <= now))
            .group_by(Outbox.company)
            .order_by(peewee.fn.MIN(Outbox.id))
        )
        return [r.company for r in query]


def requeue_interrupted(db: Database, company_id: str) -> None:
    """Rows left 'sending' (the attempt's outcome was lost with a crash) are queued again. Call it
    only where no attempt for this company can be under way."""
    with db.work():
        _REQUEUE.run(db, (company_id,))


def due_heads(db: Database, company_id: str, now: int, limit: int) -> list[OutboxRow]:
    """The company's queued rows that may be sent now, oldest first: per customer only the
    earliest pending row (its head of line), and only once its time has come."""
    heads: list[OutboxRow] = []
    seen: set[str] = set()
    after = 0
    page = 2 * limit
    with db.work():
        while len(heads) < limit:
            rows = _QUEUED_PAGE.all(db, (company_id, now, after, page))
            for values in rows:
                r = _from_values(values, db.text_seal)
                after = r.id
                if r.peer in seen:
                    continue
                seen.add(r.peer)
                if _EARLIER_PENDING.one(db, (r.company_id, r.peer, r.id)) is None:
                    heads.append(r)
                    if len(heads) >= limit:
                        break
            if len(rows) < page:
                break
    return heads


def has_due(db: Database, company_id: str, now: int) -> bool:
    with db.work():
        return _HAS_DUE.one(db, (company_id, now)) is not None


def hold(db: Database, company_id: str, until: int, peer: str | None = None) -> None:
    """Nothing pending of the company (or of one of its customers) is due before ``until``."""
    where = (Outbox.company == company_id) & Outbox.state.in_(PENDING) & (Outbox.next_at < until)
    if peer is not None:
        where &= Outbox.peer == peer
    with db.work():
        Outbox.update(next_at=until).where(where).execute()


def hold_behind_heads(db: Database, company_id: str, now: int) -> int:
    """Repair rows that are due while an earlier row to their customer is not (a row accepted
    while its head was being rescheduled): they wait for their head. Returns the rows moved."""
    earlier = Outbox.alias()
    with db.work():
        behind = (
            Outbox.select(Outbox.peer)
            .where(
                (Outbox.company == company_id)
                & Outbox.state.in_(PENDING)
                & (Outbox.next_at <= now)
                & peewee.fn.EXISTS(
                    earlier.select(peewee.SQL("1")).where(
                        (earlier.company == Outbox.company)
                        & (earlier.peer == Outbox.peer)
                        & earlier.state.in_(PENDING)
                        & (earlier.id < Outbox.id)
                    )
                )
            )
            .distinct()
            .limit(1000)
        )
        moved = 0
        for peer in [r.peer for r in behind]:
            head = (
                Outbox.select(Outbox.next_at)
                .where((Outbox.company == company_id) & (Outbox.peer == peer) & Outbox.state.in_(PENDING))
                .order_by(Outbox.id)
                .first()
            )
            if head is not None:
                moved += (
                    Outbox.update(next_at=head.next_at)
                    .where(
                        (Outbox.company == company_id)
                        & (Outbox.peer == peer)
                        & Outbox.state.in_(PENDING)
                        & (Outbox.next_at < head.next_at)
                    )
                    .execute()
                )
        return moved


def next_due_at(db: Database, after: int) -> int | None:
    """The earliest time later than ``after`` at which a pending row comes due."""
    with db.work():
        row = (
            Outbox.select(Outbox.next_at)
            .where(Outbox.state.in_(PENDING) & (Outbox.next_at > after))
            .order_by(Outbox.next_at)
            .first()
        )
        return row.next_at if row else None


def update(db: Database, row_id: int, **fields: Any) -> None:
    if "error" in fields and fields["error"] is not None:
        fields["error"] = json.dumps(fields["error"])
    names = tuple(sorted(fields))
    statement = _UPDATES.get(names)
    if statement is None:
        unknown = set(names) - set(_COLUMNS[1:])
        if unknown or not names:
            raise TypeError(f"not outbox columns: {sorted(unknown) or 'none given'}")
        assignments = ", ".join(f'"{name}" = ?' for name in names)
        statement = _UPDATES[names] = Statement(f"UPDATE {table(Outbox)} SET {assignments} WHERE id = ?")
    with db.work():
        statement.run(db, [fields[name] for name in names] + [row_id])


def get(db: Database, row_id: int) -> OutboxRow | None:
    with db.work():
        row = Outbox.get_or_none(Outbox.id == row_id)
        return _row(row, db.text_seal) if row else None
