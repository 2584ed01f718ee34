"""A Cloud API company end to end, against the contract fake of Meta's Graph API."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_graph import FakeGraph, encode, sign
from tests.harness import Node, wait_for
from wafleet.storage.crypto import generate_key

PNID, TOKEN, SECRET = "106540352242922", "EAAG-the-real-token-value-123", "test-app-secret"
CUSTOMER, OTHER = "5511977776666", "5511955554444"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph({PNID: TOKEN, "200000000000001": "another-token"}, app_secret=SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def cloud_node(node_factory, graph: FakeGraph, tmp_path: Path) -> Node:
    return node_factory(
        f"sqlite:///{tmp_path}/wafleet.db",
        WAFLEET_ENCRYPTION_KEY=generate_key(),
        WAFLEET_GRAPH_URL=graph.url,
        WHATSAPP_WEBHOOK_SECRET=SECRET,
        WHATSAPP_LOG_LEVEL="info",
    ).start()


def _create(node: Node, company: str, pnid: str, token: str) -> dict:
    r = node.client.post(
        "/admin/companies",
        json={
            "id": company,
            "name": company,
            "link": "cloud",
            "cloud": {"phoneNumberId": pnid, "accessToken": token},
        },
        headers=node.admin(),
    )
    assert r.status_code == 201, r.text
    return r.json()


def _send(node: Node, company: str, to: str, text: str) -> int:
    r = node.post("/api/whatsapp/send", {"companyId": company, "phone": to, "message": text})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _row(node: Node, row_id: int) -> dict:
    return node.client.get(f"/api/whatsapp/send/{row_id}", headers=node.admin()).json()


def test_cloud_company_connects_and_its_token_never_shows(cloud_node: Node, tmp_path: Path) -> None:
    created = _create(cloud_node, "clinic", PNID, TOKEN)
    assert created["company"]["cloud"] == {"phoneNumberId": PNID}
    assert TOKEN not in str(created)
    assert cloud_node.post("/api/whatsapp/sessions/clinic/initialize").status_code == 202
    status = cloud_node.wait_status("clinic", "connected")
    assert status["qr"] is None and status["phoneNumber"]
    r = cloud_node.post("/api/whatsapp/sessions/clinic/pairing-code", {"phoneNumber": "5511999990001"})
    assert r.status_code == 409 and "Cloud API" in r.json()["error"]["message"]
    for path in ("/admin/companies/clinic", "/admin/companies", "/api/whatsapp/sessions/clinic/status"):
        assert TOKEN not in cloud_node.client.get(path, headers=cloud_node.admin()).text
    stored = sqlite3.connect(tmp_path / "wafleet.db").execute("SELECT cloud_token FROM company").fetchone()[0]
    assert stored and TOKEN not in stored  # encrypted at rest
    assert TOKEN not in cloud_node.log()


def test_a_bad_token_fails_with_auth_until_credentials_are_updated(cloud_node: Node) -> None:
    _create(cloud_node, "shop", "200000000000001", "wrong-token")
    cloud_node.post("/api/whatsapp/sessions/shop/initialize")
    failed = cloud_node.wait_status("shop", "failed")
    assert failed["lastError"]["reason"] == "auth"
    r = cloud_node.client.patch(
        "/admin/companies/shop", json={"cloud": {"accessToken": "another-token"}}, headers=cloud_node.admin()
    )
    assert r.status_code == 200
    assert cloud_node.post("/api/whatsapp/sessions/shop/reconnect").status_code == 200
    cloud_node.wait_status("shop", "connected")


def test_sending_follows_metas_error_codes(cloud_node: Node, graph: FakeGraph) -> None:
    _create(cloud_node, "salon", PNID, TOKEN)
    cloud_node.post("/api/whatsapp/sessions/salon/initialize")
    cloud_node.wait_status("salon", "connected")

    # 130429 (rate limit): retried after its wait, then sent
    graph.fail_next(130429)
    first = _send(cloud_node, "salon", CUSTOMER, "Your booking is confirmed")
    sent = wait_for(lambda: (r := _row(cloud_node, first))["status"] == "sent" and r, timeout=20)
    assert sent["attempts"] == 2

    # 131056 (pair rate limit): a second message to the same customer waits >= 6 s; others don't
    second = _send(cloud_node, "salon", CUSTOMER, "See you tomorrow")
    other = _send(cloud_node, "salon", OTHER, "Hello")
    wait_for(lambda: _row(cloud_node, other)["status"] == "sent", timeout=20)
    wait_for(lambda: _row(cloud_node, second)["status"] == "sent", timeout=30)
    times = {m["text"]: m["at"] for m in graph.sent}
    assert times["See you tomorrow"] - times["Your booking is confirmed"] >= 6.0
    assert times["Hello"] < times["See you tomorrow"]

    # 131047 (24-hour window closed): final, never retried
    graph.outside_window.add("5511900001111")
    late = _send(cloud_node, "salon", "5511900001111", "Reminder")
    failed = wait_for(lambda: (r := _row(cloud_node, late))["status"] == "failed" and r, timeout=20)
    assert failed["error"]["code"] == 131047 and failed["attempts"] == 1

    # Meta's status webhooks, out of order and twice: the message ends at read, never backwards
    wamid = sent["waId"]
    codes = graph.post_statuses(
        f"{cloud_node.base_url}/api/whatsapp/webhook/cloud", wamid, ("sent", "delivered", "read"), seed=3
    )
    assert set(codes) == {200}
    history = cloud_node.client.get("/api/whatsapp/messages/salon", headers=cloud_node.admin()).json()
    wait_for(
        lambda: (
            next(
                m
                for m in cloud_node.client.get(
                    "/api/whatsapp/messages/salon", headers=cloud_node.admin()
                ).json()["messages"]
                if m["waId"] == wamid
            )["status"]
            == "read"
        ),
        what="status read",
    )
    assert history["messages"]


def test_a_company_with_its_own_meta_app_signs_with_its_own_secret(
    cloud_node: Node, graph: FakeGraph
) -> None:
    graph.tokens["300000000000003"] = "own-token"
    r = cloud_node.client.post(
        "/admin/companies",
        json={
            "id": "own",
            "name": "Own App",
            "link": "cloud",
            "cloud": {
                "phoneNumberId": "300000000000003",
                "accessToken": "own-token",
                "appSecret": "company-own-app-secret",
                "verifyToken": "own-verify",
            },
        },
        headers=cloud_node.admin(),
    )
    assert r.status_code == 201 and "company-own-app-secret" not in r.text
    hook = f"{cloud_node.base_url}/api/whatsapp/webhook/cloud/own"  # its own app, its own URL
    ok = cloud_node.client.get(
        hook, params={"hub.mode": "subscribe", "hub.verify_token": "own-verify", "hub.challenge": "42"}
    )
    assert (ok.status_code, ok.text) == (200, "42")
    bad = cloud_node.client.get(
        hook, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"}
    )
    assert bad.status_code == 403

    cloud_node.post("/api/whatsapp/sessions/own/initialize")
    cloud_node.wait_status("own", "connected")
    row = _send(cloud_node, "own", CUSTOMER, "Hi from our own app")
    wamid = wait_for(lambda: (r := _row(cloud_node, row))["status"] == "sent" and r["waId"])
    body = encode(graph.status_payload(wamid, ("delivered",)))
    wrong = cloud_node.client.post(hook, content=body, headers={"X-Hub-Signature-256": sign("other", body)})
    assert wrong.status_code == 401
    # Meta signs with the company's own app secret: accepted, and the status lands
    signed = {"X-Hub-Signature-256": sign("company-own-app-secret", body), "Content-Type": "application/json"}
    assert cloud_node.client.post(hook, content=body, headers=signed).status_code == 200
    wait_for(
        lambda: (
            cloud_node.client.get("/api/whatsapp/messages/own", headers=cloud_node.admin()).json()[
                "messages"
            ][0]["status"]
            == "delivered"
        )
    )


def test_messages_for_a_number_nobody_owns_yet_land_once_a_company_claims_it(
    cloud_node: Node, graph: FakeGraph
) -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550009999",
                                "phone_number_id": "400000000000004",
                            },
                            "contacts": [{"profile": {"name": "Ana"}, "wa_id": CUSTOMER}],
                            "messages": [
                                {
                                    "from": CUSTOMER,
                                    "id": "wamid.early-bird",
                                    "timestamp": "1795550000",
                                    "type": "text",
                                    "text": {"body": "Are you open on Sunday?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    hook = f"{cloud_node.base_url}/api/whatsapp/webhook/cloud"
    body = encode(payload)
    r = cloud_node.client.post(hook, content=body, headers={"X-Hub-Signature-256": sign(SECRET, body)})
    assert r.status_code == 200
    listed = wait_for(
        lambda: cloud_node.client.get("/api/whatsapp/webhook/unrouted", headers=cloud_node.admin()).json()[
            "payloads"
        ]
    )
    assert listed[0]["phoneNumberIds"] == ["400000000000004"]

    graph.tokens["400000000000004"] = "late-token"
    _create(cloud_node, "late", "400000000000004", "late-token")
    history = wait_for(
        lambda: cloud_node.client.get("/api/whatsapp/messages/late", headers=cloud_node.admin()).json()[
            "messages"
        ]
    )
    assert [(m["direction"], m["text"]) for m in history] == [("in", "Are you open on Sunday?")]
    assert (
        cloud_node.client.get("/api/whatsapp/webhook/unrouted", headers=cloud_node.admin()).json()["payloads"]
        == []
    )
