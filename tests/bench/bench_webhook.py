"""Webhook benchmark: signed Meta payloads acknowledged per second by one node, and p99 latency.

    python tests/bench/bench_webhook.py [--payloads 5000] [--concurrency 16 64] [--database-url URL]

Starts one ``wafleet serve`` node (subprocess, temporary data folder, SQLite unless a
DATABASE_URL is given, 127.0.0.1), gives one company a Cloud phone_number_id, then posts signed
payloads (each one inbound text message with its own id, like Meta's) from a pool of client
threads on keep-alive connections. Every 200 means the raw payload was committed to the webhook
inbox before the answer (the route commits, then answers); processing runs after, off-request, and
the time until every message is in the messages table is reported too.

The client runs in this process on the same machine: if it uses as much CPU as the node, the
figures are a floor. Not a pytest test. The node is killed at the end whatever happens.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.harness

from tests.harness import Node, wait_for  # noqa: E402

SECRET = "bench-app-secret"
PID = "1001"


def payload(i: int, run: str) -> bytes:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550000000", "phone_number_id": PID},
                            "contacts": [{"profile": {"name": "Bench"}, "wa_id": "15551234567"}],
                            "messages": [
                                {
                                    "from": "15551234567",
                                    "id": f"wamid.bench.{run}.{i}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": f"message {i}"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(body, ensure_ascii=True).encode()


def run_phase(node: Node, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    next_index = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
        mine: list[float] = []
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(bodies):
                break
            body = bodies[i]
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            start = time.perf_counter()
            conn.request(
                "POST",
                "/api/whatsapp/webhook/cloud",
                body=body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
            )
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                with lock:
                    failures[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sorted(latencies), failures[0]


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payloads", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-webhook-"))
    url = args.database_url or f"sqlite:///{workdir}/wafleet.db"
    node = Node(workdir, url, WHATSAPP_WEBHOOK_SECRET=SECRET, STATSD_HOST="", WAFLEET_SANDBOX="true")
    try:
        node.start()
        node.create_company("bench")
        from wafleet.storage.database import Database
        from wafleet.storage.models import Company, Message

        db = Database(url)
        with db.work():
            Company.update(cloud_phone_number_id=PID).where(Company.id == "bench").execute()
        print(
            f"node on 127.0.0.1:{node.port}, database {db.description.split('?')[0]}, {os.cpu_count()} CPUs"
        )
        for concurrency in args.concurrency:
            run = f"c{concurrency}"
            bodies = [payload(i, run) for i in range(args.payloads)]
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            elapsed, lat, failed = run_phase(node, bodies, concurrency)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            client_cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / elapsed * 100
            t_acked = time.perf_counter()

            def stored(run: str = run) -> bool:
                with db.work():
                    n = Message.select().where(Message.wa_id.startswith(f"wamid.bench.{run}.")).count()
                return n == args.payloads

            wait_for(stored, 300, 0.1, "every acknowledged message processed")
            drain = time.perf_counter() - t_acked
            print(
                f"concurrency {concurrency:>3}: {args.payloads} payloads acknowledged (committed before the 200) "
                f"in {elapsed:.2f}s = {args.payloads / elapsed:,.0f}/s; latency p50 {pct(lat, 0.5):.1f} ms, "
                f"p99 {pct(lat, 0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms; non-200: {failed}; "
                f"all processed {drain:.2f}s after the last ack; client CPU {client_cpu:.0f}%"
            )
        db.close()
    finally:
        node.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
