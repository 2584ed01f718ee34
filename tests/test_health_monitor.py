"""The health monitor against a real node: zombies and stuck starts are found and reconnected."""

from __future__ import annotations

from typing import Any

from tests.harness import ADMIN_TOKEN, holds, wait_for
from tests.sse import SseClient

INTERVAL_MS = 200
PROBE_TIMEOUT_MS = 200
CONNECTION_TIMEOUT_MS = 600
FAST = {
    "WHATSAPP_HEALTH_CHECK_INTERVAL": str(INTERVAL_MS),
    "WAFLEET_HEALTH_PROBE_TIMEOUT": str(PROBE_TIMEOUT_MS),
    "WHATSAPP_CONNECTION_TIMEOUT": str(CONNECTION_TIMEOUT_MS),
    "WHATSAPP_RECONNECT_DELAY": "100",
    "STATSD_HOST": "",
}


def metrics(node) -> dict[str, Any]:
    return node.client.get("/api/whatsapp/metrics", headers=node.admin()).json()


def test_a_zombie_is_reconnected_and_counted(node_factory, database_url: str) -> None:
    node = node_factory(database_url, **FAST).start()
    node.create_company("alpha")
    node.create_company("beta")
    node.connect("alpha")
    node.connect("beta")
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/alpha/events", ADMIN_TOKEN)

    r = node.post("/api/sandbox/alpha/zombie")
    assert r.status_code == 202, r.text
    # still "connected" as far as anyone can see, but its link no longer answers
    assert node.status("alpha")["status"] == "connected"
    assert node.post("/api/sandbox/alpha/inbound", {"from": "15551234567", "text": "hi"}).status_code == 409

    zombie = stream.until(lambda e: e.event == "zombie")[-1]
    assert zombie.data["reason"] == "link_silent" and zombie.data["state"] == "connected"
    assert "did not answer a probe" in zombie.data["message"]
    back = stream.until(lambda e: e.event == "status" and e.data["state"] == "connected")
    assert [(e.data["state"], e.data["reason"]) for e in back if e.event == "status"] == [
        ("reconnecting", "zombie"),
        ("starting", "resume"),
        ("connected", "linked"),
    ]
    stream.close()
    status = node.status("alpha")
    assert status["restarts"] == 1 and status["lastError"]["reason"] == "zombie"
    assert node.post("/api/sandbox/alpha/inbound", {"from": "15551234567", "text": "hi"}).status_code == 202
    m = metrics(node)
    assert m["zombies"] == 1 and m["errors"]["breakdown"] == {"TIMEOUT": 1}
    # its neighbour answered every probe and was left alone
    assert node.status("beta")["restarts"] == 0


def test_healthy_sessions_are_left_alone(node_factory) -> None:
    node = node_factory(**FAST).start()
    for company_id in ("alpha", "beta", "gamma"):
        node.create_company(company_id)
        node.connect(company_id)
    # ten rounds of probes: nobody is taken for a zombie
    holds(
        lambda: (
            metrics(node)["zombies"] == 0
            and all(node.status(c)["restarts"] == 0 for c in ("alpha", "beta", "gamma"))
        ),
        seconds=10 * INTERVAL_MS / 1000,
        what="no zombie among healthy sessions",
    )


def test_a_session_stuck_starting_is_restarted(node_factory) -> None:
    node = node_factory(**FAST).start()
    node.create_company("alpha")
    node.connect("alpha")
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/alpha/events", ADMIN_TOKEN)
    # the link goes silent, and so does the next start: it hangs in "starting" (no QR, no resume)
    assert node.post("/api/sandbox/alpha/zombie", {"starts": 1}).status_code == 202
    events = stream.until(lambda e: e.event == "status" and e.data["state"] == "connected")
    assert [(e.event, e.data["state"], e.data["reason"]) for e in events] == [
        ("zombie", "connected", "link_silent"),
        ("status", "reconnecting", "zombie"),
        ("status", "starting", "resume"),
        ("zombie", "starting", "stuck_starting"),
        ("status", "reconnecting", "zombie"),
        ("status", "starting", "resume"),
        ("status", "connected", "linked"),
    ]
    stream.close()
    stuck, ended = events[2], events[4]
    # it was given the whole connection timeout before it was called stuck
    assert _ms(ended.data["at"]) - _ms(stuck.data["at"]) >= CONNECTION_TIMEOUT_MS
    assert node.status("alpha")["restarts"] == 2


def test_the_zombie_fault_checks_its_input(node) -> None:
    node.create_company("alpha")
    r = node.post("/api/sandbox/alpha/zombie")
    assert r.status_code == 409  # no live session to act on
    node.connect("alpha")
    for body in ({"starts": 11}, {"starts": -1}, {"starts": "1"}, {"starts": 1.5}, {"other": 1}):
        r = node.post("/api/sandbox/alpha/zombie", body)
        assert r.status_code == 400, (body, r.text)
    assert node.status("alpha")["status"] == "connected"
    wait_for(lambda: node.post("/api/sandbox/alpha/zombie").status_code == 202)


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
