"""The append-only event log: audit, history, and (later) replay for live streams."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wafleet.storage import deliveries
from wafleet.storage.database import Database
from wafleet.storage.models import Event
from wafleet.storage.sql import Insert

# Every message in and out is an event: its insert is pre-built (query building cost as much as
# SQLite's work).
_INSERT = Insert(Event, ("company", "kind", "state", "reason", "data", "at"))


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
    """Insert one event and the outbound deliveries it causes (company webhooks, the alert
    webhook), atomically: in the caller's transaction, or in one of its own."""
    with Event._meta.database.atomic():
        event_id = _INSERT.run(
            Event._meta.database,
            (company_id, kind, state, reason, json.dumps(data, separators=(",", ":")) if data else None, at),
        )
        deliveries.fan_out(company_id, kind, state, reason, data, at)
    return event_id


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


def recent_for(db: Database, first: str, last: str, kind: str, limit: int) -> dict[str, list[EventRow]]:
    """The newest ``limit`` events of one kind for every company with an id from ``first`` to
    ``last``, oldest first: one query for a page of companies instead of one per company,
    read as plain rows (building peewee models would cost more than the query)."""
    table, mark = Event._meta.table_name, db.db.param
    sql = (
        f'SELECT "id", "company", "state", "reason", "data", "at" FROM ('
        f'SELECT "id", "company", "state", "reason", "data", "at", '
        f'ROW_NUMBER() OVER (PARTITION BY "company" ORDER BY "id" DESC) AS "n" FROM "{table}" '
        f'WHERE "company" >= {mark} AND "company" <= {mark} AND "kind" = {mark}) AS "e" '
        f'WHERE "n" <= {mark} ORDER BY "id"'
    )
    out: dict[str, list[EventRow]] = {}
    with db.work():
        for id_, company, state, reason, data, at in db.db.execute_sql(sql, (first, last, kind, limit)):
            row = EventRow(id_, company, kind, state, reason, json.loads(data) if data else {}, at)
            out.setdefault(company, []).append(row)
    return out


def after(db: Database, company_id: str | None, last_id: int, limit: int = 500) -> list[EventRow]:
    """Events after ``last_id`` (one company, or all when company_id is None), oldest first."""
    with db.work():
        query = Event.select().where(Event.id > last_id)
        if company_id is not None:
            query = query.where(Event.company == company_id)
        return [_row(e) for e in query.order_by(Event.id).limit(limit)]


def latest_alerts(db: Database, kinds: tuple[str, ...]) -> dict[str, EventRow]:
    """The newest node-wide ``alert`` event of each kind (to learn which are still firing)."""
    found: dict[str, EventRow] = {}
    with db.work():
        for kind in kinds:
            event = (
                Event.select()
                .where((Event.company.is_null()) & (Event.kind == "alert") & (Event.reason == kind))
                .order_by(Event.id.desc())
                .first()
            )
            if event is not None:
                found[kind] = _row(event)
    return found
