"""Group commit: writes that arrive while one transaction commits share the next one.

A commit costs the same whether it holds one row or a hundred (an fsync on SQLite, a round
trip and a WAL flush on PostgreSQL), so many greenlets that each need "my row is durable before
I answer" are served by one writer greenlet that takes everything queued, runs it in one
transaction, commits, and only then wakes each caller. Each write runs in its own savepoint: a
write that fails (a unique key clash) fails only its own caller, never the batch.

Callers block only their own greenlet; the writer never runs a caller's code outside the
transaction, and a caller is never told "committed" before the commit returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import gevent
import gevent.event
import gevent.queue

from wafleet.storage.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Pending(Generic[T]):
    __slots__ = ("write", "result")

    def __init__(self, write: Callable[[], T]) -> None:
        self.write = write
        self.result: gevent.event.AsyncResult = gevent.event.AsyncResult()


class GroupCommit:
    def __init__(self, db: Database, *, max_batch: int = 500, name: str = "group-commit") -> None:
        self.db = db
        self.max_batch = max_batch
        self.name = name
        self._queue: gevent.queue.Queue[_Pending[Any]] = gevent.queue.Queue()
        self._writer: gevent.Greenlet | None = None
        self.batches = 0
        self.writes = 0

    def submit(self, write: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``write`` inside the next group transaction; return its result once committed.

        Raises what ``write`` raised (its savepoint was rolled back, the others committed), or
        what the commit raised (nothing of the batch is durable then)."""
        pending: _Pending[T] = _Pending(write)
        self._ensure_writer()
        self._queue.put(pending)
        return pending.result.get(timeout=timeout)

    def close(self) -> None:
        """Stop the writer once the queue is empty (what was submitted is still committed)."""
        if self._writer is not None:
            self._queue.put(None)  # type: ignore[arg-type]
            self._writer.join()
            self._writer = None

    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._run)
            self._writer.name = self.name

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except gevent.queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # type: ignore[arg-type]
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.db.work(), self.db.atomic():
                for pending in batch:
                    try:
                        with self.db.atomic():  # a savepoint: one bad write fails alone
                            outcomes.append((True, pending.write()))
                    except Exception as exc:  # handed to its own caller below
                        outcomes.append((False, exc))
        except Exception as exc:
            log.warning("%s: commit of %d writes failed: %s", self.name, len(batch), exc)
            for pending in batch:
                pending.result.set_exception(exc)
            return
        self.batches += 1
        self.writes += len(batch)
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                pending.result.set(value)
            else:
                pending.result.set_exception(value)
