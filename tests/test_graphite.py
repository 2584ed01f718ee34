"""The fleet's figures land in Graphite for real: node → StatsD daemon → carbon → Whisper files,
under the names the README lists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.carbon import Carbon
from tests.harness import Node, wait_for
from tests.test_statsd import StatsdDaemon

pytestmark = pytest.mark.slow


@pytest.fixture
def carbon(tmp_path: Path) -> Iterator[Carbon]:
    server = Carbon(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def statsd_to_carbon(tmp_path: Path, carbon: Carbon) -> Iterator[StatsdDaemon]:
    daemon = StatsdDaemon(tmp_path, graphite_port=carbon.port, flush_ms=1000)
    yield daemon
    daemon.stop()


def test_fleet_metrics_land_in_whisper_files_under_the_readme_names(
    node_factory, carbon: Carbon, statsd_to_carbon: StatsdDaemon
) -> None:
    node: Node = node_factory(
        STATSD_HOST="127.0.0.1", STATSD_PORT=str(statsd_to_carbon.port), WHATSAPP_RECONNECT_DELAY="50"
    ).start()
    node.create_company("salon-a")
    node.create_company("salon-b")
    node.connect("salon-a")
    node.post("/api/sandbox/salon-a/crash")
    wait_for(
        lambda: node.status("salon-a")["restarts"] == 1 and node.status("salon-a")["status"] == "connected"
    )

    connected = "stats.gauges.wafleet.sessions.connected"
    wait_for(lambda: 1.0 in carbon.values(connected), 30, 0.2, f"{connected} = 1 in Whisper")
    wait_for(
        lambda: sum(carbon.values("stats.counters.wafleet.sessions.restarts.count")) == 1,
        30,
        0.2,
        "one restart in Whisper",
    )
    expected = {
        "stats.gauges.wafleet.sessions.stopped",
        "stats.gauges.wafleet.pairing.pending",
        "stats.counters.wafleet.sessions.transitions.count",
        "stats.counters.wafleet.sessions.transitions.connected.rate",
        "stats.counters.wafleet.sessions.restarts.crash.count",
        "stats.counters.wafleet.sessions.exits.crash.count",
        "stats.counters.wafleet.qr.rounds.count",
        "stats.counters.wafleet.http.requests.2xx.count",
        "stats.timers.wafleet.http.latency.mean",
        "stats.timers.wafleet.http.latency.upper_90",
    }
    wait_for(lambda: expected <= carbon.series(), 30, 0.2, f"{sorted(expected - carbon.series())}")
    assert sum(carbon.values("stats.counters.wafleet.http.requests.2xx.count")) >= 5
    # Fleet series carry no company id: 10,000 companies must not mean 10,000 files per figure.
    assert not [s for s in carbon.series() if "salon" in s]
