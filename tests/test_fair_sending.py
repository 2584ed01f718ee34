"""Fair, ordered sending: one company's backlog never holds up another company, and every
customer gets a company's messages in the order they were accepted, on a real node sending to
the contract fake of Meta's Graph API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fake_graph import FakeGraph
from tests.harness import ADMIN_TOKEN, Node, wait_for
from wafleet.storage.crypto import generate_key

pytestmark = pytest.mark.slow

BULK_PNID, QUICK_PNID = "106540352242922", "200000000000001"
THROUGHPUT = 100.0  # messages per second per number, on our side and on the fake's


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph({BULK_PNID: "bulk-token", QUICK_PNID: "quick-token"}, rate=THROUGHPUT).start()
    yield fake
    fake.stop()


@pytest.fixture
def cloud_node(node_factory, graph: FakeGraph, database_url: str) -> Node:
    return node_factory(
        database_url,
        WAFLEET_ENCRYPTION_KEY=generate_key(),
        WAFLEET_GRAPH_URL=graph.url,
        WAFLEET_CLOUD_THROUGHPUT=str(THROUGHPUT),
        WHATSAPP_RATE_LIMIT_PER_COMPANY="100000",  # a backlog is the point here
    ).start()


def _create(node: Node, company: str, pnid: str, token: str) -> None:
    body = {
        "id": company,
        "name": company,
        "link": "cloud",
        "cloud": {"phoneNumberId": pnid, "accessToken": token},
    }
    r = node.client.post("/admin/companies", json=body, headers=node.admin())
    assert r.status_code == 201, r.text


def _queue(node: Node, company: str, batches: list[list[tuple[str, str]]]) -> None:
    """Each batch is posted in order by one client; batches run side by side."""

    def post(batch: list[tuple[str, str]]) -> None:
        with httpx.Client(base_url=node.base_url, timeout=30) as client:
            for phone, text in batch:
                r = client.post(
                    "/api/whatsapp/send",
                    json={"companyId": company, "phone": phone, "message": text},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                assert r.status_code == 202, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, batches))


def test_a_backlog_delays_no_other_company_and_every_customer_gets_its_messages_in_order(
    cloud_node: Node, graph: FakeGraph
) -> None:
    _create(cloud_node, "bulk", BULK_PNID, "bulk-token")
    _create(cloud_node, "quick", QUICK_PNID, "quick-token")
    # Customers who get several messages in a row (Meta allows one per 6 s to one recipient: the
    # pair limit makes these wait and be retried), then many who get one each.
    chatty = [f"55119{i:08d}" for i in range(20)]
    batches = [[(phone, f"{phone} #{n}") for n in range(4)] for phone in chatty]
    single = [f"55118{i:08d}" for i in range(2000)]
    batches += [[(phone, f"{phone} #0") for phone in single[k::6]] for k in range(6)]
    for company in ("quick", "bulk"):
        assert cloud_node.post(f"/api/whatsapp/sessions/{company}/initialize").status_code == 202
        cloud_node.wait_status(company, "connected")
    _queue(cloud_node, "bulk", batches)  # accepted far faster than the number may send them

    sent_before = sum(m["phone_number_id"] == BULK_PNID for m in list(graph.sent))
    backlog = len(chatty) * 4 + len(single) - sent_before
    assert backlog > 500, "the backlog was gone before quick sent: the test proves nothing"
    started = time.time()
    r = cloud_node.post(
        "/api/whatsapp/send", {"companyId": "quick", "phone": "5511977776666", "message": "hi"}
    )
    assert r.status_code == 202
    quick = wait_for(
        lambda: next((m for m in list(graph.sent) if m["phone_number_id"] == QUICK_PNID), None),
        timeout=60,
        what="quick's message to reach Meta",
    )
    waited = quick["at"] - started
    assert waited <= 1.0 + 1 / THROUGHPUT, f"quick waited {waited:.2f} s behind {backlog} queued messages"

    # Every customer receives bulk's messages in the order they were accepted.
    wait_for(
        lambda: sum(m["to"] in chatty for m in list(graph.sent)) == len(chatty) * 4,
        timeout=90,
        what="the chatty customers' messages",
    )
    for phone in chatty:
        texts = [m["text"] for m in graph.sent if m["to"] == phone]
        assert texts == [f"{phone} #{n}" for n in range(4)], f"out of order for {phone}: {texts}"
