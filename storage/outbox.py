"""The outbox: messages a client asked to send. ``enqueue`` returns only once the row is
committed, so a 202 from ``send`` survives a kill -9; the deliverer works the rows after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Outbox


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


def _row(r: Outbox) -> OutboxRow:
    return OutboxRow(
        id=r.id,
        company_id=r.company,
        peer=r.peer,
        text=r.text,
        state=r.state,
        attempts=r.attempts,
        next_at=r.next_at,
        wa_id=r.wa_id,
        error=json.loads(r.error) if r.error else None,
        created_at=r.created_at,
    )


def enqueue(db: Database, company_id: str, peer: str, text: str) -> OutboxRow:
    now = now_ms()
    with db.work(), db.atomic():
        row_id = Outbox.insert(
            company=company_id,
            peer=peer,
            text=text,
            state="queued",
            attempts=0,
            next_at=now,
            created_at=now,
        ).execute()
    return OutboxRow(row_id, company_id, peer, text, "queued", 0, now, None, None, now)


def due(db: Database, now: int, limit: int = 200) -> list[OutboxRow]:
    """Queued rows whose time has come, oldest first (a row left 'sending' by a crash too)."""
    with db.work():
        query = (
            Outbox.select()
            .where((Outbox.state.in_(("queued", "sending"))) & (Outbox.next_at <= now))
            .order_by(Outbox.id)
            .limit(limit)
        )
        return [_row(r) for r in query]


def next_due_at(db: Database) -> int | None:
    with db.work():
        row = (
            Outbox.select(Outbox.next_at)
            .where(Outbox.state.in_(("queued", "sending")))
            .order_by(Outbox.next_at)
            .first()
        )
        return row.next_at if row else None


def update(db: Database, row_id: int, **fields: Any) -> None:
    if "error" in fields and fields["error"] is not None:
        fields["error"] = json.dumps(fields["error"])
    with db.work():
        Outbox.update(**fields).where(Outbox.id == row_id).execute()


def get(db: Database, row_id: int) -> OutboxRow | None:
    with db.work():
        row = Outbox.get_or_none(Outbox.id == row_id)
        return _row(row) if row else None
