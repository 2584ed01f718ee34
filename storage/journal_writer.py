"""The journal's writes, batched: every event and session-row update queued while one
transaction commits goes into the next one, and each caller is woken only after that commit.

Ten thousand sessions connecting at once each need "my transition is durable before anyone is
told": one transaction per transition, each borrowing a pooled connection, queues them behind a
20-connection pool on PostgreSQL until requests time out. Here one writer greenlet takes
everything queued, writes it in one transaction on one connection (on PostgreSQL a page of
statements per round trip), commits, then wakes the callers. A caller waits for at most the
batch in flight plus its own. Writes are applied in the order they were submitted, so the last
update of a session row wins, as it would one transaction at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue

from wafleet.storage import deliveries
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Event, Session

log = logging.getLogger(__name__)

PAGE = 200  # statements sent to PostgreSQL per round trip


@dataclass(frozen=True)
class EventWrite:
    company_id: str | None
    kind: str
    state: str | None
    reason: str | None
    data: dict[str, Any] | None
    at: int


@dataclass(frozen=True)
class SessionWrite:
    company_id: str
    fields: dict[str, Any]


Write = EventWrite | SessionWrite


class _Ticket:
    __slots__ = ("writes", "result")

    def __init__(self, writes: Sequence[Write]) -> None:
        self.writes = writes
        self.result: gevent.event.AsyncResult = gevent.event.AsyncResult()


class JournalWriter:
    def __init__(self, db: Database, *, max_batch: int = 1000) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: gevent.queue.Queue[_Ticket | None] = gevent.queue.Queue()
        self._writer: gevent.Greenlet | None = None
        self.batches = 0
        self.writes = 0

    def write(self, writes: Sequence[Write], timeout: float | None = None) -> list[int]:
        """Commit ``writes`` (in order) with the next batch; returns the new events' ids in the
        order of the EventWrites. Raises what the commit raised: then none of them is durable."""
        return self.submit(writes).get(timeout=timeout)

    def submit(self, writes: Sequence[Write]) -> gevent.event.AsyncResult:
        """Queue ``writes``; the result is set (event ids) once they are committed."""
        ticket = _Ticket(writes)
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._run)
            self._writer.name = "journal-writer"
        self._queue.put(ticket)
        return ticket.result

    def close(self) -> None:
        """Stop the writer once what was queued is committed."""
        if self._writer is not None and not self._writer.dead:
            self._queue.put(None)
            self._writer.join()
        self._writer = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first.writes)
            while size < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except gevent.queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
                size += len(item.writes)
            self._commit(batch)

    def _commit(self, batch: list[_Ticket]) -> None:
        writes = [w for ticket in batch for w in ticket.writes]
        try:
            with self.db.work(), self.db.atomic():
                ids = _apply(self.db, writes)
        except Exception as exc:  # handed to every caller: nothing of the batch is durable
            log.warning("journal: commit of %d writes failed: %s", len(writes), exc)
            for ticket in batch:
                ticket.result.set_exception(exc)
            return
        self.batches += 1
        self.writes += len(writes)
        position = 0
        for ticket in batch:
            count = sum(1 for w in ticket.writes if isinstance(w, EventWrite))
            ticket.result.set(ids[position : position + count])
            position += count


def _event_row(write: EventWrite) -> dict[str, Any]:
    return {
        "company": write.company_id,
        "kind": write.kind,
        "state": write.state,
        "reason": write.reason,
        "data": json.dumps(write.data, separators=(",", ":")) if write.data else None,
        "at": write.at,
    }


def _apply(db: Database, writes: list[Write]) -> list[int]:
    """Inside the caller's transaction: insert the events, then update the session rows, with
    one prepared statement per shape (peewee's query building costs more than SQLite's work)."""
    events = [w for w in writes if isinstance(w, EventWrite)]
    updates: dict[str, dict[str, Any]] = {}
    for w in writes:
        if isinstance(w, SessionWrite):
            updates.setdefault(w.company_id, {}).update(w.fields)  # in order: the last one wins
    postgres = db.kind == "postgresql"
    mark = "%s" if postgres else "?"
    cursor = db.db.cursor()
    many = _batch_executor(cursor) if postgres else cursor.executemany
    ids: list[int] = []
    if events:
        table = Event._meta.table_name
        if postgres:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                (table, len(events)),
            )
            ids = sorted(row[0] for row in cursor.fetchall())
        else:  # one connection, inside our transaction: nobody else inserts meanwhile
            cursor.execute(f'SELECT COALESCE(MAX("id"), 0) FROM "{table}"')
            first = cursor.fetchone()[0] + 1
            ids = list(range(first, first + len(events)))
        columns = ("id", "company", "kind", "state", "reason", "data", "at")
        sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
            table, ", ".join(f'"{c}"' for c in columns), ", ".join([mark] * len(columns))
        )
        many(sql, [(i, *_event_row(e).values()) for i, e in zip(ids, events, strict=True)])
        for e in events:  # the outbound deliveries an event causes commit with it
            deliveries.fan_out(e.company_id, e.kind, e.state, e.reason, e.data, e.at)
    now = now_ms()
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for company_id, fields in updates.items():
        names = tuple(sorted(fields))
        by_columns.setdefault(names, []).append((*(fields[n] for n in names), now, company_id))
    session_fields = Session._meta.fields
    for names, rows in by_columns.items():
        assignments = ", ".join(f'"{session_fields[n].column_name}" = {mark}' for n in (*names, "updated_at"))
        key = session_fields["company"].column_name
        many(f'UPDATE "{Session._meta.table_name}" SET {assignments} WHERE "{key}" = {mark}', rows)
    return ids


def _batch_executor(cursor: Any) -> Any:
    """PostgreSQL: a page of statements per round trip instead of one each."""
    from psycopg2.extras import execute_batch

    return lambda sql, rows: execute_batch(cursor, sql, rows, page_size=PAGE)
