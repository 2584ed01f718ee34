"""Cloud API webhooks end to end: real Meta payloads, signed and posted to a real node.

Checks (issue 4, items 4, 6, 11): every saved payload lands under the right company; batches at
every level; redeliveries stored once; statuses never move backwards; a bad or missing signature
is a 401 that stores nothing; unknown numbers are kept and reported; a kill -9 right after a burst
of acknowledged webhooks loses nothing; the messages API pages newest first, per tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Node, wait_for
from wafleet.storage import inbox, messages
from wafleet.storage.database import Database
from wafleet.storage.models import Company, Event, Message, WebhookInbox

SECRET = "test-app-secret-5f1c"
VERIFY = "test-verify-token-77"
HOOK = "/api/whatsapp/webhook/cloud"
FIXTURES = Path(__file__).parent / "fixtures" / "meta-cloud"

# Which company owns each phone_number_id found in the saved payloads.
NUMBERS = {
    "pywa": "1122334455667",
    "netflie": "PHONE_NUMBER_ID",
    "netfliefail": "102944729380254",
    "edits": "106540352242922",
    "v25": "123456123",
    "placeholder": "<BUSINESS_PHONE_NUMBER_ID>",
}


# -- helpers ------------------------------------------------------------------------------------
def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(node: Node, body: bytes, signature: str | None = "auto") -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        signature = sign(body)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return node.client.post(HOOK, content=body, headers=headers)


def dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=True).encode()  # as Meta sends it


def envelope(*entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": f"WABA{i}", "changes": list(changes)} for i, changes in enumerate(entries)],
    }


def change(
    pid: str, msgs: tuple = (), statuses: tuple = (), errors: tuple = (), contacts: tuple = ()
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": pid},
    }
    if contacts:
        value["contacts"] = list(contacts)
    if msgs:
        value["messages"] = list(msgs)
    if statuses:
        value["statuses"] = list(statuses)
    if errors:
        value["errors"] = list(errors)
    return {"field": "messages", "value": value}


def text(wamid: str, sender: str | None, body: str, ts: int = 1700000000) -> dict[str, Any]:
    msg: dict[str, Any] = {"id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": body}}
    if sender is not None:
        msg["from"] = sender
    return msg


def status(wamid: str, state: str, ts: int = 1700000100, code: int | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"id": wamid, "status": state, "timestamp": str(ts), "recipient_id": "15551230000"}
    if code is not None:
        s["errors"] = [{"code": code, "title": "Failed", "message": "Failed", "error_data": {"details": "x"}}]
    return s


class Store:
    """The node's database, opened from the test (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)

    def own_number(self, company_id: str, pid: str) -> None:
        with self.db.work():
            Company.update(cloud_phone_number_id=pid).where(Company.id == company_id).execute()

    def rows(self, company_id: str | None = None) -> list[Message]:
        with self.db.work():
            q = Message.select().order_by(Message.id)
            if company_id is not None:
                q = q.where(Message.company == company_id)
            return list(q)

    def by_wa_id(self, wa_id: str) -> list[Message]:
        with self.db.work():
            return list(Message.select().where(Message.wa_id == wa_id))

    def events(self, kind: str) -> list[Event]:
        with self.db.work():
            return list(Event.select().where(Event.kind == kind).order_by(Event.id))

    def inbox_rows(self) -> list[WebhookInbox]:
        with self.db.work():
            return list(WebhookInbox.select().order_by(WebhookInbox.id))

    def drained(self) -> bool:
        rows = self.inbox_rows()
        return bool(rows) and all(r.processed_at is not None for r in rows)

    def outbound(self, company_id: str, wa_id: str) -> None:
        messages.store_outbound(self.db, company_id, "15551230000", "hello", wa_id, "queued")

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


def start(node_factory, database_url: str, **env: str) -> Node:
    return node_factory(
        database_url, WHATSAPP_WEBHOOK_SECRET=SECRET, WHATSAPP_VERIFY_TOKEN=VERIFY, **env
    ).start()


# -- the tests ----------------------------------------------------------------------------------
def test_verify_handshake(node_factory, tmp_path: Path) -> None:
    node = start(node_factory, f"sqlite:///{tmp_path}/wafleet.db")
    ok = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    r = node.client.get(HOOK, params=ok)
    assert r.status_code == 200 and r.text == "1158201444"
    assert r.headers["content-type"].startswith("text/plain")
    for bad in ({"hub.verify_token": "nope"}, {"hub.mode": "unsubscribe"}, {"hub.verify_token": ""}):
        assert node.client.get(HOOK, params={**ok, **bad}).status_code == 403
    assert node.client.get(HOOK).status_code == 403


