"""The fleet's gauges: how many sessions are in each state, how many pairing codes are live.

A loop in its own greenlet, reading the directory (the read model) and never an actor: a gauge
costs no message round trip, and at 10,000 sessions it carries no company id.
"""

from __future__ import annotations

import gevent

from wafleet.actors.directory import Directory
from wafleet.actors.metrics import Metrics
from wafleet.storage.clock import now_ms


def publish_once(directory: Directory, metrics: Metrics) -> None:
    for state, count in directory.counts().items():
        metrics.gauge(f"sessions.{state}", count)
    now = now_ms()
    pending = sum(1 for r in directory.records.values() if r.pairing and r.pairing["expiresAt"] > now)
    metrics.gauge("pairing.pending", pending)


def publish_forever(directory: Directory, metrics: Metrics, interval: float) -> None:
    while True:
        publish_once(directory, metrics)
        gevent.sleep(interval)
