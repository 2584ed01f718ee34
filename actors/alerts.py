"""Threshold alerts: the policy as a table, and the board of the ones firing now.

Each row names a reading and the limit it must stay under. An alert fires once when its
reading goes over the limit and stays active, without firing again, until the reading is back
under it: then it is ``resolved``. Both are ``alert`` events (state ``firing`` / ``resolved``),
so they are streamed, persisted and delivered like every other alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wafleet.storage.clock import iso


@dataclass(frozen=True)
class Reading:
    error_rate: float  # errors among operations over the alert window
    disconnect_rate: float  # drops over the alert window, per session meant to run
    memory_mb: float  # the process's resident memory


@dataclass(frozen=True)
class Limits:
    error_rate: float = 0.1  # WHATSAPP_ALERT_ERROR_RATE
    disconnect_rate: float = 0.1  # WHATSAPP_ALERT_DISCONNECT_RATE
    memory_mb: float = 1024.0  # WHATSAPP_ALERT_MEMORY_MB


@dataclass(frozen=True)
class Threshold:
    kind: str  # the alert's kind (the event's reason)
    reading: Callable[[Reading], float]
    limit: Callable[[Limits], float]
    text: str  # what it says, given value and limit


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(
        "error_rate",
        lambda r: r.error_rate,
        lambda lim: lim.error_rate,
        "error rate {value:.1%} is above {limit:.1%}",
    ),
    Threshold(
        "disconnect_rate",
        lambda r: r.disconnect_rate,
        lambda lim: lim.disconnect_rate,
        "disconnect rate {value:.1%} is above {limit:.1%}",
    ),
    Threshold(
        "memory",
        lambda r: r.memory_mb,
        lambda lim: lim.memory_mb,
        "memory {value:.0f} MB is above {limit:.0f} MB",
    ),
)
KINDS = tuple(t.kind for t in THRESHOLDS)


@dataclass(frozen=True)
class Change:
    kind: str
    state: str  # firing | resolved
    message: str
    value: float
    limit: float


def evaluate(reading: Reading, limits: Limits, active: set[str]) -> list[Change]:
    """What fires and what resolves, given the alerts active now."""
    changes = []
    for threshold in THRESHOLDS:
        value, limit = threshold.reading(reading), threshold.limit(limits)
        over = value > limit
        if over and threshold.kind not in active:
            message = threshold.text.format(value=value, limit=limit)
            changes.append(Change(threshold.kind, "firing", message, value, limit))
        elif not over and threshold.kind in active:
            message = threshold.text.replace("is above", "is back under").format(value=value, limit=limit)
            changes.append(Change(threshold.kind, "resolved", message, value, limit))
    return changes


class AlertBoard:
    """The alerts firing now: written by the metrics recorder only, read by the routes."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}

    def fire(self, kind: str, message: str, value: float, limit: float, since: int) -> None:
        self.active[kind] = {"kind": kind, "message": message, "value": value, "limit": limit, "since": since}

    def resolve(self, kind: str) -> None:
        self.active.pop(kind, None)

    def json(self) -> list[dict[str, Any]]:
        return [dict(a, since=iso(a["since"])) for _, a in sorted(self.active.items())]


__all__ = ["KINDS", "THRESHOLDS", "AlertBoard", "Change", "Limits", "Reading", "Threshold", "evaluate"]