def _fixture_ids(payload: dict[str, Any]) -> list[str]:
    ids = []
    for entry in payload["entry"]:
        for ch in entry["changes"]:
            for item in ch["value"].get("messages", []) + ch["value"].get("statuses", []):
                ids.append(item["id"])
    return ids


def test_every_saved_payload_lands(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    for company_id, pid in NUMBERS.items():
        node.create_company(company_id)
        store.own_number(company_id, pid)
    owner = {pid: cid for cid, pid in NUMBERS.items()}
    expected_messages: dict[str, tuple[str, str, str]] = {}  # wa_id -> (company, type, peer)
    expected_status: dict[str, tuple[str, int | None]] = {}  # wa_id -> (status, error code)
    expected_errors: list[tuple[str, str]] = []
    files = sorted(FIXTURES.glob("*.json"))
    assert len(files) == 42
    for path in files:
        raw = path.read_bytes()
        payload = json.loads(raw)
        # The saved payloads reuse ids ("wamid.xyzxyz") across files: give each file its own, by
        # replacing the id strings in the raw bytes (everything else is sent byte for byte).
        for old in set(_fixture_ids(payload)):
            raw = raw.replace(json.dumps(old).encode(), json.dumps(f"{path.stem}:{old}").encode())
        payload = json.loads(raw)
        for entry in payload["entry"]:
            for ch in entry["changes"]:
                value = ch["value"]
                company_id = owner[value["metadata"]["phone_number_id"]]
                for msg in value.get("messages", []):
                    expected_messages[msg["id"]] = (company_id, msg["type"], msg["from"])
                for st in value.get("statuses", []):
                    store.outbound(company_id, st["id"])
                    code = st["errors"][0]["code"] if st.get("errors") else None
                    expected_status[st["id"]] = (st["status"], code)
                for err in value.get("errors", []):
                    expected_errors.append((company_id, str(err["code"])))
        r = post(node, raw)
        assert r.status_code == 200, (path.name, r.text)
    wait_for(store.drained, 20, what="every payload processed")
    assert all(row.error is None and row.unrouted is None for row in store.inbox_rows())
    for wa_id, (company_id, kind, peer) in expected_messages.items():
        rows = store.by_wa_id(wa_id)
        assert len(rows) == 1, wa_id
        row = rows[0]
        assert (row.company, row.direction, row.type, row.peer) == (company_id, "in", kind, peer), wa_id
    # netflie's batch has two changes carrying the same id: stored once
    assert len(expected_messages) == 31
    assert sum(1 for r in store.rows() if r.direction == "in") == 31
    for wa_id, (state, code) in expected_status.items():
        (row,) = store.by_wa_id(wa_id)
        assert row.status == state, wa_id
        if code is not None:
            assert json.loads(row.error)["code"] == code
    assert [(e.company, e.reason) for e in store.events("cloud_error")] == expected_errors
    # what the types carry
    by_stem = {r.wa_id.split(":")[0]: r for r in store.rows()}
    assert by_stem["pywa__message__text"].text == "Body Text"
    assert by_stem["pywa__message__reaction"].text == "\U0001f62e"
    assert json.loads(by_stem["pywa__message__image"].media)["image"]["mime_type"] == "image/jpeg"
    assert json.loads(by_stem["netflie__location"].media)["location"]["latitude"]
    assert by_stem["pywa__callback_selection__callback"].text == "title"
    assert json.loads(by_stem["pywa__message__unsupported"].media)["errors"][0]["code"] == 131051
    assert json.loads(by_stem["whatsapp-api-js__v25__incoming"].media)["fromUserId"].startswith("US.")


def test_batches_redeliveries_and_out_of_order_statuses(
    node_factory, database_url: str, store: Store
) -> None:
    node = start(node_factory, database_url)
    for cid, pid in (("acme", "1001"), ("bolt", "2002")):
        node.create_company(cid)
        store.own_number(cid, pid)
    for wa_id in ("out.x", "out.y", "out.z"):
        store.outbound("acme", wa_id)
    store.outbound("bolt", "out.w")
    # two entries, several changes each, several messages and statuses in each change
    batch = envelope(
        [
            change(
                "1001",
                msgs=(text("in.1", "111", "one"), text("in.2", "111", "two")),
                statuses=(status("out.x", "read", 3), status("out.y", "failed", 1, code=131047)),
            ),
            change("2002", msgs=(text("in.3", "222", "three"),), statuses=(status("out.w", "delivered"),)),
        ],
        [
            change(
                "1001",
                # a newer payload: no "from", only the business-scoped user id
                msgs=({**text("in.4", None, "four"), "from_user_id": "US.42"},),
                contacts=({"profile": {"name": "U"}, "user_id": "US.42"},),
                statuses=(status("out.x", "delivered", 2), status("out.z", "delivered", 1)),
                errors=({"code": 130429, "title": "Rate limit hit", "message": "Rate limit hit"},),
            ),
            change("2002", msgs=(text("in.5", "222", "five"), text("in.6", "223", "six"))),
        ],
    )
    body = dump(batch)
    assert post(node, body).status_code == 200
    assert post(node, body).status_code == 200  # Meta redelivers the same body
    # ... and re-batches: the same events, grouped differently, plus older statuses arriving late
    rebatch = envelope(
        [
            change("2002", msgs=(text("in.6", "223", "six"),)),
            change("1001", msgs=(text("in.1", "111", "one"),)),
        ],
        [
            change(
                "1001",
                statuses=(
                    status("out.x", "sent", 1),
                    status("out.y", "delivered", 2),
                    status("out.z", "played", 3),
                    status("out.z", "read", 2),
                ),
            )
        ],
    )
    assert post(node, dump(rebatch)).status_code == 200
    wait_for(lambda: store.drained() and len(store.inbox_rows()) == 3, 20, what="3 payloads processed")
    acme = {r.wa_id: r for r in store.rows("acme")}
    bolt = {r.wa_id: r for r in store.rows("bolt")}
    assert sorted(k for k, r in acme.items() if r.direction == "in") == ["in.1", "in.2", "in.4"]
    assert sorted(k for k, r in bolt.items() if r.direction == "in") == ["in.3", "in.5", "in.6"]
    assert acme["in.4"].peer == "US.42" and acme["in.4"].text == "four"
    assert acme["in.1"].at == 1700000000 * 1000
    assert acme["out.x"].status == "read"  # read, then delivered and sent late: stays read
    assert acme["out.y"].status == "failed"  # failed is final; its error is Meta's
    assert json.loads(acme["out.y"].error)["code"] == 131047
    assert acme["out.z"].status == "played"
    assert bolt["out.w"].status == "delivered"
    # the value-level error is recorded for the company, once per delivery of the payload
    assert [(e.company, e.reason) for e in store.events("cloud_error")] == [("acme", "130429")] * 2


def test_bad_signature_is_401_and_stores_nothing(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    node.create_company("acme")
    store.own_number("acme", "1001")
    body = dump(envelope([change("1001", msgs=(text("in.bad", "111", "x"),))]))
    cases = {
        "missing": None,
        "other secret": sign(body, "not-the-secret"),
        "other body": sign(body + b" "),
        "no prefix": sign(body).removeprefix("sha256="),
        "sha1": "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest(),
        "empty": "",
        "garbage": "sha256=\u00e9\u00e9",
    }
    for name, sig in cases.items():
        r = (
            post(node, body, sig)
            if name != "garbage"
            else node.client.post(
                HOOK,
                content=body,
                headers={"X-Hub-Signature-256": sig.encode("utf-8")},  # type: ignore[dict-item]
            )
        )
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_signature"
    # too big (past WAFLEET_WEBHOOK_MAX_BODY, 4 MiB by default): refused before reading it all
    big = b'{"x":"' + b"a" * (4 * 1024 * 1024) + b'"}'
    assert post(node, big).status_code == 413
    assert store.inbox_rows() == [] and store.rows() == []
    # the same body, rightly signed, goes in (the node was fine all along)
    assert post(node, body).status_code == 200
    wait_for(lambda: store.by_wa_id("in.bad"), what="the signed message stored")


def test_unknown_number_is_kept_and_reported(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    node.create_company("acme")
    store.own_number("acme", "1001")
    body = dump(
        envelope(
            [
                change("9999", msgs=(text("lost.1", "111", "hello?"),)),
                change("1001", msgs=(text("ok.1", "1", "hi"),)),
            ]
        )
    )
    assert post(node, body).status_code == 200
    wait_for(store.drained, what="payload processed")
    (row,) = store.inbox_rows()
    assert json.loads(row.unrouted) == ["9999"]
    assert json.loads(row.body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"] == "lost.1"
    (event,) = store.events("unrouted")
    assert event.company is None and json.loads(event.data)["phoneNumberIds"] == ["9999"]
    assert store.by_wa_id("lost.1") == [] and len(store.by_wa_id("ok.1")) == 1
    wait_for(lambda: "9999" in node.log(), what="a warning in the log")
    assert inbox.unrouted(store.db) == [(row.id, ["9999"])]
    # once a company owns the number, the kept payload can be processed again
    node.create_company("late")
    store.own_number("late", "9999")
    assert inbox.requeue_unrouted(store.db, "9999") == 1
    node.terminate()
    start(node_factory, database_url)  # the processor drains on start
    wait_for(lambda: store.by_wa_id("lost.1"), what="the kept payload routed")
    assert store.by_wa_id("lost.1")[0].company == "late" and len(store.by_wa_id("ok.1")) == 1


def test_kill_9_after_acknowledged_burst_loses_nothing(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    node.create_company("acme")
    store.own_number("acme", "1001")
    bodies = [
        dump(
            envelope(
                [change("1001", msgs=(text(f"burst.{i}.a", "111", "a"), text(f"burst.{i}.b", "111", "b")))]
            )
        )
        for i in range(150)
    ]
    acked: list[int] = []

    def send(i: int) -> None:
        with httpx.Client(base_url=node.base_url, timeout=15) as client:
            r = client.post(HOOK, content=bodies[i], headers={"X-Hub-Signature-256": sign(bodies[i])})
            if r.status_code == 200:
                acked.append(i)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, range(len(bodies))))
    node.kill()  # right after the last 200: processing may well be behind
    assert len(acked) == len(bodies)
    pending = sum(1 for r in store.inbox_rows() if r.processed_at is None)
    start(node_factory, database_url)
    want = {f"burst.{i}.{x}" for i in acked for x in "ab"}
    wait_for(lambda: want <= {r.wa_id for r in store.rows("acme")}, 30, what="every acknowledged message")
    assert len(store.rows("acme")) == len(want)
    wait_for(store.drained, what="inbox drained")
    print(f"{pending} of {len(bodies)} acknowledged payloads were unprocessed at the kill")


def test_messages_api_pages_newest_first_per_tenant(node_factory, database_url: str, store: Store) -> None:
    node = start(node_factory, database_url)
    tokens = {cid: node.create_company(cid) for cid in ("acme", "bolt")}
    store.own_number("acme", "1001")
    store.own_number("bolt", "2002")
    for i in range(7):
        assert (
            post(
                node, dump(envelope([change("1001", msgs=(text(f"a.{i}", "111", f"m{i}", 1700000000 + i),))]))
            ).status_code
            == 200
        )
    assert (
        post(node, dump(envelope([change("2002", msgs=(text("b.0", "222", "theirs"),))]))).status_code == 200
    )
    wait_for(lambda: len(store.rows()) == 8, what="8 messages")
    own = {"Authorization": f"Bearer {tokens['acme']}"}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = node.client.get("/api/whatsapp/messages/acme", params=params, headers=own)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [m["text"] for m in body["messages"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"m{i}" for i in reversed(range(7))]
    first = node.client.get("/api/whatsapp/messages/acme", headers=node.admin()).json()["messages"][0]
    assert first["waId"] == "a.6" and first["direction"] == "in" and first["peer"] == "111"
    # tenant isolation
    r = node.client.get("/api/whatsapp/messages/bolt", headers=own)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert node.client.get("/api/whatsapp/messages/acme").status_code == 401
    theirs = node.client.get(
        "/api/whatsapp/messages/bolt", headers={"Authorization": f"Bearer {tokens['bolt']}"}
    )
    assert [m["text"] for m in theirs.json()["messages"]] == ["theirs"]
    for bad in ({"limit": "0"}, {"limit": "x"}, {"limit": "1000"}, {"cursor": "-1"}):
        r = node.client.get("/api/whatsapp/messages/acme", params=bad, headers=own)
        assert r.status_code == 400, bad
