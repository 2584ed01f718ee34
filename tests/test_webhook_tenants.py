"""Webhooks bound to tenants, big batches, late statuses, kept payloads (issue 8, items 1, 4, 8-10).

A company with its own Meta app signs only its own traffic, on its own URL; the global URL is the
platform's app and routes only to companies without one. Every test drives a real node over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_graph import FakeGraph
from tests.harness import Node, wait_for
from tests.test_statsd import StatsdDaemon
from tests.test_webhook import (
    HOOK,
    SECRET,
    VERIFY,
    Store,
    change,
    dump,
    envelope,
    sign,
    status,
    text,
)
from wafleet.storage import inbox
from wafleet.storage.crypto import generate_key
from wafleet.storage.models import Message

OWN_SECRET = "evil-own-app-secret-1"
OWN_VERIFY = "evil-own-verify-1"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


@pytest.fixture
def statsd(tmp_path: Path) -> Iterator[StatsdDaemon]:
    daemon = StatsdDaemon(tmp_path)
    yield daemon
    daemon.stop()


def start(node_factory, database_url: str, **env: str) -> Node:
    return node_factory(
        database_url,
        WHATSAPP_WEBHOOK_SECRET=SECRET,
        WHATSAPP_VERIFY_TOKEN=VERIFY,
        WAFLEET_ENCRYPTION_KEY=generate_key(),
        WHATSAPP_LOG_LEVEL="info",
        **env,
    ).start()


def company(node: Node, company_id: str, number: str | None = None, **cloud: str) -> str:
    """A sandbox company; ``number`` is its Cloud phone_number_id, ``cloud`` its own Meta app."""
    body: dict[str, Any] = {"id": company_id, "name": company_id, "link": "sandbox"}
    if number or cloud:
        body["cloud"] = {**({"phoneNumberId": number} if number else {}), **cloud}
    r = node.client.post("/admin/companies", json=body, headers=node.admin())
    assert r.status_code == 201, r.text
    return r.json()["token"]


def post(node: Node, body: bytes, secret: str = SECRET, path: str = HOOK) -> httpx.Response:
    return node.client.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)},
    )


def listed(node: Node, kind: str = "unrouted", **params: Any) -> dict[str, Any]:
    r = node.client.get(f"/api/whatsapp/webhook/{kind}", params=params, headers=node.admin())
    assert r.status_code == 200, r.text
    return r.json()


def all_processed(store: Store, count: int) -> bool:
    rows = store.inbox_rows()
    return len(rows) == count and all(r.processed_at is not None for r in rows)


# -- item 1: a company's app secret signs only that company's traffic ---------------------------
def test_a_companys_own_secret_signs_only_its_own_traffic(
    node_factory, database_url: str, store: Store, statsd: StatsdDaemon
) -> None:
    node = start(node_factory, database_url, STATSD_HOST="127.0.0.1", STATSD_PORT=str(statsd.port))
    company(node, "victim", "1001")  # the platform's app: global URL
    company(node, "evil", "2002", appSecret=OWN_SECRET, verifyToken=OWN_VERIFY)
    store.outbound("victim", "out.victim.1")
    own_hook = f"{HOOK}/evil"

    # the global URL no longer takes a company's secret, whatever number the body names
    forged = dump(
        envelope(
            [
                change(
                    "1001",
                    msgs=(text("inj.1", "111", "pay here"),),
                    statuses=(status("out.victim.1", "failed", code=131026),),
                )
            ]
        )
    )
    r = post(node, forged, OWN_SECRET)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature"
    assert store.inbox_rows() == []

    # on its own URL the company's secret is accepted, but another company's number is not applied
    r = post(node, forged, OWN_SECRET, own_hook)
    assert r.status_code == 200, r.text
    # ... nor may it claim a number nobody owns yet, nor touch a status by WhatsApp id alone
    seed = dump(envelope([change("3003", msgs=(text("seed.1", "111", "planted"),))]))
    assert post(node, seed, OWN_SECRET, own_hook).status_code == 200
    by_id = dump(envelope([change("2002", statuses=(status("out.victim.1", "failed", code=131026),))]))
    assert post(node, by_id, OWN_SECRET, own_hook).status_code == 200
    # its own traffic on its own URL lands
    mine = dump(envelope([change("2002", msgs=(text("evil.own.1", "222", "hello"),))]))
    assert post(node, mine, OWN_SECRET, own_hook).status_code == 200
    # the platform's secret cannot sign for the company's own URL
    assert post(node, mine, SECRET, own_hook).status_code == 401
    # ... and a platform-signed body naming the company's number is not applied to it either
    platform = dump(envelope([change("2002", msgs=(text("plat.1", "333", "not yours"),))]))
    assert post(node, platform, SECRET).status_code == 200

    wait_for(lambda: all_processed(store, 5), 20, what="5 payloads processed")
    assert len(store.by_wa_id("evil.own.1")) == 1 and store.by_wa_id("evil.own.1")[0].company == "evil"
    assert store.by_wa_id("inj.1") == [] and store.by_wa_id("plat.1") == [] and store.by_wa_id("seed.1") == []
    (victims,) = store.by_wa_id("out.victim.1")
    assert victims.status == "queued" and victims.error is None
    # the refused changes are kept for the admin, not as unrouted payloads a claim would replay
    assert listed(node)["payloads"] == []
    rejected = listed(node, "rejected")["payloads"]
    assert sorted(p["phoneNumberIds"] for p in rejected) == [["1001"], ["2002"], ["3003"]]
    assert {p["source"] for p in rejected} == {"evil", None}
    # a company that claims the number later does not get what another tenant planted: its next
    # payload lands, and the planted one (older, so processed first if it had been requeued) does not
    wait_for(
        lambda: sum(f["counters"].get("wafleet.webhook.rejected", 0) for f in statsd.flushes()) == 3,
        what="3 rejected payloads counted",
    )
    company(node, "newco", "3003")
    later = dump(envelope([change("3003", msgs=(text("newco.1", "444", "real"),))]))
    assert post(node, later).status_code == 200
    wait_for(lambda: store.by_wa_id("newco.1"), what="newco's own payload")
    assert store.by_wa_id("seed.1") == []


def test_each_url_has_its_own_verify_token(node_factory, database_url: str) -> None:
    node = start(node_factory, database_url)
    company(node, "evil", "2002", appSecret=OWN_SECRET, verifyToken=OWN_VERIFY)
    company(node, "plain", "1001")

    def verify(path: str, token: str) -> int:
        params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "77"}
        return node.client.get(path, params=params).status_code

    assert verify(f"{HOOK}/evil", OWN_VERIFY) == 200
    assert verify(f"{HOOK}/evil", VERIFY) == 403
    assert verify(HOOK, OWN_VERIFY) == 403
    assert verify(HOOK, VERIFY) == 200
    # a company without its own app, or no company at all: the same refusal as a bad signature
    for path in (f"{HOOK}/plain", f"{HOOK}/nobody"):
        assert verify(path, VERIFY) == 403
        body = dump(envelope([change("1001", msgs=(text("x.1", "1", "x"),))]))
        r = post(node, body, SECRET, path)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature"


def test_payload_text_never_reaches_the_log_raw(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    company(node, "evil", "2002", appSecret=OWN_SECRET, verifyToken=OWN_VERIFY)
    sneaky = "9\n2026-01-01 00:00:00 CRITICAL forged line\x1b[2J"
    for i, (secret, path) in enumerate(((SECRET, HOOK), (OWN_SECRET, f"{HOOK}/evil"))):
        body = dump(envelope([change(sneaky, msgs=(text(f"s.{i}", "1", "x"),))]))
        assert post(node, body, secret, path).status_code == 200
        wait_for(lambda i=i: all_processed(store, i + 1), what="processed")
        wait_for(lambda i=i: node.log().count("forged line") >= i + 1, what="logged")
        for line in node.log().splitlines():
            assert not line.startswith("2026-01-01"), line
        assert "\x1b" not in node.log()


# -- item 4 (inbox part): deleting a company erases its raw payloads --------------------------------
def test_deleting_a_company_erases_its_raw_payloads(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    company(node, "gone", "1001")
    company(node, "owngone", "2002", appSecret=OWN_SECRET)
    company(node, "stays", "3003")
    payloads = [
        (dump(envelope([change("1001", msgs=(text("wamid.gone.1", "1", "secret one"),))])), SECRET, HOOK),
        (
            dump(envelope([change("2002", msgs=(text("wamid.own.1", "1", "secret two"),))])),
            OWN_SECRET,
            f"{HOOK}/owngone",
        ),
        (dump(envelope([change("3003", msgs=(text("wamid.stays.1", "1", "kept"),))])), SECRET, HOOK),
    ]
    for body, secret, path in payloads:
        assert post(node, body, secret, path).status_code == 200
    wait_for(lambda: all_processed(store, 3), what="3 processed")
    for cid in ("gone", "owngone"):
        r = node.client.delete(f"/admin/companies/{cid}", headers=node.admin())
        assert r.status_code == 200, r.text
    bodies = " ".join(r.body for r in store.inbox_rows())
    assert "wamid.gone.1" not in bodies and "wamid.own.1" not in bodies
    assert "wamid.stays.1" in bodies
    # the node may still know the deleted company's secret for a few seconds: what it accepts
    # on that URL then is erased too, not kept under a company that no longer exists
    late = dump(envelope([change("2002", msgs=(text("wamid.own.late", "1", "too late"),))]))
    r = post(node, late, OWN_SECRET, f"{HOOK}/owngone")
    assert r.status_code in (200, 401)
    if r.status_code == 200:
        wait_for(lambda: "wamid.own.late" not in " ".join(r.body for r in store.inbox_rows()), what="erased")


# -- item 8: Meta's payloads can be up to 3 MB -------------------------------------------------
def test_a_signed_3_mb_batch_is_accepted(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    company(node, "big", "1001")
    msgs = tuple(text(f"big.{i}", "15551230000", "x" * 3000) for i in range(1000))
    body = dump(envelope([change("1001", msgs=msgs)]))
    assert len(body) > 3_000_000
    assert post(node, body).status_code == 200
    wait_for(lambda: len(store.rows("big")) == 1000, 30, what="1000 messages stored")
    too_big = b'{"x":"' + b"a" * (5 * 1024 * 1024) + b'"}'
    r = post(node, too_big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


# -- item 9: statuses -----------------------------------------------------------------------------
def test_a_late_failed_never_overwrites_delivered_read_or_played(
    node_factory, database_url: str, store: Store
) -> None:
    node = start(node_factory, database_url)
    company(node, "acme", "1001")
    for state in ("delivered", "read", "played", "sent"):
        store.outbound("acme", f"out.{state}")
        assert (
            post(
                node, dump(envelope([change("1001", statuses=(status(f"out.{state}", state),))]))
            ).status_code
            == 200
        )
    wait_for(lambda: all_processed(store, 4), what="4 processed")
    late = tuple(status(f"out.{s}", "failed", code=131026) for s in ("delivered", "read", "played", "sent"))
    assert post(node, dump(envelope([change("1001", statuses=late)]))).status_code == 200
    wait_for(lambda: all_processed(store, 5), what="5 processed")
    got = {r.wa_id: (r.status, r.error) for r in store.rows("acme")}
    assert got["out.delivered"] == ("delivered", None)
    assert got["out.read"] == ("read", None)
    assert got["out.played"] == ("played", None)
    assert got["out.sent"][0] == "failed" and json.loads(got["out.sent"][1])["code"] == 131026


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph({"106540352242922": "tok-1"}, app_secret=SECRET).start()
    yield fake
    fake.stop()


def test_a_status_that_arrives_before_its_row_is_applied_when_the_row_appears(
    node_factory, database_url: str, store: Store, graph: FakeGraph
) -> None:
    node = start(node_factory, database_url, WAFLEET_GRAPH_URL=graph.url)
    r = node.client.post(
        "/admin/companies",
        json={
            "id": "fast",
            "name": "Fast",
            "link": "cloud",
            "cloud": {"phoneNumberId": "106540352242922", "accessToken": "tok-1"},
        },
        headers=node.admin(),
    )
    assert r.status_code == 201, r.text

    def statuses_first(wamid: str) -> None:
        # Meta's webhooks overtake the send's answer: processed before the node stores the row
        before = len(store.inbox_rows())
        assert (
            graph.post_webhook(
                f"{node.base_url}{HOOK}", graph.status_payload(wamid, ("sent", "delivered", "read"))
            )
            == 200
        )
        wait_for(lambda: all_processed(store, before + 1), what="the early statuses processed")

    graph.before_reply = statuses_first
    assert node.post("/api/whatsapp/sessions/fast/initialize").status_code == 202
    node.wait_status("fast", "connected")
    r = node.post("/api/whatsapp/send", {"companyId": "fast", "phone": "5511977776666", "message": "hi"})
    assert r.status_code == 202, r.text
    wamid = wait_for(lambda: graph.sent and graph.sent[0]["id"], what="the message sent")
    wait_for(lambda: store.by_wa_id(wamid), what="the row stored")
    wait_for(lambda: store.by_wa_id(wamid)[0].status == "read", what="the early read applied")


# -- item 10: kept payloads --------------------------------------------------------------------------
def test_unrouted_list_is_paged_with_a_cursor(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    for i in range(5):
        body = dump(envelope([change(f"90{i}", msgs=(text(f"u.{i}", "1", "x"),))]))
        assert post(node, body).status_code == 200
    wait_for(lambda: all_processed(store, 5), what="5 processed")
    seen: list[list[str]] = []
    cursor = None
    for _ in range(4):
        page = listed(node, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["payloads"]) <= 2
        seen += [p["phoneNumberIds"] for p in page["payloads"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [[f"90{i}"] for i in reversed(range(5))]
    for bad in ({"limit": "0"}, {"limit": "abc"}, {"cursor": "x"}, {"cursor": "-3"}):
        r = node.client.get("/api/whatsapp/webhook/unrouted", params=bad, headers=node.admin())
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query", bad


@pytest.mark.slow
def test_claiming_a_number_requeues_its_payloads_however_old(
    node_factory, database_url: str, store: Store
) -> None:
    node = start(node_factory, database_url)
    old = dump(envelope([change("7777", msgs=(text("ancient.1", "1", "from long ago"),))]))
    assert post(node, old).status_code == 200
    wait_for(lambda: all_processed(store, 1), what="the old payload kept")
    # 10,000 newer kept payloads for another number, as earlier processing left them (written
    # 500 to a transaction: the node shares the database and must not wait long for it)
    for _ in range(20):
        with store.db.work(), store.db.atomic():
            for _ in range(500):
                row_id = inbox.append(store.db, '{"entry": []}', 0)
                inbox.mark(store.db, row_id, 1, None, ["8888"])
    company(node, "claimer", "7777")
    wait_for(lambda: store.by_wa_id("ancient.1"), 20, what="the old payload routed")
    assert store.by_wa_id("ancient.1")[0].company == "claimer"


def test_processing_a_payload_twice_never_writes_its_events_twice(
    node_factory, database_url: str, store: Store
) -> None:
    node = start(node_factory, database_url)
    company(node, "acme", "1001")
    body = dump(
        envelope(
            [
                change(
                    "1001",
                    msgs=(text("twice.a", "1", "a"),),
                    errors=({"code": 130429, "title": "Rate limit hit"},),
                ),
                change(
                    "5555", msgs=(text("twice.b", "1", "b"),), errors=({"code": 131000, "title": "Oops"},)
                ),
            ]
        )
    )
    assert post(node, body).status_code == 200
    wait_for(lambda: all_processed(store, 1), what="processed once")
    company(node, "late", "5555")  # requeues the payload: processed a second time
    wait_for(lambda: store.by_wa_id("twice.b"), what="the kept change applied")
    wait_for(lambda: all_processed(store, 1), what="processed twice")
    # each change's events are written once, when the change is applied
    errors = [(e.company, e.reason) for e in store.events("cloud_error")]
    assert errors == [("acme", "130429"), ("late", "131000")]
    assert len(store.events("unrouted")) == 1
    with store.db.work():
        assert Message.select().where(Message.wa_id.in_(["twice.a", "twice.b"])).count() == 2
    message_events = [
        e for e in store.events("message") if json.loads(e.data).get("waId") in ("twice.a", "twice.b")
    ]
    assert len(message_events) == 2


# -- the processor leaves nothing behind --------------------------------------------------------------
def test_the_inbox_processor_leaves_no_greenlet_behind_when_it_crashes(tmp_path: Path) -> None:
    import gc

    import gevent
    from gevent import Greenlet

    from wafleet.actors.webhook import InboxProcessor, Wake
    from wafleet.storage.database import Database
    from wafleet.storage.schema import migrate

    def alive() -> set[Greenlet]:
        return {g for g in gc.get_objects() if isinstance(g, Greenlet) and not g.dead}

    db = Database(f"sqlite:///{tmp_path}/p.db")
    migrate(db)
    before = alive()
    exits: list[Any] = []
    ref = InboxProcessor.start(db, on_exit=exits.append)
    gevent.sleep(0.05)
    assert len(alive() - before) >= 1  # its actor loop and its sweeper run
    db.db.execute_sql("DROP TABLE webhook_inbox")  # the next drain fails: the actor crashes
    ref.tell(Wake())
    deadline = gevent.get_hub().loop.now() + 2.0
    while not exits and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.01)
    assert exits and exits[0].reason == "crash"
    gevent.sleep(0.05)
    left = alive() - before
    assert not left, f"left behind after the crash: {left}"
    db.close()


def test_a_poison_payload_is_marked_alone_and_its_batch_still_lands(tmp_path: Path, monkeypatch) -> None:
    """Rows are applied many to a transaction; one that fails (a bug, not the database) rolls its
    batch back, and the batch is redone row by row: the others land, the poison one is marked."""
    import gevent

    from wafleet.actors import webhook
    from wafleet.storage import companies, messages
    from wafleet.storage.database import Database
    from wafleet.storage.models import Company, WebhookInbox
    from wafleet.storage.schema import migrate

    db = Database(f"sqlite:///{tmp_path}/p.db")
    migrate(db)
    companies.create(db, id="acme", name="Acme", phone=None, link="sandbox", token_hash="h" * 64)
    with db.work():
        Company.update(cloud_phone_number_id="1001").where(Company.id == "acme").execute()
    store_inbound = messages.store_inbound

    def explode_on_poison(db_: Any, company_id: str, peer: str, *args: Any) -> Any:
        if args[-2] == "poison":
            raise RuntimeError("a bug met a strange payload")
        return store_inbound(db_, company_id, peer, *args)

    monkeypatch.setattr(messages, "store_inbound", explode_on_poison)
    for wamid in ("ok.1", "poison", "ok.2"):
        inbox.append(db, dump(envelope([change("1001", msgs=(text(wamid, "1", "x"),))])).decode(), 1)
    ref = webhook.InboxProcessor.start(db)
    deadline = gevent.get_hub().loop.now() + 5.0
    while gevent.get_hub().loop.now() < deadline and inbox.pending_count(db):
        gevent.sleep(0.01)
    ref.stop()
    with db.work():
        rows = list(WebhookInbox.select().order_by(WebhookInbox.id))
        stored = sorted(m.wa_id for m in Message.select())
    assert stored == ["ok.1", "ok.2"]
    assert [r.processed_at is not None for r in rows] == [True, True, True]
    assert [bool(r.error) for r in rows] == [False, True, False] and "strange payload" in rows[1].error
    db.close()


@pytest.mark.slow
def test_sustained_traffic_does_not_grow_the_inbox_without_bound(tmp_path: Path, node_factory) -> None:
    """Processing steps aside for acknowledgements only while the backlog is short: with the
    smallest share (1 %) and a backlog bound of 100, a long stream of payloads is still processed
    while it lasts."""
    import threading
    import time

    url = f"sqlite:///{tmp_path}/wafleet.db"
    node = start(node_factory, url, WAFLEET_WEBHOOK_BUSY_SHARE="1", WAFLEET_WEBHOOK_BURST_BACKLOG="100")
    store = Store(url)
    company(node, "acme", "1001")
    bodies = [dump(envelope([change("1001", msgs=(text(f"flow.{i}", "1", "x"),))])) for i in range(1200)]
    peak = [0]
    sending = threading.Event()
    sending.set()

    def watch() -> None:
        while sending.is_set():
            peak[0] = max(peak[0], inbox.pending_count(store.db))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()

    def send(chunk: list[bytes]) -> None:
        with httpx.Client(base_url=node.base_url, timeout=15) as client:
            for body in chunk:
                r = client.post(HOOK, content=body, headers={"X-Hub-Signature-256": sign(body)})
                assert r.status_code == 200

    senders = [threading.Thread(target=send, args=(bodies[i::8],)) for i in range(8)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    sending.clear()
    watcher.join()
    wait_for(lambda: len(store.rows("acme")) == 1200, 60, what="every payload processed")
    store.close()
    print(f"peak backlog: {peak[0]} payloads")
    assert peak[0] < 600, f"{peak[0]} payloads waited at the peak"
