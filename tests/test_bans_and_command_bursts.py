"""Two state bugs a user walked into: a ban with an end, and a burst of reconnects."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.harness import Node, wait_for


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outbox_status(node: Node, row_id: int) -> str:
    return node.client.get(f"/api/whatsapp/send/{row_id}", headers=node.admin()).json()["status"]


@pytest.mark.slow  # waits for the ban's end
def test_a_ban_with_an_end_refuses_reconnect_then_lifts_by_itself(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="50").start()
    for cid in ("timed", "forever"):
        node.create_company(cid)
        node.connect(cid)
    until = _iso(datetime.now(UTC) + timedelta(seconds=3))
    r = node.post("/api/sandbox/timed/disconnect", {"reason": "banned", "until": until})
    assert r.status_code == 202, r.text
    r = node.post("/api/sandbox/forever/disconnect", {"reason": "banned", "until": None})
    assert r.status_code == 202, r.text

    banned = node.wait_status("timed", "failed")
    assert banned["lastError"]["reason"] == "banned"
    assert banned["lastError"]["until"] == until
    forever = node.wait_status("forever", "failed")
    assert forever["lastError"]["reason"] == "banned" and forever["lastError"].get("until") is None

    r = node.post("/api/whatsapp/sessions/timed/reconnect")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "banned" and until in error["message"]
    assert node.status("timed")["status"] == "failed"

    back = node.wait_status("timed", "connected", timeout=15)
    assert [h["status"] for h in back["history"][-4:]] == ["failed", "reconnecting", "starting", "connected"]
    assert back["history"][-3]["reason"] == "ban_over" and back["lastError"]["reason"] == "banned"
    # The timed ban lifted by itself: over that same interval the ban without an end did not.
    assert node.status("forever")["status"] == "failed"
    r = node.post("/api/whatsapp/sessions/forever/reconnect")  # an operator acts
    assert r.status_code == 200, r.text
    node.wait_status("forever", "connected")


def test_a_burst_of_reconnects_leaves_one_live_session_and_sends_flow(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="50").start()
    node.create_company("busy")
    node.connect("busy")

    def reconnect(_: int) -> int:
        return node.post("/api/whatsapp/sessions/busy/reconnect").status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(reconnect, range(10)))
    assert codes == [200] * 10
    node.wait_status("busy", "connected")

    r = node.post("/api/whatsapp/send", {"companyId": "busy", "phone": "5511988887777", "message": "hi"})
    assert r.status_code == 202, r.text
    row_id = r.json()["id"]
    wait_for(lambda: _outbox_status(node, row_id) == "sent", what="the message to be sent")
    # One live session: a crash is accepted (something runs) and it comes back on its own.
    assert node.post("/api/sandbox/busy/crash").status_code == 202
    wait_for(
        lambda: (s := node.status("busy"))["status"] == "connected" and s["restarts"] == 1,
        what="busy back after the crash",
    )


@pytest.mark.slow  # waits for the ban's end, across a restart
def test_a_ban_outlives_a_kill_9_and_still_ends_by_itself(node_factory, database_url) -> None:
    node: Node = node_factory(database_url).start()
    node.create_company("timed")
    node.connect("timed")
    # Long enough to outlast a restart on a busy machine (a node takes seconds to answer again).
    until = _iso(datetime.now(UTC) + timedelta(seconds=12))
    assert node.post("/api/sandbox/timed/disconnect", {"reason": "banned", "until": until}).status_code == 202
    node.wait_status("timed", "failed")
    node.kill()
    node.start()

    status = node.status("timed")
    assert status["status"] == "failed" and status["lastError"]["until"] == until
    r = node.post("/api/whatsapp/sessions/timed/reconnect")
    assert r.status_code == 409 and until in r.json()["error"]["message"]
    back = node.wait_status("timed", "connected", timeout=20)
    assert back["history"][-3]["reason"] == "ban_over"
