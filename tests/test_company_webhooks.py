"""Company webhooks over HTTP against a real node and a real receiver on loopback: signed,
retried with the same event id, in order per endpoint, durable across a kill -9, isolated per
endpoint and per tenant, dead-lettered and redelivered; private URLs refused without the flag."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fake_graph import FakeGraph
from tests.harness import Node, wait_for
from tests.webhook_receiver import Receiver
from wafleet.storage.crypto import generate_key

SECRET = "whsec_0123456789abcdef"


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def receiver(receivers: list[Receiver], **kwargs: Any) -> Receiver:
    r = Receiver(**kwargs)
    receivers.append(r)
    return r


def webhook_node(node_factory, database_url: str | None = None, **env: str) -> Node:
    settings = {
        "WAFLEET_ENCRYPTION_KEY": generate_key(),
        "WAFLEET_WEBHOOK_ALLOW_PRIVATE": "true",
        "WAFLEET_WEBHOOK_RETRY_BASE": "50",
        "WAFLEET_WEBHOOK_RETRY_MAX": "300",
        "WAFLEET_WEBHOOK_POLL": "200",
        **env,
    }
    return node_factory(database_url, **settings).start()


def hook(url: str, events: list[str], secret: str = SECRET) -> dict[str, Any]:
    return {"url": url, "events": events, "secret": secret}


def inbound(node: Node, company: str, texts: list[str]) -> None:
    for text in texts:
        r = node.post(f"/api/sandbox/{company}/inbound", {"from": "5511988887777", "text": text})
        assert r.status_code == 202, r.text


def message_texts(requests: list[dict[str, Any]]) -> list[str]:
    return [r["body"]["data"]["text"] for r in requests if r["body"]["type"] == "message"]


def assert_in_order(requests: list[dict[str, Any]], expected: list[str]) -> None:
    """Every expected message arrived, none before an earlier one had (repeats allowed)."""
    texts = message_texts(requests)
    positions = [expected.index(t) for t in texts]
    assert positions == sorted(positions), texts
    assert list(dict.fromkeys(texts)) == expected, texts


def deliveries(node: Node, company: str, token: str | None = None, **query: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else node.admin()
    return node.client.get(f"/api/whatsapp/webhooks/{company}/deliveries", params=query, headers=headers)


def test_failures_are_retried_signed_with_the_same_event_id_in_order(
    node_factory, database_url, receivers
) -> None:
    node = webhook_node(node_factory, database_url)
    rx = receiver(receivers, secret=SECRET, fail_first=3)
    node.create_company("salon", webhooks=[hook(rx.url, ["message", "session.status"])])
    node.connect("salon")
    texts = [f"hello {i}" for i in range(5)]
    inbound(node, "salon", texts)

    wait_for(lambda: len(set(message_texts(rx.accepted()))) == 5, timeout=20, what="5 messages accepted")
    got = rx.snapshot()
    assert all(r["signatureOk"] for r in got), [r["signature"] for r in got]
    # The first event was refused three times, then accepted: four attempts, one event id.
    first = got[0]["eventId"]
    assert [r["eventId"] for r in got[:4]] == [first] * 4 and got[3]["answered"] == 200
    assert got[0]["body"] == got[3]["body"] and got[0]["body"]["id"] == first
    # Order per endpoint: the session's statuses before the messages, the messages as sent.
    statuses = [r["body"]["data"]["status"] for r in rx.accepted() if r["type"] == "session.status"]
    assert statuses[-1] == "connected" and "qr" in statuses
    assert_in_order(got, texts)
    assert all(abs(int(r["timestamp"]) - r["receivedAt"] * 1000) < 60_000 for r in got)
    assert all(r["body"]["companyId"] == "salon" for r in got)
    # Listed as delivered, with the attempts they took.
    listed = deliveries(node, "salon", status="delivered").json()["deliveries"]
    by_event = {d["eventId"]: d for d in listed}
    assert by_event[first]["attempts"] == 4 and by_event[first]["lastError"] is None


@pytest.mark.slow
def test_kill_9_mid_delivery_every_event_arrives_at_least_once_in_order(
    node_factory, database_url, receivers
) -> None:
    node = webhook_node(node_factory, database_url)
    rx = receiver(receivers, secret=SECRET)
    node.create_company("clinic", webhooks=[hook(rx.url, ["message"])])
    node.connect("clinic")
    rx.release.clear()
    rx.hold_from = 2  # the third delivery is in flight, unanswered, when the node dies
    texts = [f"m{i}" for i in range(8)]
    inbound(node, "clinic", texts)
    assert rx.held.wait(20), "the third delivery never arrived"
    # Every message event is committed (its delivery with it) before the kill.
    wait_for(lambda: len(deliveries(node, "clinic").json()["deliveries"]) == 8, what="8 queued deliveries")
    held = rx.snapshot()[2]
    node.kill()
    rx.release.set()
    rx.hold_from = None

    node.start()
    wait_for(lambda: len(set(message_texts(rx.snapshot()))) == 8, timeout=30, what="all 8 messages")
    got = rx.snapshot()
    assert_in_order(got, texts)
    ids: dict[str, set[str]] = {}
    for r in got:
        ids.setdefault(r["body"]["data"]["text"], set()).add(r["eventId"])
    assert all(len(v) == 1 for v in ids.values()), ids  # a redelivery carries the same id
    assert sum(1 for r in got if r["eventId"] == held["eventId"]) >= 2  # it was sent again


def test_a_dead_endpoint_does_not_delay_a_healthy_one(node_factory, receivers) -> None:
    node = webhook_node(node_factory, WAFLEET_WEBHOOK_TIMEOUT="60000")
    stuck = receiver(receivers, secret=SECRET)
    stuck.release.clear()
    stuck.hold_from = 0  # never answers while the test runs
    healthy = receiver(receivers, secret=SECRET)
    node.create_company("slowco", webhooks=[hook(stuck.url, ["message"])])
    node.create_company("fastco", webhooks=[hook(healthy.url, ["message"])])
    for company in ("slowco", "fastco"):
        node.connect(company)
    texts = [f"t{i}" for i in range(6)]
    inbound(node, "slowco", texts)
    assert stuck.held.wait(20)
    inbound(node, "fastco", texts)
    wait_for(lambda: len(message_texts(healthy.accepted())) == 6, timeout=20, what="healthy deliveries")
    # All of the healthy endpoint's deliveries landed while the stuck one still had its first
    # request open: the stuck endpoint held nothing but its own queue.
    assert [r["answered"] for r in stuck.snapshot()] == [None]
    assert_in_order(healthy.snapshot(), texts)


def test_dead_letters_are_listed_and_redelivered_only_by_their_company(node_factory, receivers) -> None:
    node = webhook_node(node_factory, WAFLEET_WEBHOOK_RETRY_BUDGET="1500")
    rx = receiver(receivers, secret=SECRET, status=503)
    token = node.create_company("shop", webhooks=[hook(rx.url, ["message"])])
    other = node.create_company("rival")
    node.connect("shop")
    inbound(node, "shop", ["lost?"])

    failed = wait_for(
        lambda: deliveries(node, "shop", token, status="failed").json()["deliveries"],
        timeout=20,
        what="a dead letter",
    )
    assert len(failed) == 1
    dead = failed[0]
    assert (
        dead["attempts"] >= 2 and dead["lastError"].startswith("HTTP 503") and dead["responseStatus"] == 503
    )
    assert dead["payload"]["data"]["text"] == "lost?" and dead["endpoint"]["url"] == rx.url
    attempts = len(rx.snapshot())
    assert {r["eventId"] for r in rx.snapshot()} == {dead["eventId"]}

    # Tenant isolation: another company can neither list nor redeliver it.
    assert deliveries(node, "shop", other).status_code == 403
    path = f"/api/whatsapp/webhooks/shop/deliveries/{dead['id']}/redeliver"
    assert node.post(path, token=other).status_code == 403
    assert (
        node.post(f"/api/whatsapp/webhooks/rival/deliveries/{dead['id']}/redeliver", token=other).status_code
        == 404
    )
    assert deliveries(node, "rival", other).json()["deliveries"] == []
    assert deliveries(node, "shop", token, status="bogus").status_code == 400
    assert node.post("/api/whatsapp/webhooks/shop/deliveries/abc/redeliver", token=token).status_code == 400

    rx.status = 200
    r = node.post(path, token=token)
    assert r.status_code == 202, r.text
    assert r.json()["delivery"]["status"] == "pending"
    wait_for(lambda: rx.accepted(), timeout=20, what="the redelivery")
    again = rx.accepted()[0]
    assert again["eventId"] == dead["eventId"] and again["signatureOk"] and again["index"] >= attempts
    done = wait_for(
        lambda: deliveries(node, "shop", token, status="delivered").json()["deliveries"], what="delivered"
    )
    assert done[0]["id"] == dead["id"]
    assert deliveries(node, "shop", token, status="failed").json()["deliveries"] == []
    assert node.post(path, token=token).status_code == 409  # only a dead letter is redelivered


def test_the_deliveries_list_is_paged_by_cursor(node_factory, receivers) -> None:
    node = webhook_node(node_factory)
    rx = receiver(receivers, secret=SECRET)
    node.create_company("paged", webhooks=[hook(rx.url, ["message"])])
    node.connect("paged")
    inbound(node, "paged", [f"p{i}" for i in range(5)])
    wait_for(lambda: len(message_texts(rx.accepted())) == 5, timeout=20, what="5 deliveries")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = deliveries(node, "paged", **params).json()
        seen += [d["payload"]["data"]["text"] for d in page["deliveries"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in reversed(range(5))]


def test_webhooks_are_validated_and_secrets_never_shown(node_factory, tmp_path) -> None:
    node = node_factory(WAFLEET_ENCRYPTION_KEY=generate_key()).start()  # private URLs not allowed
    admin = node.admin()

    def create(hooks: Any) -> Any:
        body = {"id": "acme", "name": "Acme", "webhooks": hooks}
        return node.client.post("/admin/companies", json=body, headers=admin)

    for url in (
        "http://example.com/hook",  # not https
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/",
        "https://",
    ):
        r = create([hook(url, ["message"])])
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_webhook_url", (url, r.text)
    for bad in (
        [hook("https://93.184.215.14/h", ["nope"])],
        [hook("https://93.184.215.14/h", [])],
        [{"url": "https://93.184.215.14/h", "events": ["message"]}],  # no secret
        [hook("https://93.184.215.14/h", ["message"], secret="short")],
        [{**hook("https://93.184.215.14/h", ["message"]), "extra": 1}],
        [hook("https://93.184.215.14/h", ["message"])] * 2,
        "https://93.184.215.14/h",
        [42],
    ):
        r = create(bad)
        assert r.status_code == 400 and "error" in r.json(), (bad, r.text)
    assert node.client.get("/admin/companies/acme", headers=admin).status_code == 404  # nothing half-made

    r = create([hook("https://93.184.215.14/h", ["message", "alert"])])
    assert r.status_code == 201, r.text
    shown = r.json()["company"]
    assert shown["webhooks"] == [{"url": "https://93.184.215.14/h", "events": ["message", "alert"]}]
    assert SECRET not in r.text and SECRET not in node.client.get("/admin/companies/acme", headers=admin).text
    # A PATCH replaces the list.
    r = node.client.patch(
        "/admin/companies/acme",
        json={"webhooks": [hook("https://93.184.216.34/x", ["pairing_code"])]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["company"]["webhooks"] == [{"url": "https://93.184.216.34/x", "events": ["pairing_code"]}]
    r = node.client.patch("/admin/companies/acme", json={"webhooks": []}, headers=admin)
    assert r.status_code == 200 and r.json()["company"]["webhooks"] == []
    # The secret is stored encrypted: not in the database file, not in the log.
    node.client.patch(
        "/admin/companies/acme",
        json={"webhooks": [hook("https://93.184.216.34/x", ["message"])]},
        headers=admin,
    )
    db = sqlite3.connect(tmp_path / "data" / "wafleet.db")
    stored = db.execute("SELECT secret FROM endpoint").fetchall()
    db.close()
    assert stored and all(SECRET not in (s or "") for (s,) in stored)
    assert SECRET not in node.log()


def test_without_an_encryption_key_webhooks_are_refused(node_factory) -> None:
    node = node_factory(WAFLEET_WEBHOOK_ALLOW_PRIVATE="true").start()
    r = node.client.post(
        "/admin/companies",
        json={"id": "nokey", "name": "No key", "webhooks": [hook("http://127.0.0.1:9/h", ["message"])]},
        headers=node.admin(),
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_encryption_key"


def test_every_alert_is_posted_to_the_alert_webhook_and_to_subscribed_companies(
    node_factory, receivers
) -> None:
    alerts = receiver(receivers, secret="alert-secret-0123456789", fail_first=1)
    company_rx = receiver(receivers, secret=SECRET)
    node = webhook_node(
        node_factory,
        WHATSAPP_ALERTING_ENABLED="true",
        WHATSAPP_ALERT_WEBHOOK=alerts.url,
        WAFLEET_ALERT_WEBHOOK_SECRET="alert-secret-0123456789",
        WAFLEET_MAX_PAIRING_PER_HOUR="1",
    )
    company_token = node.create_company(
        "busy", phone="5511999990001", webhooks=[hook(company_rx.url, ["alert", "pairing_code"])]
    )
    assert (
        node.post("/api/whatsapp/sessions/busy/pairing-code", {"phoneNumber": "5511999990001"}).status_code
        == 200
    )
    node.wait_status("busy", "pairing")
    r = node.post("/api/whatsapp/sessions/busy/pairing-code", {"phoneNumber": "5511999990001"})
    assert r.status_code == 429, r.text  # the hourly limit trips: blocked, and an alert fires

    wait_for(lambda: alerts.accepted(), timeout=20, what="the alert webhook")
    got = alerts.snapshot()
    assert got[0]["answered"] == 500 and got[1]["eventId"] == got[0]["eventId"]  # retried, same id
    alert = got[1]["body"]
    assert alert["type"] == "alert" and alert["companyId"] == "busy" and got[1]["signatureOk"]
    assert alert["data"]["alert"] == "pairing_limit" and alert["data"]["state"] == "firing"
    wait_for(
        lambda: any(r["type"] == "alert" for r in company_rx.accepted()), timeout=20, what="company alert"
    )
    kinds = [r["type"] for r in company_rx.accepted()]
    assert kinds.index("pairing_code") < kinds.index("alert")
    issued = next(r["body"] for r in company_rx.accepted() if r["type"] == "pairing_code")
    assert issued["data"] == {"outcome": "issued"}  # the code itself never leaves in a webhook

    def alert_deliveries() -> list[dict[str, Any]]:
        r = node.client.get("/api/whatsapp/alert-webhook/deliveries", headers=node.admin())
        return r.json()["deliveries"]

    listed = wait_for(
        lambda: (d := alert_deliveries()) and d[0]["status"] == "delivered" and d,
        what="alert marked delivered",
    )
    assert [d["type"] for d in listed] == ["alert"] and listed[0]["attempts"] == 2
    forbidden = node.client.get(
        "/api/whatsapp/alert-webhook/deliveries", headers={"Authorization": f"Bearer {company_token}"}
    )
    assert forbidden.status_code == 403


def test_deleting_a_company_removes_its_endpoints_and_queue(node_factory, receivers, tmp_path) -> None:
    node = webhook_node(node_factory)
    rx = receiver(receivers, secret=SECRET, status=500)
    node.create_company(
        "gone", webhooks=[hook(rx.url, ["session.status"])], notificationEmail="a@example.com"
    )
    node.connect("gone")
    wait_for(lambda: rx.snapshot(), what="a first attempt")
    assert node.client.delete("/admin/companies/gone", headers=node.admin()).status_code == 200
    db = sqlite3.connect(tmp_path / "data" / "wafleet.db")
    left = (
        db.execute("SELECT count(*) FROM endpoint").fetchone()[0]
        + db.execute("SELECT count(*) FROM delivery").fetchone()[0]
    )
    db.close()
    assert left == 0


@pytest.mark.slow
def test_delivered_rows_are_pruned_after_the_keep_time(node_factory, receivers) -> None:
    node = webhook_node(node_factory, WAFLEET_WEBHOOK_KEEP="0", WAFLEET_WEBHOOK_RETRY_BUDGET="0")
    ok = receiver(receivers, secret=SECRET)
    node.create_company("tidy", webhooks=[hook(ok.url, ["message"])])
    node.connect("tidy")
    inbound(node, "tidy", ["a", "b"])
    wait_for(
        lambda: len(deliveries(node, "tidy", status="delivered").json()["deliveries"]) == 2, what="2 done"
    )
    ok.status = 500
    inbound(node, "tidy", ["c"])
    wait_for(lambda: deliveries(node, "tidy", status="failed").json()["deliveries"], what="a dead letter")
    assert node.terminate() == 0
    node.start()  # the deliverer sweeps at start, then every minute
    wait_for(lambda: not deliveries(node, "tidy", status="delivered").json()["deliveries"], what="pruned")
    (dead,) = deliveries(node, "tidy").json()["deliveries"]
    assert dead["status"] == "failed" and dead["payload"]["data"]["text"] == "c"  # dead letters stay


def test_a_patch_applies_to_the_next_attempt_a_new_secret_and_a_removed_url(node_factory, receivers) -> None:
    node = webhook_node(node_factory, WAFLEET_WEBHOOK_TIMEOUT="60000")
    rx = receiver(receivers, secret=SECRET)
    node.create_company("rot", webhooks=[hook(rx.url, ["message"])])
    node.connect("rot")

    def stage(first: int, texts: list[str]) -> threading.Event:
        """texts[0] is held until the rest are queued; texts[1] is held (in flight, the rest
        read by the sender behind it) until the returned gate opens."""
        g0, g1 = threading.Event(), threading.Event()
        rx.gates.update({first: g0, first + 1: g1})
        inbound(node, "rot", texts[:1])
        wait_for(lambda: len(rx.snapshot()) == first + 1, what=f"{texts[0]} in flight")
        inbound(node, "rot", texts[1:])
        wait_for(
            lambda: len(deliveries(node, "rot", status="pending").json()["deliveries"]) == len(texts),
            what="all queued",
        )
        g0.set()
        wait_for(lambda: len(rx.snapshot()) == first + 2, what=f"{texts[1]} in flight")
        return g1

    gate = stage(0, ["r0", "r1", "r2", "r3"])
    new_secret = "whsec_rotated_9876543210"
    patch = {"webhooks": [hook(rx.url, ["message"], secret=new_secret)]}
    assert node.client.patch("/admin/companies/rot", json=patch, headers=node.admin()).status_code == 200
    rx.secret = new_secret
    gate.set()
    wait_for(lambda: len(message_texts(rx.accepted())) == 4, timeout=20, what="4 deliveries")
    got = rx.snapshot()
    assert [r["signatureOk"] for r in got] == [True] * 4  # r0, r1 under the old secret, then the new
    assert_in_order(got, ["r0", "r1", "r2", "r3"])

    # A removed URL gets nothing more, not even what its sender had already read from the queue.
    gate = stage(4, ["x0", "x1", "x2", "x3"])
    assert (
        node.client.patch("/admin/companies/rot", json={"webhooks": []}, headers=node.admin()).status_code
        == 200
    )
    gate.set()
    later = receiver(receivers, secret=SECRET)
    patch = {"webhooks": [hook(later.url, ["message"])]}
    assert node.client.patch("/admin/companies/rot", json=patch, headers=node.admin()).status_code == 200
    inbound(node, "rot", ["marker"])
    wait_for(lambda: message_texts(later.accepted()) == ["marker"], timeout=20, what="the marker")
    assert message_texts(rx.snapshot()) == ["r0", "r1", "r2", "r3", "x0", "x1"]  # x1 was in flight


@pytest.mark.postgres
def test_two_nodes_on_one_database_send_each_delivery_once_in_order(
    node_factory, postgres, receivers, tmp_path
) -> None:
    url = postgres.create_database()
    key = generate_key()
    a = webhook_node(node_factory, url, WAFLEET_ENCRYPTION_KEY=key)
    (tmp_path / "b").mkdir()
    settings = {
        k: v for k, v in a.env.items() if k.startswith("WAFLEET_WEBHOOK") or k == "WAFLEET_ENCRYPTION_KEY"
    }
    b = Node(tmp_path / "b", url, **settings)  # its own port and folder, the same database
    try:
        b.start()
        rx = receiver(receivers, secret=SECRET)
        a.create_company("shared", webhooks=[hook(rx.url, ["message"])])
        a.connect("shared")
        texts = [f"s{i}" for i in range(30)]
        inbound(a, "shared", texts)
        wait_for(lambda: len(set(message_texts(rx.snapshot()))) == 30, timeout=30, what="30 deliveries")
        got = rx.snapshot()
        assert_in_order(got, texts)
        assert len(got) == 30, f"{len(got) - 30} duplicate deliveries"
    finally:
        b.close()


def test_every_dead_letter_can_be_redelivered_at_once_in_order(node_factory, receivers) -> None:
    node = webhook_node(node_factory, WAFLEET_WEBHOOK_RETRY_BUDGET="300")
    rx = receiver(receivers, secret=SECRET, status=503)
    token = node.create_company("outage", webhooks=[hook(rx.url, ["message"])])
    other = node.create_company("bystander")
    node.connect("outage")
    texts = ["o0", "o1", "o2"]
    inbound(node, "outage", texts)
    wait_for(
        lambda: len(deliveries(node, "outage", token, status="failed").json()["deliveries"]) == 3,
        timeout=20,
        what="3 dead letters",
    )
    path = "/api/whatsapp/webhooks/outage/deliveries/redeliver"
    assert node.post(path, token=other).status_code == 403
    rx.status = 200
    r = node.post(path, token=token)
    assert r.status_code == 202 and r.json() == {"redelivered": 3}
    wait_for(lambda: len(rx.accepted()) == 3, timeout=20, what="3 redeliveries")
    assert message_texts(rx.accepted()) == texts
    assert node.post(path, token=token).json() == {"redelivered": 0}


def test_message_statuses_from_meta_reach_the_company_once_each_in_order(node_factory, receivers) -> None:
    pnid, token, app_secret = "106540352242922", "EAAG-the-real-token-value-123", "test-app-secret"
    graph = FakeGraph({pnid: token}, app_secret=app_secret).start()
    try:
        node = webhook_node(node_factory, WAFLEET_GRAPH_URL=graph.url, WHATSAPP_WEBHOOK_SECRET=app_secret)
        rx = receiver(receivers, secret=SECRET)
        body = {
            "id": "cloudco",
            "name": "Cloud Co",
            "link": "cloud",
            "cloud": {"phoneNumberId": pnid, "accessToken": token},
            "webhooks": [hook(rx.url, ["message", "message.status"])],
        }
        assert node.client.post("/admin/companies", json=body, headers=node.admin()).status_code == 201
        node.post("/api/whatsapp/sessions/cloudco/initialize")
        node.wait_status("cloudco", "connected")
        r = node.post(
            "/api/whatsapp/send", {"companyId": "cloudco", "phone": "5511977776666", "message": "Hi"}
        )
        assert r.status_code == 202, r.text
        wamid = wait_for(
            lambda: node.client.get(f"/api/whatsapp/send/{r.json()['id']}", headers=node.admin()).json()[
                "waId"
            ],
            what="sent",
        )
        wait_for(lambda: rx.accepted(), what="the message event")  # stored: statuses now apply to it
        hook_url = f"{node.base_url}/api/whatsapp/webhook/cloud"
        # Meta's statuses come out of order: the late "delivered" would move backwards and changes
        # nothing, so it is no event; "played", processed after it, closes the sequence.
        for status in ("delivered", "read", "delivered", "played"):
            assert graph.post_webhook(hook_url, graph.status_payload(wamid, (status,))) == 200
        wait_for(lambda: len(rx.accepted()) == 4, timeout=20, what="4 deliveries")
        got = [(r["type"], r["body"]["data"].get("status")) for r in rx.accepted()]
        assert got == [
            ("message", None),
            ("message.status", "delivered"),
            ("message.status", "read"),
            ("message.status", "played"),
        ]
        first = rx.accepted()[1]["body"]["data"]
        assert first["waId"] == wamid and first["peer"] == "5511977776666"
    finally:
        graph.stop()
