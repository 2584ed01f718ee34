"""A WhatsApp Web company, as an operator sees it on this offline machine, with real neonize."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.harness import Node, wait_for


def _workers(node: Node) -> set[int]:
    assert node.proc is not None
    out = subprocess.run(["pgrep", "-P", str(node.proc.pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_offline_web_session_backs_off_survives_its_host_and_leaves_nothing_behind(node_factory) -> None:
    node: Node = node_factory(
        WHATSAPP_RECONNECT_DELAY="100",
        WAFLEET_RECONNECT_MAX_DELAY="1500",
        WHATSAPP_MAX_RECONNECT_ATTEMPTS="1000",
    ).start()
    r = node.client.post(
        "/admin/companies", json={"id": "webco", "name": "Web Co", "link": "web"}, headers=node.admin()
    )
    assert r.status_code == 201, r.text
    assert node.post("/api/whatsapp/sessions/webco/initialize").status_code == 202

    def reconnects() -> list[dict]:
        return [h for h in node.status("webco")["history"] if h["status"] == "reconnecting"]

    tries = wait_for(lambda: len(r := reconnects()) >= 4 and r, timeout=30, what="4 transient closes")
    assert {h["reason"] for h in tries} == {"transient"}
    for attempt, h in enumerate(tries):  # full jitter under a doubling ceiling
        assert 0 <= h["retryIn"] <= min(1.5, 0.1 * 2**attempt) + 0.001, tries
    last_error = node.status("webco")["lastError"]
    assert last_error["reason"] == "transient" and last_error["message"]  # neonize's own words

    workers = wait_for(lambda: _workers(node), what="a link host process")
    old = next(iter(workers))
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (w := _workers(node)) and old not in w and w, timeout=30, what="a new link host")
    before = node.status("webco")["restarts"]
    wait_for(lambda: node.status("webco")["restarts"] > before, timeout=30, what="the session retrying again")

    hosts = _workers(node)
    assert node.terminate() == 0
    assert not [p for p in hosts if _alive(p)], "a link host outlived the node"


def test_wafleet_linkhost_runs_a_worker_in_a_fresh_interpreter() -> None:
    import json
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "linkhost"], input=b"", capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout.splitlines()[0])
    assert first["event"] == "ready" and first["neonize"]
