"""WhatsApp message ids are only meaningful per number: two companies may be handed the same id
(the sandbox and the web link make them up; a webhook carries whatever its sender chose). Each
company keeps its own message, in its own history only; a redelivery to one company still lands
on the row it already has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fake_graph import FakeGraph
from tests.harness import Node, wait_for
from wafleet.storage import messages
from wafleet.storage.crypto import generate_key
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate

SECRET = "test-app-secret"
NUMBERS = {"salon-a": ("106540352242922", "token-a"), "salon-b": ("200000000000001", "token-b")}
WAMID = "wamid.HBgNNTUxMTk3Nzc3NjY2NhUCABIYFjNFQjBDMjE2RjcwQ0YwQzA3RTNCNDYA"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph(dict(NUMBERS.values()), app_secret=SECRET).start()
    yield fake
    fake.stop()


def inbound(pnid: str, customer: str, text: str, wamid: str = WAMID) -> dict[str, Any]:
    message = {
        "from": customer,
        "id": wamid,
        "timestamp": "1795550000",
        "type": "text",
        "text": {"body": text},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": customer}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def history(node: Node, company: str) -> list[tuple[str, str]]:
    r = node.client.get(f"/api/whatsapp/messages/{company}", headers=node.admin())
    assert r.status_code == 200, r.text
    return [(m["waId"], m["text"]) for m in r.json()["messages"]]


def test_two_companies_receive_a_message_with_the_same_whatsapp_id(
    node_factory, graph: FakeGraph, database_url: str
) -> None:
    node: Node = node_factory(
        database_url,
        WAFLEET_ENCRYPTION_KEY=generate_key(),
        WAFLEET_GRAPH_URL=graph.url,
        WHATSAPP_WEBHOOK_SECRET=SECRET,
    ).start()
    for company, (pnid, token) in NUMBERS.items():
        node.create_company(company, link="cloud", cloud={"phoneNumberId": pnid, "accessToken": token})
    hook = f"{node.base_url}/api/whatsapp/webhook/cloud"
    assert graph.post_webhook(hook, inbound(NUMBERS["salon-a"][0], "5511977776666", "Olá, salão A")) == 200
    wait_for(lambda: history(node, "salon-a"), what="salon-a's message")
    assert graph.post_webhook(hook, inbound(NUMBERS["salon-b"][0], "5511955554444", "Oi, salão B")) == 200
    assert wait_for(lambda: history(node, "salon-b"), what="salon-b's message") == [(WAMID, "Oi, salão B")]
    # Meta redelivers: the same message lands on the row salon-a already has (the inbox is
    # processed in order: once the next message is in, the redelivery has been handled)
    assert graph.post_webhook(hook, inbound(NUMBERS["salon-a"][0], "5511977776666", "Olá, salão A")) == 200
    later = inbound(NUMBERS["salon-a"][0], "5511977776666", "ainda aí?", wamid="wamid.next")
    assert graph.post_webhook(hook, later) == 200
    wait_for(lambda: len(history(node, "salon-a")) > 1, what="salon-a's next message")
    assert history(node, "salon-a") == [("wamid.next", "ainda aí?"), (WAMID, "Olá, salão A")]
    assert history(node, "salon-b") == [(WAMID, "Oi, salão B")]


def test_the_same_whatsapp_id_is_stored_once_per_company(database_url: str) -> None:
    """Storage level, both databases: per (company, wa_id), found by company."""
    db = Database(database_url)
    migrate(db)
    try:
        a = messages.store_inbound(db, "a", "1555", "text", "from a", None, "W1", 1)
        b = messages.store_inbound(db, "b", "1555", "text", "from b", None, "W1", 2)
        again = messages.store_inbound(db, "a", "1555", "text", "from a", None, "W1", 3)
        assert (a.created, b.created, again.created) == (True, True, False)
        assert again.id == a.id and a.id != b.id
        found_a, found_b = messages.get(db, "a", "W1"), messages.get(db, "b", "W1")
        assert found_a is not None and found_a["text"] == "from a"
        assert found_b is not None and found_b["text"] == "from b"
        assert messages.get(db, "c", "W1") is None
    finally:
        db.close()
