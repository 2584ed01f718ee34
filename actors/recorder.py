"""MetricsRecorder: every metrics interval, persists the minute's figures and judges thresholds.

The one writer of the per-minute timeseries (``storage.metric_minutes``): activity counted in
memory (``Figures``) is added to its minute's row, so a restart, even a kill -9, loses at most
one interval. Rows older than 24 hours are pruned as it goes.

Then it samples the process (memory, CPU) and evaluates the alert thresholds
(``wafleet.actors.alerts``): an alert fires once, stays on the board while it holds, and is
resolved when it clears. On start it reads which alerts were left firing, so a restart neither
fires them again nor forgets to resolve them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import pykka

from wafleet.actors.alerts import KINDS, AlertBoard, Limits, Reading, evaluate
from wafleet.actors.directory import Directory
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.journal import Journal
from wafleet.actors.messages import Shutdown
from wafleet.actors.process_stats import ProcessMeter
from wafleet.actors.status import Status
from wafleet.storage import events, metric_minutes
from wafleet.storage.clock import now_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecorderConfig:
    interval: float = 60.0  # seconds (WHATSAPP_METRICS_INTERVAL)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class _Tick:
    pass


class MetricsRecorder(SupervisedActor):
    def __init__(
        self,
        *,
        journal: Journal,
        directory: Directory,
        board: AlertBoard,
        process: ProcessMeter,
        config: RecorderConfig,
        on_exit: Callable[[Exit], None] | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.journal = journal
        self.db = journal.db
        self.metrics = journal.metrics
        self.figures = journal.metrics.figures
        self.directory = directory
        self.board = board
        self.process = process
        self.config = config
        self._timer: gevent.Greenlet | None = None

    def on_start(self) -> None:
        for kind, event in events.latest_alerts(self.db, KINDS).items():
            if event.state == "firing":
                data = event.data
                self.board.fire(
                    kind, str(data.get("message", "")), data.get("value", 0), data.get("limit", 0), event.at
                )
        self._timer = gevent.spawn(self._ticks)

    def cleanup(self) -> None:
        if self._timer is not None and self._timer is not gevent.getcurrent():
            self._timer.kill(block=False)

    def _ticks(self) -> None:
        while True:
            gevent.sleep(self.config.interval)
            try:
                self.actor_ref.tell(_Tick())
            except pykka.ActorDeadError:
                return

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Tick():
                self.tick()
                return None
            case Shutdown():
                self.cleanup()
                self.save()  # the last figures of this run
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)

    def tick(self) -> None:
        self.save()
        sample = self.process.take()
        self.metrics.gauge("process.memory_mb", sample.memory_mb)
        self.metrics.gauge("process.open_files", sample.open_files)
        self.metrics.gauge("process.cpu_percent", self.process.cpu_percent)
        self.judge(sample.memory_mb)

    def save(self) -> None:
        """Add the unsaved minutes to their rows; what could not be written is kept for later."""
        unsaved = self.figures.take_unsaved()
        current = int(time.time() // 60)
        connected = self.directory.counts()[Status.CONNECTED]
        unsaved.setdefault(current, Counter())  # the connected gauge is written every interval
        try:
            for minute in sorted(unsaved):
                metric_minutes.add(self.db, minute, unsaved[minute], connected if minute == current else None)
                del unsaved[minute]
            metric_minutes.prune(self.db, current)
        finally:
            if unsaved:
                self.figures.give_back({m: c for m, c in unsaved.items() if c})

    def judge(self, memory_mb: float) -> None:
        dropped = self.figures.recent()["disconnections"]
        # the sessions meant to run, however they are doing now (a reconnect takes a moment)
        running = sum(1 for r in self.directory.records.values() if r.desired == "running")
        reading = Reading(
            error_rate=self.figures.error_rate(),
            disconnect_rate=round(dropped / max(running, 1), 4) if dropped else 0.0,
            memory_mb=memory_mb,
        )
        for change in evaluate(reading, self.config.limits, set(self.board.active)):
            self.journal.alert(
                None, change.kind, change.message, state=change.state, value=change.value, limit=change.limit
            )
            if change.state == "firing":
                self.board.fire(change.kind, change.message, change.value, change.limit, now_ms())
            else:
                self.board.resolve(change.kind)


__all__ = ["MetricsRecorder", "RecorderConfig"]
