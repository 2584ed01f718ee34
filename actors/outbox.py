"""Deliverer: works the outbox. Every accepted message is sent or ends ``failed`` with a reason.

Rows are sent one company at a time in order; a retryable failure waits ``retry_after`` (Meta's
hint: >= 6 s for the 131056 pair limit) plus full-jitter backoff; a final one (131047, 131026)
fails the row at once. A session that is not connected keeps its rows queued.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.pool
import peewee
import pykka

from wafleet.actors.error_classes import send_class
from wafleet.actors.figures import Op
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.links.base import SendError
from wafleet.actors.messages import Send, Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.storage import outbox
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
CONCURRENCY = 64  # companies sent to at once
NOT_CONNECTED_WAIT = 5.0


@dataclass(frozen=True)
class Wake:
    """New rows were committed (or a timer fired): look for due rows."""


@dataclass(frozen=True)
class _Failed:
    error: Exception


class Deliverer(SupervisedActor):
    def __init__(
        self,
        *,
        db: Database,
        metrics: Metrics,
        fleet: Callable[[], pykka.ActorRef[Any]],
        on_sent: Callable[[outbox.OutboxRow, str], None],
        on_exit: Callable[[Exit], None],
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.db = db
        self.metrics = metrics
        self.fleet = fleet
        self.on_sent = on_sent
        self.rng = rng or random.Random()
        self._timer: gevent.Greenlet | None = None
        self._worker: gevent.Greenlet | None = None
        self._again = False

    def on_start(self) -> None:
        self._wake()  # rows accepted before a crash or a restart are sent now

    def cleanup(self) -> None:
        for greenlet in (self._timer, self._worker):
            if greenlet is not None:
                greenlet.kill(block=False)

    def on_stop(self) -> None:
        self.cleanup()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Wake):
            self._wake()
            return None
        if isinstance(message, _Failed):
            raise message.error
        if isinstance(message, Shutdown):
            self.cleanup()
            self.exit("normal", "shutdown")
            return None
        return super().on_receive(message)

    def _wake(self) -> None:
        # One worker greenlet drains the outbox; the actor stays free to take more Wakes.
        if self._worker is not None and not self._worker.dead:
            self._again = True
            return
        self._worker = gevent.spawn(self._drain)

    def _drain(self) -> None:
        try:
            self._drain_once()
        except Exception as exc:  # the database went away: fail the actor, the Root restarts it
            try:
                self.actor_ref.tell(_Failed(exc))
            except pykka.ActorDeadError:
                pass

    def _drain_once(self) -> None:
        while True:
            self._again = False
            by_company: dict[str, list[outbox.OutboxRow]] = {}
            for row in outbox.due(self.db, now_ms(), limit=1000):
                by_company.setdefault(row.company_id, []).append(row)
            # Companies in parallel (a Graph API call takes ~0.1-0.3 s); each company in order.
            pool = gevent.pool.Pool(CONCURRENCY)
            for rows in by_company.values():
                pool.spawn(self._deliver_company, rows)
            pool.join(raise_error=True)
            if not self._again and not outbox.due(self.db, now_ms(), limit=1):
                break
        self._schedule()

    def _deliver_company(self, rows: list[outbox.OutboxRow]) -> None:
        """In order; once a message to a customer must wait, later ones to them wait with it."""
        held: dict[str, int] = {}  # peer -> not before (ms)
        for row in rows:
            if row.peer in held:
                outbox.update(self.db, row.id, next_at=held[row.peer])
                continue
            next_at = self._deliver(row)
            if next_at is not None:
                held[row.peer] = next_at

    def _schedule(self) -> None:
        at = outbox.next_due_at(self.db)
        if self._timer is not None:
            self._timer.kill(block=False)
            self._timer = None
        if at is not None:
            delay = max(0.0, (at - now_ms()) / 1000)
            self._timer = gevent.spawn_later(delay, self._tell_wake)

    def _tell_wake(self) -> None:
        try:
            self.actor_ref.tell(Wake())
        except pykka.ActorDeadError:
            pass

    def _deliver(self, row: outbox.OutboxRow) -> int | None:
        """One attempt; returns when the row may be tried again if it has to wait, else None."""
        outbox.update(self.db, row.id, state="sending")
        started = time.perf_counter()
        try:
            wa_id = self.fleet().ask(Send(row.company_id, row.peer, row.text), timeout=60)
            if isinstance(wa_id, pykka.Future):
                wa_id = wa_id.get(timeout=60)
        except SendError as exc:
            self.metrics.observe(Op.SEND, (time.perf_counter() - started) * 1000)
            final = exc.final or row.attempts + 1 >= MAX_ATTEMPTS
            self.metrics.figures.send_failed(row.company_id, send_class(exc), final)
            return self._failed_attempt(row, exc)
        except (peewee.OperationalError, peewee.InterfaceError):
            raise  # the database is away: the actor fails and is restarted
        except Exception as exc:  # session down, fleet restarting: keep the row, try later
            return self._retry(row, NOT_CONNECTED_WAIT, {"message": str(exc)}, counted=False)
        self.metrics.observe(Op.SEND, (time.perf_counter() - started) * 1000)
        outbox.update(self.db, row.id, state="sent", wa_id=wa_id, attempts=row.attempts + 1, error=None)
        self.metrics.incr("messages.sent")
        self.on_sent(row, wa_id)
        return None

    def _failed_attempt(self, row: outbox.OutboxRow, exc: SendError) -> None:
        error = {"code": exc.code, "message": str(exc)}
        if exc.final or row.attempts + 1 >= MAX_ATTEMPTS:
            outbox.update(self.db, row.id, state="failed", attempts=row.attempts + 1, error=error)
            self.metrics.incr("messages.failed")
            log.warning("company %s: message %d failed: %s", row.company_id, row.id, exc)
            return
        backoff = self.rng.uniform(0, min(300.0, 1.0 * 2**row.attempts))
        self._retry(row, (exc.retry_after or 0.0) + backoff, error, counted=True)

    def _retry(self, row: outbox.OutboxRow, delay: float, error: dict[str, Any], counted: bool) -> None:
        outbox.update(
            self.db,
            row.id,
            state="queued",
            error=error,
            attempts=row.attempts + (1 if counted else 0),
            next_at=now_ms() + int(delay * 1000),
        )
        self.metrics.incr("messages.retries")
