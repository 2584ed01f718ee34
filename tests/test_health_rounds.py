"""One health round, in-process (gevent, not monkey-patched): what the monitor reports to the
Fleet for each state a session can be in. The real node's behaviour is test_health_monitor.py;
this covers the states it cannot produce on demand (a restart overdue while ``reconnecting``)."""

from __future__ import annotations

from typing import Any

import gevent.event

from wafleet.actors.directory import Directory, SessionRecord
from wafleet.actors.gevent_actor import GeventActor
from wafleet.actors.health import HealthConfig, HealthMonitor
from wafleet.actors.messages import ProbeMany, Revive
from wafleet.actors.metrics import Metrics
from wafleet.storage.clock import now_ms

CONFIG = HealthConfig(interval=0.05, connection_timeout=1.0, probe_timeout=0.1, concurrency=4)


class FakeFleet(GeventActor):
    """Answers probes like the Fleet (forwarding to a session that answers, or not) and keeps
    the revivals it was told about."""

    def __init__(self, silent: set[str]) -> None:
        super().__init__()
        self.silent = silent
        self.revived: list[Revive] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProbeMany):
            answers = {}
            for company_id in message.ids:
                answers[company_id] = answer = gevent.event.AsyncResult()
                if company_id not in self.silent:
                    answer.set(True)
            return answers
        if isinstance(message, Revive):
            self.revived.append(message)
        if message == "revived":
            return [(r.id, r.why) for r in self.revived]
        return None


def record(company_id: str, status: str, since_ago_ms: int, retry_in: float | None = None) -> SessionRecord:
    rec = SessionRecord(company_id, company_id, "sandbox", None, f"hash-{company_id}", 0, desired="running")
    rec.status = status
    rec.since = now_ms() - since_ago_ms
    rec.history.append({"status": status, "at": rec.since, "reason": "x", "retryIn": retry_in})
    return rec


def test_a_round_reports_silent_links_and_overdue_starts_only() -> None:
    directory = Directory()
    for rec in [
        record("fine", "connected", 5_000),
        record("mute", "connected", 5_000),
        record("slow-start", "starting", 1_500),  # past the 1 s connection timeout
        record("fresh-start", "starting", 200),
        record("overdue", "reconnecting", 3_000, retry_in=1.0),  # due 2 s ago: 1 s past the timeout
        record("backing-off", "reconnecting", 3_000, retry_in=60.0),  # its restart is still ahead
        record("qr", "qr", 600_000),  # waiting for a person is not stuck
    ]:
        directory.add(rec)
    fleet = FakeFleet.start({"mute"})
    monitor = HealthMonitor(directory=directory, fleet=lambda: fleet, metrics=Metrics(None), config=CONFIG)
    try:
        monitor.round()
        revived = sorted(fleet.ask("revived"))
    finally:
        fleet.stop()
    assert revived == [
        ("mute", "link_silent"),
        ("overdue", "stuck_reconnecting"),
        ("slow-start", "stuck_starting"),
    ]
    assert monitor.metrics.figures.probes == 2
