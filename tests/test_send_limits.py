"""Send limits and validation over HTTP: a per-company rate limit shared by nodes through Redis,
blocked numbers (global and per company) refused on send and silenced on inbound, message text
checked before anything is queued."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Node, wait_for
from tests.redis_server import RedisServer
from tests.sse import SseClient
from tests.webhook_receiver import Receiver
from wafleet.storage.crypto import generate_key

PHONE = "5511988887777"
SPAMMER = "5511900000001"
HOOK_SECRET = "whsec_0123456789abcdef"


def _send(
    node: Node, company: str, text: str, token: str | None = None, phone: str = PHONE
) -> httpx.Response:
    return node.post(
        "/api/whatsapp/send", {"companyId": company, "phone": phone, "message": text}, token=token
    )


def _messages(node: Node, company: str) -> list[dict]:
    r = node.client.get(f"/api/whatsapp/messages/{company}", headers=node.admin())
    assert r.status_code == 200, r.text
    return r.json()["messages"]


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


def test_over_the_rate_limit_a_send_is_refused_with_retry_after_and_nothing_is_queued(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RATE_LIMIT_PER_COMPANY="3", WHATSAPP_RATE_LIMIT_WINDOW="60000").start()
    token = node.create_company("shop")
    node.create_company("other")
    accepted = [_send(node, "shop", f"message {i}", token=token) for i in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    refused = _send(node, "shop", "one too many", token=token)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "3 messages per 60 s" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert _send(node, "other", "another company has its own budget").status_code == 202
    node.connect("shop")  # everything queued goes out: exactly the three accepted, in order
    wait_for(
        lambda: len(node.client.get("/api/sandbox/shop/outbox", headers=node.admin()).json()["messages"]) >= 3
    )
    outbox = node.client.get("/api/sandbox/shop/outbox", headers=node.admin()).json()["messages"]
    assert [m["text"] for m in outbox] == ["message 0", "message 1", "message 2"]
    assert "one too many" not in [m["text"] for m in _messages(node, "shop")]


def test_the_window_slides_and_sends_are_accepted_again(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RATE_LIMIT_PER_COMPANY="2", WHATSAPP_RATE_LIMIT_WINDOW="1500").start()
    node.create_company("shop")
    assert [_send(node, "shop", f"m{i}").status_code for i in range(2)] == [202, 202]
    refused = _send(node, "shop", "too soon")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] in ("1", "2")
    # Refusals do not spend the budget: once the window has passed, a send goes through.
    wait_for(lambda: _send(node, "shop", "later").status_code == 202, timeout=5, interval=0.2)


def test_two_nodes_share_one_rate_limit_through_redis(node_factory, redis_server: RedisServer) -> None:
    env = {
        "WHATSAPP_RATE_LIMIT_PER_COMPANY": "3",
        "WHATSAPP_RATE_LIMIT_WINDOW": "60000",
        "REDIS_URL": redis_server.url,
    }
    a: Node = node_factory(**env).start()
    b: Node = node_factory(f"sqlite:///{a.workdir}/b.db", **env).start()
    for node in (a, b):
        node.create_company("shared")
    assert [_send(a, "shared", "a1").status_code, _send(a, "shared", "a2").status_code] == [202, 202]
    assert _send(b, "shared", "b1").status_code == 202
    refused = _send(b, "shared", "b2")
    assert refused.status_code == 429, refused.text
    assert _send(a, "shared", "a3").status_code == 429


def test_globally_blocked_numbers_are_refused_on_send(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_BLOCKED_NUMBERS=f" {SPAMMER} , 5511900000002").start()
    token = node.create_company("shop")
    r = _send(node, "shop", "hello", token=token, phone=SPAMMER)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "blocked_number"
    assert SPAMMER in r.json()["error"]["message"]
    assert _send(node, "shop", "hello", token=token).status_code == 202
    listed = node.client.get("/api/whatsapp/blocklist/shop", headers={"Authorization": f"Bearer {token}"})
    assert listed.json()["global"] == [SPAMMER, "5511900000002"]


def test_a_company_blocklist_is_its_own(node_factory, database_url) -> None:
    node: Node = node_factory(database_url).start()
    token_a = node.create_company("a")
    token_b = node.create_company("b")
    auth_a = {"Authorization": f"Bearer {token_a}"}
    r = node.client.put("/api/whatsapp/blocklist/a", json={"numbers": [SPAMMER]}, headers=auth_a)
    assert r.status_code == 200, r.text
    assert r.json()["numbers"] == [SPAMMER]
    assert _send(node, "a", "hi", token=token_a, phone=SPAMMER).status_code == 403
    assert _send(node, "b", "hi", token=token_b, phone=SPAMMER).status_code == 202  # b did not block it
    # b cannot read or change a's list
    auth_b = {"Authorization": f"Bearer {token_b}"}
    assert node.client.get("/api/whatsapp/blocklist/a", headers=auth_b).status_code == 403
    assert (
        node.client.put("/api/whatsapp/blocklist/a", json={"numbers": []}, headers=auth_b).status_code == 403
    )
    # add one, remove one
    r = node.client.post("/api/whatsapp/blocklist/a", json={"numbers": ["5511900000009"]}, headers=auth_a)
    assert r.json()["numbers"] == [SPAMMER, "5511900000009"]
    r = node.client.delete(f"/api/whatsapp/blocklist/a/{SPAMMER}", headers=auth_a)
    assert r.status_code == 200 and r.json()["numbers"] == ["5511900000009"]
    assert _send(node, "a", "hi again", token=token_a, phone=SPAMMER).status_code == 202
    # bad input is a clear 400
    bad = node.client.put("/api/whatsapp/blocklist/a", json={"numbers": ["+55 11"]}, headers=auth_a)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_phone"
    bad = node.client.put("/api/whatsapp/blocklist/a", json={"numbers": "x"}, headers=auth_a)
    assert bad.status_code == 400


def test_inbound_from_a_blocked_number_is_stored_but_not_announced(node_factory) -> None:
    receiver = Receiver(secret=HOOK_SECRET)
    node: Node = node_factory(
        WAFLEET_ENCRYPTION_KEY=generate_key(), WAFLEET_WEBHOOK_ALLOW_PRIVATE="true"
    ).start()
    node.create_company(
        "shop", webhooks=[{"url": receiver.url, "events": ["message"], "secret": HOOK_SECRET}]
    )
    node.connect("shop")
    r = node.client.put("/api/whatsapp/blocklist/shop", json={"numbers": [SPAMMER]}, headers=node.admin())
    assert r.status_code == 200
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/shop/events", "test-admin-token-0123456789")
    try:
        for sender, text in ((SPAMMER, "buy cheap watches"), (PHONE, "can I book at 3pm?")):
            r = node.post("/api/sandbox/shop/inbound", {"from": sender, "text": text})
            assert r.status_code == 202, r.text
        # The customer's message is announced; the blocked one, sent before it, never was.
        seen = []
        while True:
            event = stream.events.get(timeout=10)
            if event.event == "message":
                seen.append(event.data["peer"])
                if event.data["peer"] == PHONE:
                    break
        assert seen == [PHONE]
    finally:
        stream.close()
    # Nor forwarded: the company's webhook gets the customer's message only.
    wait_for(lambda: receiver.snapshot(), what="the customer's message at the company's webhook")
    assert [r["body"]["data"]["peer"] for r in receiver.snapshot()] == [PHONE]
    receiver.close()
    stored = {m["peer"]: m for m in _messages(node, "shop")}
    assert stored[SPAMMER]["text"] == "buy cheap watches" and stored[SPAMMER]["blocked"] is True
    assert stored[PHONE]["blocked"] is False


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("x" * 4097, "4096"),
        ("bell \x07 here", "control characters"),
        ("escape \x1b[31m", "control characters"),
        ("   \n\t ", "1 to 4096"),
    ],
)
def test_message_text_is_validated_before_anything_is_queued(node: Node, text: str, why: str) -> None:
    node.create_company("shop")
    r = _send(node, "shop", text)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_field" and why in r.json()["error"]["message"]


def test_newlines_tabs_and_the_longest_text_are_accepted(node: Node) -> None:
    node.create_company("shop")
    assert _send(node, "shop", "line 1\n\tline 2\r\nline 3").status_code == 202
    assert _send(node, "shop", "é" * 4096).status_code == 202
