"""The append-only event log: audit, history, and (later) replay for live streams."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import peewee

from wafleet.storage.database import Database
from wafleet.storage.models import Event


@dataclass(frozen=True)
class EventRow:
    id: int
    company_id: str | None
    kind: str
    state: str | None
    reason: str | None
    data: dict[str, Any]
    at: int


def append(
    company_id: str | None,
    kind: str,
    *,
    state: str | None,
    reason: str | None,
    data: dict[str, Any] | None,
    at: int,
) -> int:
    """Insert one event; the caller holds the connection (and usually a transaction)."""
    return Event.insert(
        company=company_id,
        kind=kind,
        state=state,
        reason=reason,
        data=json.dumps(data, separators=(",", ":")) if data else None,
        at=at,
    ).execute()


def _row(e: Event) -> EventRow:
    return EventRow(
        id=e.id,
        company_id=e.company,
        kind=e.kind,
        state=e.state,
        reason=e.reason,
        data=json.loads(e.data) if e.data else {},
        at=e.at,
    )


def recent(db: Database, company_id: str, kind: str, limit: int) -> list[EventRow]:
    """The newest ``limit`` events of one kind for a company, oldest first."""
    with db.work():
        rows = (
            Event.select()
            .where((Event.company == company_id) & (Event.kind == kind))
            .order_by(Event.id.desc())
            .limit(limit)
        )
        return [_row(e) for e in reversed(list(rows))]


def recent_for(db: Database, company_ids: list[str], kind: str, limit: int) -> dict[str, list[EventRow]]:
    """The newest ``limit`` events of one kind for each of many companies, oldest first: one
    query for a page of companies instead of one per company."""
    if not company_ids:
        return {}
    number = peewee.fn.ROW_NUMBER().over(partition_by=[Event.company], order_by=[Event.id.desc()]).alias("n")
    inner = (
        Event.select(Event, number).where((Event.company.in_(company_ids)) & (Event.kind == kind)).alias("e")
    )
    columns = [
        inner.c.id,
        inner.c.company,
        inner.c.kind,
        inner.c.state,
        inner.c.reason,
        inner.c.data,
        inner.c.at,
    ]
    query = Event.select(*columns).from_(inner).where(inner.c.n <= limit).order_by(inner.c.id).objects()
    out: dict[str, list[EventRow]] = {}
    with db.work():
        for e in query:
            out.setdefault(e.company, []).append(_row(e))
    return out


def after(db: Database, company_id: str | None, last_id: int, limit: int = 500) -> list[EventRow]:
    """Events after ``last_id`` (one company, or all when company_id is None), oldest first."""
    with db.work():
        query = Event.select().where(Event.id > last_id)
        if company_id is not None:
            query = query.where(Event.company == company_id)
        return [_row(e) for e in query.order_by(Event.id).limit(limit)]
