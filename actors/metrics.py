"""StatsD figures. One UDP client per process (safe to share); a missing daemon breaks nothing.

``figures`` keeps what the node's own metrics routes show (``wafleet.actors.figures``); an
operation timed with :meth:`Metrics.observe` goes to both.
"""

from __future__ import annotations

import logging

import statsd

from wafleet.actors.figures import Figures

log = logging.getLogger(__name__)


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

    def incr(self, name: str, count: int = 1) -> None:
        if self._client is not None:
            try:
                self._client.incr(name, count)
            except OSError:
                pass

    def gauge(self, name: str, value: float) -> None:
        if self._client is not None:
            try:
                self._client.gauge(name, value)
            except OSError:
                pass

    def timing(self, name: str, ms: float) -> None:
        if self._client is not None:
            try:
                self._client.timing(name, ms)
            except OSError:
                pass

    def observe(self, operation: str, ms: float) -> None:
        """Time one operation (``wafleet.actors.figures.Op``): a StatsD timer ``ops.<name>`` and
        the node's percentiles. The assistant reports a model call's ``Usage.latency_ms`` here:
        ``metrics.observe(Op.AI_CALL, usage.latency_ms)``."""
        self.figures.observe(operation, ms)
        self.timing(f"ops.{operation}", ms)
