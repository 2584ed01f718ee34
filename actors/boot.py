"""The Fleet's boot, in the background: records loaded page by page, then the sessions that were
running restored at a steady rate.

The node answers ``/healthz`` at once whatever the fleet's size: boot yields to the hub between
pages, and ``/readyz`` (and every route that needs a company) says 503 until every record is
loaded. A record is published in the directory only once its boot transitions are durable, so
nobody reads a stale ``connected`` from before the restart. What each session shows after a
restart is what it showed before: ``logged_out`` and ``failed`` stay as they were (an operator's
reconnect brings them back), a stop stays stopped, and only a session meant to run that has
stored credentials reconnects by itself (a QR nobody watches would only start a QR storm).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

import gevent
import gevent.queue

from wafleet.actors import cooldown
from wafleet.actors.directory import HISTORY_LENGTH, BootProgress, Directory, SessionRecord
from wafleet.actors.journal import Transition
from wafleet.actors.session import SessionDeps
from wafleet.storage import companies, events
from wafleet.storage.clock import now_ms
from wafleet.storage.companies import CompanyRow, SessionRow
from wafleet.storage.database import Database

log = logging.getLogger(__name__)

RUNNING = ("starting", "qr", "pairing", "connected", "reconnecting")
KEPT = ("logged_out", "failed", "blocked")  # a restart does not bring these back by itself
PAGE = 500  # companies per read; between pages the hub serves requests
# A timer, not sleep(0): sleep(0) only lets ready greenlets run and does not poll sockets, so a
# loop of them starves every request (measured: /healthz waited for the whole boot).
YIELD = 0.001
# Seconds of restores the restorer may be behind its schedule (start + n / rate) and still make
# up: while pages load, the Fleet is busy, or the process is collecting, it falls behind; it
# catches up to the schedule (never past it), so a restore takes N / rate plus at most this.
# One second lost ~10 s over 100,000 companies (210.1 s against N / 500 + 10 = 210 s).
CATCH_UP = 10.0
BATCH = 100  # sessions the Fleet starts for one message: its other messages wait at most that long


class Boot:
    def __init__(
        self,
        *,
        db: Database,
        directory: Directory,
        deps: SessionDeps,
        rate: float,
        restore: Callable[[list[str]], None],
        on_blocked: Callable[[SessionRecord], None],
        page: int = PAGE,
    ) -> None:
        self.db = db
        self.directory = directory
        self.deps = deps
        self.journal = deps.journal
        self.rate = rate
        self.restore = restore  # asks the Fleet to start these companies' sessions
        self.on_blocked = on_blocked  # the Fleet schedules the end of a pairing cooldown
        self.page = page
        self.progress = BootProgress()
        self.pending: set[str] = set()  # queued for a restore the Fleet has not started yet

    def start(self) -> gevent.Greenlet:
        """From the Fleet's on_start, before it takes any message: the directory is reset now
        (a company created meanwhile is not lost), then loaded in the background."""
        self.directory.begin_boot(self.progress)
        return gevent.spawn(self.run)

    def run(self) -> None:
        """Load page by page; the sessions of a loaded page start coming back at once (restore
        overlaps loading), so everything is asked for within about N / rate seconds of start."""
        started = time.monotonic()
        queue: gevent.queue.Queue[str | None] = gevent.queue.Queue()
        restorer = gevent.spawn(self._restore, queue)
        try:
            after: str | None = None
            while True:
                rows = companies.load_page(self.db, after, self.page)
                if not rows:
                    break
                after = rows[-1][0].id
                to_start = self._load(rows)
                self.progress.loaded += len(rows)
                self.progress.to_restore += len(to_start)
                for company_id in to_start:
                    self.pending.add(company_id)
                    queue.put(company_id)
                gevent.sleep(YIELD)
            queue.put(None)
            self.progress.state = "restoring"
            log.info(
                "boot: %d companies loaded in %.1fs; restoring %d sessions at %.0f/s",
                self.progress.loaded,
                time.monotonic() - started,
                self.progress.to_restore,
                self.rate,
            )
            restorer.join()
        finally:
            restorer.kill(block=False)  # a failed load leaves no restorer waiting behind
        self.progress.state = "done"
        # What is in memory now lives as long as the node (every company's record, the parser's
        # language data, the code): out of the collector's sight, so that a full collection
        # walks only what came after. Measured on the assistant benchmark: full collections of
        # 100-200 ms made the p99 of a turn 200+ ms while its p50 was 3 ms.
        gc.freeze()

    def _load(self, rows: list[tuple[CompanyRow, SessionRow]]) -> list[str]:
        """One page: records built, boot transitions committed together, then published."""
        records = [_record(c, s) for c, s in rows if self.directory.get(c.id) is None]
        history = events.recent_for(self.db, rows[0][0].id, rows[-1][0].id, "status", HISTORY_LENGTH)
        for record in records:
            for event in history.get(record.company_id, ()):
                entry = {"status": event.state, "at": event.at, "reason": event.reason}
                if "retryIn" in event.data:
                    entry["retryIn"] = event.data["retryIn"]
                record.history.append(entry)
        # A ban with an end survives a kill -9: its end brings the session back, not the boot.
        others = [r for r in records if not cooldown.banned(r)]
        self.journal.transitions([t for r in others if (t := self._block(r))])
        changes = [t for r in others if (t := self._resume(r))]
        taken = self.journal.transitions(changes)
        to_start = [
            c.record.company_id
            for c, ok in zip(changes, taken, strict=True)
            if ok and c.status == "reconnecting"
        ]
        for record in records:
            if self.directory.get(record.company_id) is None:  # not created meanwhile
                self.directory.add(record)
                if record.status == "blocked" or cooldown.banned(record):
                    self.on_blocked(record)  # once published: the end's timer finds the record
        return to_start

    def _block(self, record: SessionRecord) -> Transition | None:
        """A pairing cooldown outlives the process: from the database, or from Redis."""
        shared_until = self.deps.shared.blocked_until(record.company_id)
        until = max(record.blocked_until or 0, int(shared_until * 1000) if shared_until else 0)
        if until > now_ms():
            if record.status != "blocked" or record.blocked_until != until:
                return Transition(
                    record, "blocked", reason="pairing_limit", data={"until": until}, until=until
                )
            return None
        if record.status == "blocked":
            return Transition(record, "stopped", reason="cooldown_over")
        return None

    def _resume(self, record: SessionRecord) -> Transition | None:
        """What a session that was running before the restart does now."""
        if record.status in KEPT:
            return None
        if record.desired != "running":
            return Transition(record, "stopped", reason="boot") if record.status in RUNNING else None
        if self.deps.auth.load(record.company_id, record.link) is None:
            # No stored login: reconnecting would only show a QR nobody is watching.
            if record.status != "stopped":
                return Transition(record, "stopped", reason="boot_no_credentials")
            return None
        return Transition(record, "reconnecting", reason="boot", retry_in=0.0)

    def _restore(self, queue: gevent.queue.Queue[str | None]) -> None:
        """Staggered: at most ``rate`` a second on average, paced by the clock (a slow wake-up
        catches up instead of stretching the boot, by at most CATCH_UP seconds' worth, and never
        runs ahead of the schedule).

        The sessions due at one moment go to the Fleet together (at most BATCH per message):
        one message per session waited for the Fleet's turn each time, and while pages were
        loading that turn came once a page, so almost nothing came back until the load ended
        (measured at 100,000 companies: 1,400 sessions restored in the 20 s of loading)."""
        step = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        finished = False
        while not finished:
            first = queue.get()
            if first is None:
                break
            now = time.monotonic()
            next_at = max(next_at, now - CATCH_UP)
            due = BATCH if not step else min(BATCH, int((now - next_at) / step) + 1)
            batch = [first]
            while len(batch) < due:
                try:
                    item = queue.get_nowait()
                except gevent.queue.Empty:
                    break
                if item is None:
                    finished = True
                    break
                batch.append(item)
            self.restore(batch)
            self.progress.restored += len(batch)
            next_at += len(batch) * step
            delay = next_at - time.monotonic()
            gevent.sleep(delay if delay > 0 else YIELD)


def _record(company: CompanyRow, session: SessionRow) -> SessionRecord:
    return SessionRecord(
        company_id=company.id,
        name=company.name,
        link=company.link,
        company_phone=company.phone,
        token_hash=company.token_hash,
        created_at=company.created_at,
        desired=session.desired_state,
        status=session.status,
        since=session.since,
        phone=session.phone,
        restarts=session.restarts,
        last_error=session.last_error,
        blocked_until=session.blocked_until,
        cloud_number=company.cloud_phone_number_id,
    )
