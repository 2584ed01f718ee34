"""After a kill -9 and a start, every session shows the status (and phone) it had before."""

from __future__ import annotations

from tests.harness import Node, wait_for


def test_kill_9_keeps_each_sessions_status_and_phone(node_factory, database_url) -> None:
    node: Node = node_factory(
        database_url, WHATSAPP_RECONNECT_DELAY="20", WHATSAPP_MAX_RECONNECT_ATTEMPTS="1"
    ).start()
    for cid in ("live", "out", "clean", "banned", "flaky", "idle"):
        node.create_company(cid)
    for cid in ("live", "out", "clean", "banned", "flaky"):
        node.connect(cid)

    assert node.post("/api/sandbox/out/disconnect", {"reason": "logged_out"}).status_code == 202
    node.wait_status("out", "logged_out")
    assert node.post("/api/whatsapp/sessions/clean/cleanup").status_code == 200
    node.wait_status("clean", "stopped")
    r = node.post("/api/sandbox/banned/disconnect", {"reason": "banned", "until": "2099-01-01T00:00:00Z"})
    assert r.status_code == 202, r.text
    node.wait_status("banned", "failed")
    assert node.post("/api/sandbox/flaky/crash").status_code == 202
    wait_for(
        lambda: (
            [h["status"] for h in node.status("flaky")["history"][-3:]]
            == ["reconnecting", "starting", "connected"]
        ),
        what="flaky back after its first crash",
    )
    assert node.post("/api/sandbox/flaky/crash").status_code == 202
    node.wait_status("flaky", "failed")

    before = {cid: node.status(cid) for cid in ("live", "out", "clean", "banned", "flaky", "idle")}
    assert before["out"]["phoneNumber"] is None and before["clean"]["phoneNumber"] is None
    node.kill()
    node.start()

    # The restored session is the last thing boot does: once it is back, boot has finished.
    live = node.wait_status("live", "connected")
    assert live["phoneNumber"] == before["live"]["phoneNumber"]
    changed = []
    for cid in ("out", "clean", "banned", "flaky", "idle"):
        after = node.status(cid)
        for key in ("status", "phoneNumber", "lastError", "history"):  # history: no boot entry
            if after[key] != before[cid][key]:
                changed.append((cid, key, before[cid][key], after[key]))
    assert not changed, changed


def test_restore_runs_in_the_background_at_the_boot_rate_and_readiness_reports_it(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BOOT_RATE="4").start()
    ids = [f"s{i}" for i in range(8)]
    for cid in ids:
        node.create_company(cid)
        node.connect(cid)
    node.kill()
    node.start()  # returns once /readyz is 200: every record is loaded

    # 8 sessions at 4 a second take 1.75 s to be asked for: the node serves meanwhile.
    ready = node.client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["boot"]["state"] == "restoring" and ready["boot"]["toRestore"] == 8, ready
    assert node.client.get("/healthz").status_code == 200
    assert node.status(ids[-1])["status"] == "reconnecting"  # known, not yet asked to start

    for cid in ids:
        node.wait_status(cid, "connected")
    done = wait_for(lambda: (b := node.client.get("/readyz").json()["boot"])["state"] == "done" and b)
    assert done == {"state": "done", "loaded": 8, "toRestore": 8, "restored": 8}
