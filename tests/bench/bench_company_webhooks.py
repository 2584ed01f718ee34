"""Company-webhook benchmark: signed deliveries per second from one node to a local receiver.

    python tests/bench/bench_company_webhooks.py [--companies 20] [--events 100] [--database-url URL]

Starts one ``wafleet serve`` node (subprocess, temporary data folder, SQLite unless a
DATABASE_URL is given, 127.0.0.1) and a threaded receiver on loopback that checks every
signature. Each company gets one webhook (its own endpoint) subscribed to ``message``; its
sandbox session is connected. The receiver holds every endpoint's first request while the
inbound messages are produced, so the queue is full (``--events`` per company, committed) when
the clock starts; then it lets go, and the figure is deliveries accepted per second until the
last one, every one signed, in order per endpoint.

Same-run baseline: the same receiver, posted to directly by as many client threads as there are
endpoints (no node in between) -- what this machine's receiver can take at all. The client,
receiver and node share the machine: the figures are a floor. Not a pytest test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.*

from tests.harness import Node, wait_for  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402
from wafleet.storage.crypto import generate_key  # noqa: E402

SECRET = "bench-webhook-secret-0123"


def baseline(rx: Receiver, threads: int, total: int) -> float:
    """Requests/s the receiver takes from plain keep-alive clients, no node involved."""
    port = rx.server.server_address[1]
    body = json.dumps({"type": "message", "data": {"text": "baseline"}}).encode()
    per = total // threads

    def client(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per):
            conn.request("POST", "/baseline", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(client, range(threads)))
    return per * threads / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=20)
    parser.add_argument("--events", type=int, default=100, help="messages per company")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    total = args.companies * args.events

    rx = Receiver(secret=SECRET)
    base = baseline(rx, args.companies, total)
    rx.requests.clear()
    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-hooks-"))
    node = Node(
        workdir,
        args.database_url,
        WAFLEET_ENCRYPTION_KEY=generate_key(),
        WAFLEET_WEBHOOK_ALLOW_PRIVATE="true",
        WAFLEET_WEBHOOK_TIMEOUT="600000",  # the held first requests must not time out and retry
        WHATSAPP_LOG_LEVEL="error",
    )
    try:
        node.start()
        companies = [f"bench{i:03d}" for i in range(args.companies)]
        for cid in companies:
            node.create_company(
                cid, webhooks=[{"url": f"{rx.url}/{cid}", "events": ["message"], "secret": SECRET}]
            )
            node.connect(cid)
        rx.requests.clear()
        rx.release.clear()
        rx.hold_from = 0  # every endpoint's first delivery waits until the queue is full

        def produce(cid: str) -> None:
            client = node.client
            for i in range(args.events):
                r = client.post(
                    f"/api/sandbox/{cid}/inbound",
                    json={"from": "5511988887777", "text": f"{cid} {i}"},
                    headers=node.admin(),
                )
                assert r.status_code == 202, r.text

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(produce, companies))

        # Delivery ids grow from 1 across all companies: the newest id is the number queued.
        wait_for(lambda: max_id(node, companies) >= total, timeout=600, interval=0.5, what="all queued")
        produced = time.perf_counter() - started
        held = len(rx.snapshot())
        start = time.perf_counter()
        rx.release.set()
        rx.hold_from = None
        wait_for(lambda: len(rx.accepted()) >= total, timeout=600, interval=0.05, what="all delivered")
        elapsed = time.perf_counter() - start
        got = rx.snapshot()
        assert all(r["signatureOk"] for r in got), "a delivery failed its signature check"
        per_company: dict[str, list[int]] = {}
        for r in got:
            cid, i = r["body"]["data"]["text"].split()
            per_company.setdefault(cid, []).append(int(i))
        in_order = all(v == sorted(v) for v in per_company.values())
        print(f"database: {node.env.get('DATABASE_URL', 'sqlite (default)')}")
        print(
            f"endpoints: {args.companies}, deliveries: {total} (queued in {produced:.1f} s, {held} held at start)"
        )
        print(
            f"node -> receiver: {total / elapsed:,.0f} deliveries/s ({elapsed:.2f} s), in order per endpoint: {in_order}"
        )
        print(f"baseline, plain clients -> same receiver: {base:,.0f} requests/s")
    finally:
        node.close()
        rx.close()


def max_id(node: Node, companies: list[str]) -> int:
    best = 0
    for cid in companies:
        r = node.client.get(
            f"/api/whatsapp/webhooks/{cid}/deliveries", params={"limit": "1"}, headers=node.admin()
        )
        rows = r.json()["deliveries"]
        if rows:
            best = max(best, int(rows[0]["id"]))
    return best


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
