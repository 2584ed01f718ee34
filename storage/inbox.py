"""The webhook inbox: raw payloads committed before Meta gets its 200, processed after.

A row remembers which URL received it (``source``: the company whose own app signed it, None for
the global URL), whose data it holds (``company``), which numbers were applied already
(``routed``), which no company owned (``unrouted``, indexed in WebhookUnrouted so that a company
claiming a number finds every payload of it) and which its URL may not touch (``rejected``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import gevent
import gevent.event
import gevent.queue

from wafleet.storage.database import Database
from wafleet.storage.models import Company, WebhookInbox, WebhookUnrouted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboxRow:
    id: int
    body: str
    received_at: int
    source: str | None = None
    company: str | None = None
    routed: list[str] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def first_time(self) -> bool:
        """Never processed before (a requeued row has been)."""
        return not (self.routed or self.unrouted or self.rejected)


@dataclass(frozen=True)
class Kept:
    id: int
    phone_number_ids: list[str]
    received_at: int
    source: str | None


def _list(text: str | None) -> list[str]:
    return json.loads(text) if text else []


def _dumps(values: list[str]) -> str | None:
    return json.dumps(values) if values else None


def _row(r: WebhookInbox) -> InboxRow:
    return InboxRow(
        r.id,
        r.body,
        r.received_at,
        r.source,
        r.company,
        _list(r.routed),
        _list(r.unrouted),
        _list(r.rejected),
    )


def append(db: Database, body: str, received_at: int, source: str | None = None) -> int:
    """Store one raw payload; it is committed when this returns."""
    with db.work(), db.atomic():
        return WebhookInbox.insert(
            body=body, received_at=received_at, source=source, company=source
        ).execute()


_last_commit = [float("-inf")]  # time.monotonic() of the last batch any InboxWriter committed


def acknowledging(window: float) -> bool:
    """Payloads were committed (and acknowledged) in this process in the last ``window``
    seconds: the processor then leaves most of the time to the requests."""
    return time.monotonic() - _last_commit[0] < window


class InboxWriter:
    """Group commit for acknowledgements: payloads that arrive while one batch commits go in the
    next one, as ONE multi-row INSERT in one transaction; each caller returns only after the
    commit that holds its row. One statement per batch (not one savepoint per row) is what keeps
    a PostgreSQL round trip per payload off the request path."""

    def __init__(
        self, db: Database, on_commit: Callable[[], None] | None = None, max_batch: int = 500
    ) -> None:
        self.db = db
        self.on_commit = on_commit  # called (no arguments) after each committed batch
        self.max_batch = max_batch
        self._queue: gevent.queue.Queue[tuple[dict[str, object], gevent.event.AsyncResult]] = (
            gevent.queue.Queue()
        )
        self._writer: gevent.Greenlet | None = None
        self._sql: dict[int, str] = {}
        self.batches = 0
        self.rows = 0

    def submit(self, body: str, received_at: int, source: str | None, timeout: float | None = None) -> None:
        """Block this greenlet until the payload is committed; raises what the commit raised."""
        done = gevent.event.AsyncResult()
        row = {"body": body, "received_at": received_at, "source": source, "company": source}
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._run)
            self._writer.name = "webhook-inbox-writer"
        self._queue.put((row, done))
        done.get(timeout=timeout)

    def _insert(self, rows: list[dict[str, object]]) -> None:
        """One multi-row INSERT, its SQL written once per batch size (building it through the ORM
        cost as much as the rest of the request)."""
        sql = self._sql.get(len(rows))
        if sql is None:
            p = self.db.db.param
            values = ", ".join([f"({p}, {p}, {p}, {p})"] * len(rows))
            sql = f'INSERT INTO "{WebhookInbox._meta.table_name}" (body, received_at, source, company) VALUES {values}'
            if len(self._sql) < 64:
                self._sql[len(rows)] = sql
        params: list[object] = []
        for row in rows:
            params += (row["body"], row["received_at"], row["source"], row["company"])
        self.db.db.execute_sql(sql, params)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.kill()
            self._writer = None

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except gevent.queue.Empty:
                    break
            try:
                with self.db.work(), self.db.atomic():
                    self._insert([row for row, _ in batch])
            except Exception as exc:  # the database is away: every caller of the batch gets a 503
                for _, done in batch:
                    done.set_exception(exc)
                continue
            self.batches += 1
            self.rows += len(batch)
            _last_commit[0] = time.monotonic()
            for _, done in batch:
                done.set(None)
            if self.on_commit is not None:
                try:
                    self.on_commit()
                except Exception:  # the processor is restarting: its sweep finds the rows
                    log.debug("inbox writer: on_commit failed", exc_info=True)


COLUMNS = (
    WebhookInbox.id,
    WebhookInbox.body,
    WebhookInbox.received_at,
    WebhookInbox.source,
    WebhookInbox.company,
    WebhookInbox.routed,
    WebhookInbox.unrouted,
    WebhookInbox.rejected,
)


def _from_tuple(t: tuple) -> InboxRow:
    id, body, received_at, source, company, routed, unrouted, rejected = t
    return InboxRow(id, body, received_at, source, company, _list(routed), _list(unrouted), _list(rejected))


def unprocessed(db: Database, limit: int, after_id: int = 0) -> list[InboxRow]:
    """Rows not processed yet, oldest first."""
    with db.work():
        query = (
            WebhookInbox.select(*COLUMNS)
            .where(WebhookInbox.processed_at.is_null() & (WebhookInbox.id > after_id))
            .order_by(WebhookInbox.id)
            .limit(limit)
            .tuples()
        )
        return [_from_tuple(t) for t in query]


def unprocessed_ids(db: Database, limit: int) -> list[int]:
    """Ids of rows not processed yet, oldest first (the bodies are read when claimed)."""
    with db.work():
        query = (
            WebhookInbox.select(WebhookInbox.id)
            .where(WebhookInbox.processed_at.is_null())
            .order_by(WebhookInbox.id)
            .limit(limit)
            .tuples()
        )
        return [t[0] for t in query]


def claim_many(db: Database, ids: list[int]) -> dict[int, InboxRow]:
    """Inside the caller's transaction: those of ``ids`` still unprocessed, locked so that no
    other node processes them at the same time (PostgreSQL; rows another node holds are
    skipped, not waited for)."""
    query = WebhookInbox.select(*COLUMNS).where(
        WebhookInbox.id.in_(ids) & WebhookInbox.processed_at.is_null()
    )
    if db.kind == "postgresql":
        query = query.order_by(WebhookInbox.id).for_update("FOR UPDATE SKIP LOCKED")
    return {t[0]: _from_tuple(t) for t in query.tuples()}


def mark(
    db: Database,
    id: int,
    processed_at: int,
    error: str | None,
    unrouted: list[str] | None,
    *,
    routed: list[str] | None = None,
    rejected: list[str] | None = None,
    company: str | None = None,
    before: InboxRow | None = None,
) -> None:
    """Done with a row: when, what went wrong (if anything), which numbers were applied, which
    no company owns, which its URL may not touch, and whose data it holds. ``before``: the row as
    read in this transaction (spares rewriting an index that did not change)."""
    fields: dict[str, object] = {
        "processed_at": processed_at,
        "error": error,
        "unrouted": _dumps(unrouted or []),
        "routed": _dumps(routed or []),
        "rejected": _dumps(rejected or []),
        "company": company,
    }
    with db.work(), nullcontext() if db.db.in_transaction() else db.atomic():
        WebhookInbox.update(**fields).where(WebhookInbox.id == id).execute()
        if before is not None and before.unrouted == (unrouted or []):
            return
        WebhookUnrouted.delete().where(WebhookUnrouted.inbox == id).execute()
        if unrouted:
            WebhookUnrouted.insert_many(
                [{"inbox": id, "phone_number_id": pid[:64]} for pid in dict.fromkeys(unrouted)]
            ).execute()


def pending_count(db: Database, limit: int | None = None) -> int:
    """Rows not processed yet (counted up to ``limit``: enough to compare with a threshold)."""
    with db.work():
        query = WebhookInbox.select(WebhookInbox.id).where(WebhookInbox.processed_at.is_null())
        if limit is not None:
            query = query.limit(limit)
        return query.count()


KINDS = {"unrouted": WebhookInbox.unrouted, "rejected": WebhookInbox.rejected}


def kept(db: Database, kind: str, limit: int, before_id: int | None = None) -> tuple[list[Kept], int | None]:
    """Payloads kept because of ``kind`` ("unrouted": no company owned the number; "rejected":
    the URL that received them may not touch it), newest first, ``limit`` at a time. The cursor
    is the last id given (pass it back as ``before_id``); None when there is nothing older."""
    column = KINDS[kind]
    with db.work():
        query = WebhookInbox.select(
            WebhookInbox.id, column.alias("pids"), WebhookInbox.received_at, WebhookInbox.source
        ).where(column.is_null(False))
        if before_id is not None:
            query = query.where(WebhookInbox.id < before_id)
        rows = list(query.order_by(WebhookInbox.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    page = [Kept(r.id, json.loads(r.pids), r.received_at, r.source) for r in rows[:limit]]
    return page, (page[-1].id if more and page else None)


def unrouted(db: Database, limit: int = 100) -> list[tuple[int, list[str]]]:
    """Kept payloads that named a number no company owned: (inbox id, phone_number_ids), newest first."""
    page, _ = kept(db, "unrouted", limit)
    return [(k.id, k.phone_number_ids) for k in page]


def requeue_unrouted(db: Database, phone_number_id: str) -> int:
    """Once a company owns ``phone_number_id``, process every payload kept for it again, however
    old (only the changes not applied yet are applied then). Returns the rows requeued."""
    with db.work(), db.atomic():
        ids = [
            r.inbox
            for r in WebhookUnrouted.select(WebhookUnrouted.inbox).where(
                WebhookUnrouted.phone_number_id == phone_number_id
            )
        ]
        count = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            count += (
                WebhookInbox.update(processed_at=None)
                .where(WebhookInbox.id.in_(chunk) & WebhookInbox.source.is_null())
                .execute()
            )
        return count


def erase_company(db: Database, company_id: str) -> int:
    """Delete every raw payload holding the company's data: received on its own URL, routed to it
    alone, or (a global payload routed to several companies) naming its number. Returns the rows."""
    with db.work(), db.atomic():
        row = Company.get_or_none(Company.id == company_id)
        number = row.cloud_phone_number_id if row else None
        ids = [r.id for r in WebhookInbox.select(WebhookInbox.id).where(WebhookInbox.company == company_id)]
        if number:
            shared = WebhookInbox.select(WebhookInbox.id, WebhookInbox.routed).where(
                WebhookInbox.company.is_null()
                & WebhookInbox.routed.is_null(False)
                & WebhookInbox.routed.contains(json.dumps(number))
            )
            ids += [r.id for r in shared if number in json.loads(r.routed)]
        erase_rows(db, ids)
        return len(ids)


def erase_rows(db: Database, ids: list[int]) -> None:
    """Delete these payloads and their index rows."""
    with db.work(), nullcontext() if db.db.in_transaction() else db.atomic():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            WebhookUnrouted.delete().where(WebhookUnrouted.inbox.in_(chunk)).execute()
            WebhookInbox.delete().where(WebhookInbox.id.in_(chunk)).execute()
