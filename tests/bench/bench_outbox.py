"""Fair sending benchmark: how long one company's message waits behind another's backlog.

    python tests/bench/bench_outbox.py [--backlog 20000] [--samples 5] [--throughput 80]

Starts the contract fake of Meta's Graph API and one ``wafleet serve`` node (subprocess, SQLite,
temporary data folder, 127.0.0.1) with two Cloud API companies, ``bulk`` and ``quick``, each on
its own number paced at ``--throughput`` messages per second (Meta's default is 80). ``bulk``
queues ``--backlog`` messages through the API (one customer each); then ``quick`` sends one
message a second, ``--samples`` times, and each one's wait from its 202 until the Graph API
accepted it is printed with how much of bulk's backlog was still queued. Baseline in the same
run: the same wait with nothing queued. Not a pytest test. The node is killed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.harness

import httpx  # noqa: E402

from tests.fake_graph import FakeGraph  # noqa: E402
from tests.harness import ADMIN_TOKEN, Node  # noqa: E402
from wafleet.storage.crypto import generate_key  # noqa: E402

BULK, QUICK = "106540352242922", "200000000000001"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def quick_wait(node: Node, graph: FakeGraph, n: int) -> float:
    """Seconds from quick's 202 until the Graph API accepted its message (a new customer each
    time: Meta allows one message per 6 s to one customer)."""
    text = f"quick {n}"
    started = time.time()
    r = node.client.post(
        "/api/whatsapp/send",
        json={"companyId": "quick", "phone": f"55117{n + 10:08d}", "message": text},
        headers=HEADERS,
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for m in list(graph.sent):
            if m["text"] == text:
                return m["at"] - started
        time.sleep(0.005)
    raise RuntimeError(f"{text} was not sent within 600 s")


def flood(node: Node, count: int, threads: int = 16) -> float:
    def post(k: int) -> None:
        with httpx.Client(base_url=node.base_url, timeout=60) as client:
            for i in range(k, count, threads):
                body = {"companyId": "bulk", "phone": f"55118{i:08d}", "message": f"bulk {i}"}
                r = client.post("/api/whatsapp/send", json=body, headers=HEADERS)
                assert r.status_code == 202, r.text

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, range(threads)))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--throughput", type=float, default=80.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-outbox-"))
    graph = FakeGraph({BULK: "bulk-token", QUICK: "quick-token"}, rate=args.throughput).start()
    node = Node(
        workdir,
        f"sqlite:///{workdir}/wafleet.db",
        WAFLEET_ENCRYPTION_KEY=generate_key(),
        WAFLEET_GRAPH_URL=graph.url,
        WAFLEET_CLOUD_THROUGHPUT=str(args.throughput),
        WHATSAPP_RATE_LIMIT_PER_COMPANY="10000000",  # the backlog is what is measured
    )
    try:
        node.start()
        for company, pnid, token in (("bulk", BULK, "bulk-token"), ("quick", QUICK, "quick-token")):
            body = {
                "id": company,
                "name": company,
                "link": "cloud",
                "cloud": {"phoneNumberId": pnid, "accessToken": token},
            }
            assert node.client.post("/admin/companies", json=body, headers=HEADERS).status_code == 201
            assert node.post(f"/api/whatsapp/sessions/{company}/initialize").status_code == 202
            node.wait_status(company, "connected")

        baseline = [quick_wait(node, graph, -i - 1) for i in range(3)]
        took = flood(node, args.backlog)
        bulk_sent = lambda: sum(m["phone_number_id"] == BULK for m in list(graph.sent))  # noqa: E731
        print(f"queued {args.backlog} messages for bulk in {took:.1f} s ({args.backlog / took:.0f}/s)")
        waits = []
        for n in range(args.samples):
            left = args.backlog - bulk_sent()
            wait = quick_wait(node, graph, n)
            waits.append(wait)
            print(f"quick message {n}: waited {wait:.3f} s with {left} of bulk's messages queued")
            time.sleep(max(0.0, 1.0 - wait))
        print(
            f"baseline (nothing queued): median {statistics.median(baseline):.3f} s; "
            f"behind the backlog: median {statistics.median(waits):.3f} s, max {max(waits):.3f} s "
            f"(throughput {args.throughput:g}/s per number)"
        )
    finally:
        node.close()
        graph.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
