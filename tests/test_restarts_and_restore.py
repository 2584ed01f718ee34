"""What an operator sees: backoff on repeated crashes, failed after too many, restore on restart."""

from __future__ import annotations

from tests.harness import Node, holds, wait_for


def test_repeated_crashes_back_off_then_fail_until_reconnect(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="50", WAFLEET_RECONNECT_MAX_DELAY="400").start()
    for cid in ("flaky", "calm-1", "calm-2"):
        node.create_company(cid)
        node.connect(cid)
    neighbours_before = {cid: node.status(cid)["history"] for cid in ("calm-1", "calm-2")}

    retry_in = []
    for n in range(1, 11):
        assert node.post("/api/sandbox/flaky/crash").status_code == 202
        status = wait_for(
            lambda n=n: (s := node.status("flaky"))["status"] == "connected" and s["restarts"] == n and s,
            what=f"restart {n}",
        )
        retry_in.append(
            next(h["retryIn"] for h in reversed(status["history"]) if h["status"] == "reconnecting")
        )
    for attempt, value in enumerate(retry_in):  # full jitter under a doubling, capped ceiling
        assert 0 <= value <= min(0.4, 0.05 * 2**attempt) + 0.001, (attempt, retry_in)
    assert len(set(retry_in)) > 5, retry_in  # jittered, not a fixed delay
    assert max(retry_in[5:]) > 0.05, retry_in  # later delays draw from a larger range

    assert node.post("/api/sandbox/flaky/crash").status_code == 202  # the 11th inside the window
    failed = node.wait_status("flaky", "failed")
    assert failed["lastError"]["reason"] == "too_many_restarts"
    assert node.post("/api/sandbox/flaky/crash").status_code == 409  # nothing running to crash
    # it stays failed: no timer brings it back, not even after the longest backoff (400 ms)
    holds(lambda: node.status("flaky")["status"] == "failed", 0.4 * 2, what="flaky stays failed")

    for cid, before in neighbours_before.items():
        after = node.status(cid)
        assert after["status"] == "connected" and after["history"] == before and after["restarts"] == 0

    r = node.post("/api/whatsapp/sessions/flaky/reconnect")
    assert r.status_code == 200, r.text
    node.wait_status("flaky", "connected")
    assert node.post("/api/sandbox/flaky/crash").status_code == 202  # intensity was cleared
    node.wait_status("flaky", "connected")


def test_kill_9_restores_connected_sessions_and_keeps_stopped_ones_stopped(
    node_factory, database_url
) -> None:
    node: Node = node_factory(database_url).start()
    for cid in ("a", "b", "c", "d"):
        node.create_company(cid)
    for cid in ("a", "b", "c"):
        node.connect(cid)
    assert node.post("/api/whatsapp/sessions/c/stop").status_code == 200
    node.wait_status("c", "stopped")
    node.kill()

    node.start()
    for cid in ("a", "b"):
        status = node.wait_status(cid, "connected")
        assert status["history"][-3]["reason"] == "boot"
    assert node.status("c")["status"] == "stopped"
    assert node.status("d")["status"] == "stopped"
    # Tokens survive too: the company's own token still opens its routes.
    r = node.client.get("/api/whatsapp/sessions/a/status", headers=node.admin())
    assert r.json()["phoneNumber"]


def test_sigterm_stops_gracefully_and_the_next_boot_restores(node_factory, database_url) -> None:
    node: Node = node_factory(database_url).start()
    node.create_company("a")
    node.connect("a")
    assert node.terminate() == 0
    assert "Traceback" not in node.log()
    node.start()
    node.wait_status("a", "connected")


def test_session_waiting_for_a_qr_scan_is_not_restored_into_a_qr_storm(node_factory) -> None:
    node: Node = node_factory().start()
    node.create_company("pending")
    assert node.post("/api/whatsapp/sessions/pending/initialize").status_code == 202
    node.wait_status("pending", "qr")
    node.kill()
    node.start()
    status = node.status("pending")
    assert status["status"] == "stopped" and status["history"][-1]["reason"] == "boot_no_credentials"


def test_history_survives_a_restart_and_readiness_waits_for_the_boot(node_factory) -> None:
    node: Node = node_factory().start()
    node.create_company("a")
    node.connect("a")
    connected = node.status("a")
    before = connected["history"]
    node.kill()
    node.start()  # /readyz is 200 only once the fleet has restored its records
    after = node.status("a")
    # Never the stale pre-kill view: the first answer already comes from the boot's records.
    assert after["since"] != connected["since"]
    assert after["history"][: len(before)] == before
    assert after["history"][len(before)]["reason"] == "boot"
