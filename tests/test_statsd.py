"""Figures reach a real StatsD daemon (Etsy's, from npm); no daemon breaks nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Node, free_port, wait_for

STATSD = Path(__file__).parent / "statsd" / "node_modules" / "statsd" / "stats.js"


class StatsdDaemon:
    """Etsy's StatsD; flushes go to a JSON-lines log (read by the tests) and, when given, to a
    real carbon's line receiver through StatsD's own graphite backend."""

    def __init__(self, workdir: Path, graphite_port: int | None = None, flush_ms: int = 200) -> None:
        if not STATSD.exists() or shutil.which("node") is None:
            raise RuntimeError(
                "the StatsD daemon is not installed: run .ci/setup (npm install in tests/statsd)"
            )
        self.port = free_port()
        config = workdir / "statsd.json"
        settings: dict = {
            "address": "127.0.0.1",
            "port": self.port,
            "mgmt_address": "127.0.0.1",
            "mgmt_port": free_port(),
            "backends": [str(Path(__file__).parent / "statsd" / "json-lines-backend.js")],
            "flushInterval": flush_ms,
            "deleteIdleStats": False,
        }
        if graphite_port is not None:
            settings["backends"].append("./backends/graphite")
            settings.update(
                graphiteHost="127.0.0.1",
                graphitePort=graphite_port,
                graphite={"legacyNamespace": False},
            )
        config.write_text(json.dumps(settings))
        self.log = workdir / "statsd.log"
        self.proc = subprocess.Popen(
            ["node", str(STATSD), str(config)],
            cwd=STATSD.parent,
            stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "server is up" in self.log.read_text(), 15, what="statsd to listen")

    def flushes(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def latest(self, kind: str, name: str) -> float | None:
        for flush in reversed(self.flushes()):
            value = flush.get(kind, {}).get(name)
            if value is not None:
                return value
        return None

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def statsd(tmp_path: Path) -> Iterator[StatsdDaemon]:
    daemon = StatsdDaemon(tmp_path)
    yield daemon
    daemon.stop()


def test_sessions_restarts_and_http_figures_reach_statsd(node_factory, statsd: StatsdDaemon) -> None:
    node: Node = node_factory(
        STATSD_HOST="127.0.0.1",
        STATSD_PORT=str(statsd.port),
        STATSD_PREFIX="wf",
        WHATSAPP_RECONNECT_DELAY="50",
    ).start()
    node.create_company("a")
    node.create_company("b")
    node.connect("a")
    wait_for(lambda: statsd.latest("gauges", "wf.sessions.connected") == 1, what="connected gauge = 1")
    assert statsd.latest("gauges", "wf.sessions.stopped") == 1
    node.post("/api/sandbox/a/crash")
    wait_for(lambda: node.status("a")["restarts"] == 1 and node.status("a")["status"] == "connected")
    wait_for(
        lambda: sum(f["counters"].get("wf.sessions.restarts", 0) for f in statsd.flushes()) == 1,
        what="one restart counted",
    )
    assert sum(f["counters"].get("wf.sessions.restarts.crash", 0) for f in statsd.flushes()) == 1
    assert sum(f["counters"].get("wf.http.requests.2xx", 0) for f in statsd.flushes()) >= 5
    assert any("wf.http.latency" in f.get("timers", {}) for f in statsd.flushes())
    # Fleet figures carry no company id (10,000 companies would be 10,000 Whisper files each).
    names = {
        n for f in statsd.flushes() for kind in ("counters", "gauges", "timers") for n in f.get(kind, {})
    }
    assert not [n for n in names if ".a." in n or n.endswith(".a")]


def test_no_daemon_listening_breaks_nothing(node_factory) -> None:
    node: Node = node_factory(STATSD_HOST="127.0.0.1", STATSD_PORT=str(free_port())).start()
    node.create_company("a")
    node.connect("a")
    assert node.client.get("/readyz").status_code == 200
