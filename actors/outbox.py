"""Deliverer: works the outbox. Every accepted message is sent or ends ``failed`` with a reason.

Fair: each company with due rows gets a lane (a greenlet that sends that company's rows one at a
time, as fast as its link lets it), up to ``concurrency`` lanes at once. When companies wait for
a lane, a lane gives its place up after ``quantum`` messages and goes to the back of the line
(round-robin), so a company with a backlog of thousands never holds up another company's message.

Ordered: within a company, messages to one customer go out in the order they were accepted. A
lane only sends a customer's earliest pending row (its head of line); when that row has to wait
(Meta's pair limit, a throughput error, an outage), every later row to that customer waits with it.

A retryable failure waits ``retry_after`` (Meta's hint: >= 6 s for the 131056 pair limit) plus
full-jitter backoff; a final one (131047, 131026) fails the row at once. A session that is not
connected keeps its company's rows queued.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import peewee
import pykka

from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.links.base import SendError
from wafleet.actors.messages import Send, Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.storage import outbox
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
NOT_CONNECTED_WAIT = 5.0
# Timer wake-ups closer together than this share one scan: rows retried at nearby times must not
# turn into a scan of the whole outbox each (a scan reads every due company).
SCAN_COALESCE = 0.1  # seconds
# Failures that concern one recipient (Meta's pair limit): only that customer's rows wait. Any
# other retryable failure is about the number or the link (throughput, outage): the company waits.
RECIPIENT_CODES = frozenset({131056})


@dataclass(frozen=True)
class DelivererConfig:
    concurrency: int = 64  # companies sent to at once
    quantum: int = 50  # messages a lane sends before it lets a waiting company have its place


@dataclass(frozen=True)
class Wake:
    """New rows were committed (for ``company_id``, or anyone's when None): look for due rows."""

    company_id: str | None = None


@dataclass(frozen=True)
class _LaneDone:
    company_id: str
    more: bool  # it gave its place up with rows still due


@dataclass(frozen=True)
class _Failed:
    error: Exception


@dataclass(frozen=True)
class _Wait:
    """A row must wait until ``until`` (ms); ``customer_only``: the rest of the company need not."""

    until: int
    customer_only: bool


class Deliverer(SupervisedActor):
    def __init__(
        self,
        *,
        db: Database,
        metrics: Metrics,
        fleet: Callable[[], pykka.ActorRef[Any]],
        on_sent: Callable[[outbox.OutboxRow, str], None],
        on_exit: Callable[[Exit], None],
        config: DelivererConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.db = db
        self.metrics = metrics
        self.fleet = fleet
        self.on_sent = on_sent
        self.config = config or DelivererConfig()
        self.rng = rng or random.Random()
        self._lanes: dict[str, gevent.Greenlet] = {}
        self._line: deque[str] = deque()  # companies with due rows waiting for a lane, in turn
        self._in_line: set[str] = set()
        self._again: set[str] = set()  # woken while its lane was finishing: look once more
        self._timer: gevent.Greenlet | None = None
        self._timer_at = 0  # ms: when the pending timer fires

    def _start_actor_loop(self) -> None:
        super()._start_actor_loop()
        # However the actor ends (stop, crash, a failure in on_start), its greenlets end with it:
        # a lane left running would send the same rows as the restarted deliverer.
        self.actor_greenlet.link(lambda _greenlet: self.cleanup())

    def on_start(self) -> None:
        self._scan()  # rows accepted before a crash or a restart are sent now

    def cleanup(self) -> None:
        greenlets = [*self._lanes.values(), self._timer]
        self._lanes.clear()
        self._timer = None
        for greenlet in greenlets:
            if greenlet is not None and greenlet is not gevent.getcurrent():
                greenlet.kill(block=False)

    def on_stop(self) -> None:
        self.cleanup()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Wake(company_id=None):
                self._scan()
            case Wake(company_id=company_id):
                self._want(company_id)
                self._fill()
            case _LaneDone(company_id=company_id, more=more):
                self._lanes.pop(company_id, None)
                # rows that came due after the lane's last look are sent now, not at the next scan
                if more or company_id in self._again or outbox.has_due(self.db, company_id, now_ms()):
                    self._again.discard(company_id)
                    self._want(company_id)
                self._fill()
                self._schedule()
            case _Failed(error=error):
                raise error
            case Shutdown():
                self.cleanup()
                self.exit("normal", "shutdown")
            case _:
                return super().on_receive(message)
        return None

    # -- who sends next ------------------------------------------------------------------------
    def _want(self, company_id: str) -> None:
        if company_id in self._lanes:
            self._again.add(company_id)
        elif company_id not in self._in_line:
            self._in_line.add(company_id)
            self._line.append(company_id)

    def _fill(self) -> None:
        while self._line and len(self._lanes) < self.config.concurrency:
            company_id = self._line.popleft()
            self._in_line.discard(company_id)
            self._lanes[company_id] = gevent.spawn(self._lane, company_id)

    def _scan(self) -> None:
        for company_id in outbox.due_companies(self.db, now_ms()):
            self._want(company_id)
        self._fill()
        self._schedule()

    def _schedule(self) -> None:
        """Scan again when the next row comes due. Rows due now are in a lane or in line: a new
        row comes with a Wake for its company, and a lane looks once more as it ends. A pending
        timer is only ever replaced by an earlier one, so a wake-up is never lost."""
        now = now_ms()
        at = outbox.next_due_at(self.db, after=now)
        if at is None or (self._timer is not None and not self._timer.dead and self._timer_at <= at):
            return
        if self._timer is not None:
            self._timer.kill(block=False)
        self._timer_at = at
        delay = max((at - now) / 1000, SCAN_COALESCE)
        self._timer = gevent.spawn_later(delay, self._tell, Wake())

    def _tell(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    # -- a lane: one company's rows, in order -----------------------------------------------------
    def _lane(self, company_id: str) -> None:
        try:
            more = self._send_company(company_id)
        except Exception as exc:  # the database went away: fail the actor, the Root restarts it
            self._tell(_Failed(exc))
            return
        self._tell(_LaneDone(company_id, more))

    def _send_company(self, company_id: str) -> bool:
        """Send due heads of line until none is left (False) or another company waits (True)."""
        outbox.requeue_interrupted(self.db, company_id)  # this is the company's only lane
        sent = 0
        while True:
            now = now_ms()
            heads = outbox.due_heads(self.db, company_id, now, limit=self.config.quantum)
            if not heads:
                if outbox.has_due(self.db, company_id, now):
                    outbox.hold_behind_heads(self.db, company_id, now)
                return False
            for row in heads:
                wait = self._deliver(row)
                if wait is not None:
                    outbox.hold(
                        self.db, company_id, wait.until, peer=row.peer if wait.customer_only else None
                    )
                    if not wait.customer_only:
                        return False
                sent += 1
                if sent >= self.config.quantum and self._line:
                    return True

    def _deliver(self, row: outbox.OutboxRow) -> _Wait | None:
        """One attempt; says until when the row (and those behind it) must wait, if it must."""
        outbox.update(self.db, row.id, state="sending")
        try:
            wa_id = self.fleet().ask(Send(row.company_id, row.peer, row.text), timeout=60)
            if isinstance(wa_id, pykka.Future):
                wa_id = wa_id.get(timeout=60)
        except SendError as exc:
            return self._failed_attempt(row, exc)
        except (peewee.OperationalError, peewee.InterfaceError):
            raise  # the database is away: the actor fails and is restarted
        except Exception as exc:  # session down, fleet restarting: keep the row, try later
            return _Wait(self._retry(row, NOT_CONNECTED_WAIT, {"message": str(exc)}, counted=False), False)
        outbox.update(self.db, row.id, state="sent", wa_id=wa_id, attempts=row.attempts + 1, error=None)
        self.metrics.incr("messages.sent")
        self.on_sent(row, wa_id)
        return None

    def _failed_attempt(self, row: outbox.OutboxRow, exc: SendError) -> _Wait | None:
        error = {"code": exc.code, "message": str(exc)}
        if exc.final or row.attempts + 1 >= MAX_ATTEMPTS:
            outbox.update(self.db, row.id, state="failed", attempts=row.attempts + 1, error=error)
            self.metrics.incr("messages.failed")
            log.warning("company %s: message %d failed: %s", row.company_id, row.id, exc)
            return None
        backoff = self.rng.uniform(0, min(300.0, 1.0 * 2**row.attempts))
        until = self._retry(row, (exc.retry_after or 0.0) + backoff, error, counted=True)
        return _Wait(until, customer_only=exc.code in RECIPIENT_CODES)

    def _retry(self, row: outbox.OutboxRow, delay: float, error: dict[str, Any], counted: bool) -> int:
        next_at = now_ms() + int(delay * 1000)
        outbox.update(
            self.db,
            row.id,
            state="queued",
            error=error,
            attempts=row.attempts + (1 if counted else 0),
            next_at=next_at,
        )
        self.metrics.incr("messages.retries")
        return next_at
