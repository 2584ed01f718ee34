"""The connection rules as a company meets them: QR fallback, pairing limits, Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Node, wait_for
from tests.redis_server import RedisServer

FAST_QR = {"WAFLEET_QR_FIRST_TIMEOUT": "150", "WAFLEET_QR_TIMEOUT": "150"}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


def test_three_unscanned_qr_rounds_switch_to_a_pairing_code_for_the_stored_phone(node_factory) -> None:
    node: Node = node_factory(**FAST_QR).start()
    node.create_company("withphone", phone="5511999990001")
    node.post("/api/whatsapp/sessions/withphone/initialize")
    status = node.wait_status("withphone", "pairing")
    rounds = [h["reason"] for h in status["history"] if h["status"] == "qr"]
    assert rounds == ["round 1"]  # one qr transition; rounds 2 and 3 were events
    assert status["pairingCode"]["code"]
    r = node.post("/api/sandbox/withphone/enter-code", {"code": status["pairingCode"]["code"]})
    assert r.status_code == 202
    assert node.wait_status("withphone", "connected")["phoneNumber"] == "5511999990001"


def test_without_a_phone_the_session_stops_asking_for_one(node_factory) -> None:
    node: Node = node_factory(**FAST_QR).start()
    node.create_company("nophone")
    node.post("/api/whatsapp/sessions/nophone/initialize")
    status = node.wait_status("nophone", "stopped", timeout=15)
    assert status["lastError"]["reason"] == "qr_exhausted"
    assert "phone number" in status["lastError"]["message"]
    assert status["history"][-1]["reason"] == "qr_exhausted"


def _exhaust_pairing(node: Node, company: str, limit: int) -> None:
    for n in range(limit):
        r = node.post(f"/api/whatsapp/sessions/{company}/pairing-code", {"phoneNumber": "5511988887777"})
        assert r.status_code == 200, (n, r.text)


def _assert_blocked_429(node: Node, company: str) -> None:
    r = node.post(f"/api/whatsapp/sessions/{company}/pairing-code", {"phoneNumber": "5511988887777"})
    assert r.status_code == 429, r.text
    retry_after = int(r.headers["Retry-After"])
    assert 1700 <= retry_after <= 1800  # the 30-minute cooldown
    assert "min" in r.json()["error"]["message"]


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_sixth_pairing_code_in_an_hour_blocks_and_the_block_survives_a_restart(
    node_factory, request: pytest.FixtureRequest, backend: str
) -> None:
    env = {"REDIS_URL": request.getfixturevalue("redis_server").url} if backend == "redis" else {}
    node: Node = node_factory(**env).start()
    node.create_company("eager", phone="5511999990001")
    _exhaust_pairing(node, "eager", 5)
    _assert_blocked_429(node, "eager")
    status = node.wait_status("eager", "blocked")
    assert status["blockedUntil"] and status["lastError"]["reason"] == "pairing_limit"
    listed = node.client.get("/api/whatsapp/sessions?status=blocked", headers=node.admin()).json()
    assert [(s["companyId"], bool(s["blockedUntil"])) for s in listed["sessions"]] == [("eager", True)]
    r = node.post("/api/whatsapp/sessions/eager/initialize")  # a QR would not bypass it either
    assert r.status_code == 429

    node.kill()
    node.start()
    assert node.status("eager")["status"] == "blocked"
    _assert_blocked_429(node, "eager")


def test_redis_outage_degrades_and_recovers_without_a_restart(
    node_factory, redis_server: RedisServer
) -> None:
    node: Node = node_factory(REDIS_URL=redis_server.url).start()
    assert node.client.get("/readyz").json()["redis"] == "ok"
    node.create_company("a", phone="5511999990001")
    redis_server.stop()
    # the node keeps serving, on local limits, and says so
    r = node.post("/api/whatsapp/sessions/a/pairing-code", {"phoneNumber": "5511988887777"})
    assert r.status_code == 200, r.text
    ready = wait_for(lambda: (j := node.client.get("/readyz").json())["redis"] == "degraded" and j)
    assert ready["status"] == "ready"
    redis_server.start()
    wait_for(lambda: node.client.get("/readyz").json()["redis"] == "ok", timeout=20, what="redis back")
    r = node.post("/api/whatsapp/sessions/a/pairing-code", {"phoneNumber": "5511988887777"})
    assert r.status_code == 200, r.text
