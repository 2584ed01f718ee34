"""StatsD figures. One UDP client per process (safe to share); a missing daemon breaks nothing."""

from __future__ import annotations

import logging

import statsd

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self, host: str | None, port: int = 8125, prefix: str = "wafleet") -> None:
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
