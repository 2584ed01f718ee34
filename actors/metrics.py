"""StatsD figures. One UDP client per process (safe to share); a missing daemon breaks nothing.

``figures`` keeps what the node's own metrics routes show (``wafleet.actors.figures``); an
operation timed with :meth:`Metrics.observe` goes to both.
"""

from __future__ import annotations

import logging

import gevent
import statsd

from wafleet.actors.figures import Figures

log = logging.getLogger(__name__)

FLUSH_AFTER = 0.1  # seconds a counter or timer waits for others to share its datagram


class Metrics:
    def __init__(
        self, host: str | None, port: int = 8125, prefix: str = "wafleet", figures: Figures | None = None
    ) -> None:
        self.figures = figures if figures is not None else Figures()
        self._client: statsd.StatsClient | None = None
        if host:
            try:
                self._client = statsd.StatsClient(host, port, prefix=prefix)
            except OSError as exc:  # unresolvable host: run without figures, say so once
                log.warning("statsd disabled: cannot resolve %s:%s (%s)", host, port, exc)
        self._counters: dict[str, int] = {}
        self._timings: list[tuple[str, float]] = []
        self._flush_due = False

    def incr(self, name: str, count: int = 1) -> None:
        if self._client is not None:
            self._counters[name] = self._counters.get(name, 0) + count
            self._soon()

    def gauge(self, name: str, value: float) -> None:
        if self._client is not None:
            try:
                self._client.gauge(name, value)
            except OSError:
                pass

    def timing(self, name: str, ms: float) -> None:
        if self._client is not None:
            self._timings.append((name, ms))
            self._soon()

    def _soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            gevent.spawn_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        """Send what is buffered now, packed into as few datagrams as StatsD's size allows."""
        self._flush_due = False
        counters, self._counters = self._counters, {}
        timings, self._timings = self._timings, []
        if self._client is None or not (counters or timings):
            return
        pipe = self._client.pipeline()
        for name, count in counters.items():
            pipe.incr(name, count)
        for name, ms in timings:
            pipe.timing(name, ms)
        try:
            pipe.send()
        except OSError:
            pass

    def observe(self, operation: str, ms: float) -> None:
        """Time one operation (``wafleet.actors.figures.Op``): a StatsD timer ``ops.<name>`` and
        the node's percentiles. The assistant reports a model call's ``Usage.latency_ms`` here:
        ``metrics.observe(Op.AI_CALL, usage.latency_ms)``."""
        self.figures.observe(operation, ms)
        self.timing(f"ops.{operation}", ms)
