"""The node's own figures, kept in memory for the metrics routes (StatsD carries them elsewhere).

Counters since the node started (fleet-wide and per company), recent activity by minute (rates,
the alert thresholds, the persisted timeseries) and latency histograms per route and per
operation. Written from actors and the HTTP guard, read by the routes; gevent runs one greenlet
at a time, so plain dicts need no lock.

Latencies go into fixed logarithmic buckets (10 % apart, from 0.01 ms): recording is one
``log`` and a dict increment, a percentile is read to within 10 %, and memory does not grow with
traffic. Each minute has its own buckets, so percentiles cover the last ``window`` seconds.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Op(StrEnum):
    """Operations timed for ``/metrics/performance`` (wire names)."""

    SEND = "send"  # one send attempt through the company's link
    WEBHOOK_ACK = "webhookAck"  # Meta's webhook: received to acknowledged (committed)
    CONNECT = "connect"  # a session's start to connected
    AI_CALL = "aiCall"  # one model call of the assistant (Usage.latency_ms)


# Per-minute activity kept for the timeseries and the rates.
MINUTE_FIELDS = ("messages_in", "messages_out", "restarts", "errors", "operations", "disconnections")

_RATIO = 1.1
_FLOOR_MS = 0.01
_LOG_RATIO = math.log(_RATIO)


def _bucket(ms: float) -> int:
    if ms <= _FLOOR_MS:
        return 0
    return math.ceil(math.log(ms / _FLOOR_MS) / _LOG_RATIO)


def _bucket_ms(index: int) -> float:
    return _FLOOR_MS * _RATIO**index


class Histogram:
    """Latencies of one route or operation, by minute, for the last ``minutes`` minutes."""

    def __init__(self, minutes: int) -> None:
        self.minutes = max(1, minutes)
        self._by_minute: deque[tuple[int, Counter[int]]] = deque()
        self._max: deque[tuple[int, float]] = deque()

    def observe(self, ms: float, minute: int) -> None:
        if not self._by_minute or self._by_minute[-1][0] != minute:
            self._by_minute.append((minute, Counter()))
            self._max.append((minute, 0.0))
            self._trim(minute)
        self._by_minute[-1][1][_bucket(ms)] += 1
        if ms > self._max[-1][1]:
            self._max[-1] = (minute, ms)

    def _trim(self, minute: int) -> None:
        while self._by_minute and self._by_minute[0][0] <= minute - self.minutes:
            self._by_minute.popleft()
            self._max.popleft()

    def summary(self, minute: int) -> dict[str, Any] | None:
        """count, p50, p95, p99 and max in ms over the window; None when nothing was timed."""
        self._trim(minute)
        merged: Counter[int] = Counter()
        for _, counts in self._by_minute:
            merged.update(counts)
        total = sum(merged.values())
        if not total:
            return None
        top = max(ms for _, ms in self._max)
        result: dict[str, Any] = {"count": total}
        ordered = sorted(merged.items())
        for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            rank, seen = math.ceil(q * total), 0
            for index, count in ordered:
                seen += count
                if seen >= rank:
                    result[name] = round(min(_bucket_ms(index), top), 3)
                    break
        result["max"] = round(top, 3)
        return result


@dataclass
class CompanyFigures:
    sent: int = 0
    received: int = 0
    failed: int = 0
    errors: int = 0
    operations: int = 0


class Figures:
    """Everything the metrics routes show that is not already in the directory or the database."""

    def __init__(self, window: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self.window_minutes = max(1, math.ceil(window / 60))
        self.window = window
        self.sent = 0
        self.received = 0
        self.failed = 0
        self.connections = 0
        self.disconnections = 0
        self.restarts = 0
        self.zombies = 0
        self.probes = 0
        self.errors: Counter[str] = Counter()
        self.companies: dict[str, CompanyFigures] = {}
        self.routes: dict[str, Histogram] = {}
        self.operations: dict[str, Histogram] = {}
        # activity by minute: recent (the window, for rates and alerts) and not yet persisted
        self._recent: deque[tuple[int, Counter[str]]] = deque()
        self._unsaved: dict[int, Counter[str]] = {}
        # messages by second over the last minute: the rate "now"
        self._seconds: deque[tuple[int, int, int]] = deque()  # (second, in, out)

    # -- recording -----------------------------------------------------------------------------
    def _company(self, company_id: str) -> CompanyFigures:
        figures = self.companies.get(company_id)
        if figures is None:
            figures = self.companies[company_id] = CompanyFigures()
        return figures

    def _count(self, name: str, n: int = 1) -> None:
        now = self.clock()
        minute = int(now // 60)
        if not self._recent or self._recent[-1][0] != minute:
            self._recent.append((minute, Counter()))
            while self._recent and self._recent[0][0] <= minute - max(self.window_minutes, 1) - 1:
                self._recent.popleft()
        self._recent[-1][1][name] += n
        self._unsaved.setdefault(minute, Counter())[name] += n

    def _second(self, inbound: int, outbound: int) -> None:
        second = int(self.clock())
        if self._seconds and self._seconds[-1][0] == second:
            _, i, o = self._seconds[-1]
            self._seconds[-1] = (second, i + inbound, o + outbound)
        else:
            self._seconds.append((second, inbound, outbound))
            while self._seconds and self._seconds[0][0] <= second - 60:
                self._seconds.popleft()

    def message_sent(self, company_id: str) -> None:
        self.sent += 1
        company = self._company(company_id)
        company.sent += 1
        company.operations += 1
        self._count("messages_out")
        self._count("operations")
        self._second(0, 1)

    def message_received(self, company_id: str) -> None:
        self.received += 1
        company = self._company(company_id)
        company.received += 1
        company.operations += 1
        self._count("messages_in")
        self._count("operations")
        self._second(1, 0)

    def send_failed(self, company_id: str, error_class: str, final: bool) -> None:
        """One send attempt failed; ``final``: the message is given up (it counts as failed)."""
        if final:
            self.failed += 1
            self._company(company_id).failed += 1
        self.error(company_id, error_class)

    def error(self, company_id: str | None, error_class: str) -> None:
        self.errors[error_class] += 1
        if company_id is not None:
            company = self._company(company_id)
            company.errors += 1
            company.operations += 1
        self._count("errors")
        self._count("operations")

    def connected(self, company_id: str) -> None:
        self.connections += 1
        self._company(company_id).operations += 1
        self._count("operations")

    def disconnected(self) -> None:
        self.disconnections += 1
        self._count("disconnections")

    def restarted(self) -> None:
        self.restarts += 1
        self._count("restarts")

    def zombie(self) -> None:
        self.zombies += 1

    def probed(self) -> None:
        self.probes += 1

    def observe(self, operation: str, ms: float) -> None:
        """Time one operation (an :class:`Op`; others are kept under their own name)."""
        self._histogram(self.operations, str(operation)).observe(ms, int(self.clock() // 60))

    def observe_route(self, route: str, ms: float) -> None:
        self._histogram(self.routes, route).observe(ms, int(self.clock() // 60))

    def _histogram(self, table: dict[str, Histogram], key: str) -> Histogram:
        histogram = table.get(key)
        if histogram is None:
            histogram = table[key] = Histogram(self.window_minutes)
        return histogram

    def forget(self, company_id: str) -> None:
        self.companies.pop(company_id, None)

    # -- reading -------------------------------------------------------------------------------
    def recent(self) -> Counter[str]:
        """Activity over the last ``window`` seconds (whole minutes, the current one included)."""
        minute = int(self.clock() // 60)
        total: Counter[str] = Counter()
        for at, counts in self._recent:
            if at > minute - self.window_minutes:
                total.update(counts)
        return total

    def per_minute(self) -> dict[str, int]:
        """Messages over the last 60 seconds."""
        second = int(self.clock())
        inbound = outbound = 0
        for at, i, o in self._seconds:
            if at > second - 60:
                inbound += i
                outbound += o
        return {"sent": outbound, "received": inbound, "total": inbound + outbound}

    def error_rate(self) -> float:
        """Errors among operations (sends, receipts, connections, errors) over the window."""
        recent = self.recent()
        return round(recent["errors"] / recent["operations"], 4) if recent["operations"] else 0.0

    def performance(self) -> dict[str, Any]:
        minute = int(self.clock() // 60)
        routes = {k: s for k, h in sorted(self.routes.items()) if (s := h.summary(minute))}
        operations = {k: s for k, h in sorted(self.operations.items()) if (s := h.summary(minute))}
        return {"windowSeconds": self.window_minutes * 60, "routes": routes, "operations": operations}

    def take_unsaved(self) -> dict[int, Counter[str]]:
        """Activity by minute not yet persisted; the caller saves it or gives it back."""
        unsaved, self._unsaved = self._unsaved, {}
        return unsaved

    def give_back(self, unsaved: dict[int, Counter[str]]) -> None:
        for minute, counts in unsaved.items():
            self._unsaved.setdefault(minute, Counter()).update(counts)

    def uptime(self) -> float:
        return self.clock() - self.started


__all__ = ["MINUTE_FIELDS", "CompanyFigures", "Figures", "Histogram", "Op"]
