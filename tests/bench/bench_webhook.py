"""Webhook benchmark: signed Meta payloads acknowledged per second by one node, p50/p99 latency,
beside a bare gevent WSGI app that only answers 200, measured in the same run.

    python tests/bench/bench_webhook.py [--payloads 5000] [--concurrency 16 64] [--rounds 1]
                                        [--backends sqlite postgresql] [--database-url URL]

For each backend it starts one ``wafleet serve`` node (subprocess, temporary data folder, SQLite
file or a throwaway PostgreSQL server started here, 127.0.0.1), gives one company a Cloud
phone_number_id, then posts signed payloads (each one inbound text message with its own id, like
Meta's) from ``concurrency`` keep-alive connections. Every 200 means the raw payload was committed
to the webhook inbox before the answer (group commit: the payloads that arrived meanwhile share
one transaction); processing runs after, off-request, and the time until every message is in the
messages table is reported too. The bare app (same gevent server, TCP_NODELAY, reads the body and
answers 200) is measured with the same client at the same concurrency: the ceiling this machine
and client allow.

The client is gevent with pre-built requests on raw sockets (signatures computed before the
clock starts), in this process, on the same machine: its CPU is reported. Not a pytest test.
Servers are stopped at the end whatever happens.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.harness

from tests.harness import Node, Postgres, free_port, wait_for  # noqa: E402

SECRET = "bench-app-secret"
PID = "1001"
HOOK = "/api/whatsapp/webhook/cloud"

BARE_APP = """
import socket, sys
from gevent import monkey; monkey.patch_all()
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

class NoDelay(WSGIServer):
    def handle(self, sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)

def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"OK"]

NoDelay(("127.0.0.1", int(sys.argv[1])), app, spawn=Pool(2000), log=None).serve_forever()
"""


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


def request(body: bytes) -> bytes:
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 response (Content-Length framed); returns its status code."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end]).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(buffer) < end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    del buffer[: end + length]
    return status


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process used so far (Linux /proc), whatever else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    elapsed: float
    latencies: list[float]
    failures: int
    client_cpu: float
    server_cpu: float = 0.0  # seconds of CPU the server used during the phase

    @property
    def cpu_per_ack(self) -> float:
        """Server CPU microseconds per acknowledged payload: the figure load on the machine
        does not change much (the rate and latencies it does)."""
        return self.server_cpu / max(1, len(self.latencies) - self.failures) * 1e6

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def pct(self, p: float) -> float:
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * p))] * 1000


def run_phase(port: int, requests: list[bytes], concurrency: int, pid: int | None = None) -> Phase:
    latencies: list[float] = []
    failures = [0]
    queue = iter(requests)

    def worker() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        try:
            for req in queue:
                start = time.perf_counter()
                sock.sendall(req)
                status = read_response(sock, buffer)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    failures[0] += 1
        finally:
            sock.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    server0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)], raise_error=True)
    elapsed = time.perf_counter() - t0
    server = cpu_seconds(pid) - server0 if pid else 0.0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / elapsed * 100
    return Phase(elapsed, sorted(latencies), failures[0], cpu, server)


def row(label: str, concurrency: int, phase: Phase, extra: str = "") -> str:
    return (
        f"| {label:<24} | {concurrency:>3} | {phase.rate:>8,.0f} | {phase.pct(0.5):>7.1f} | "
        f"{phase.pct(0.99):>7.1f} | {phase.latencies[-1] * 1000:>7.1f} | {phase.failures:>5} | "
        f"{phase.client_cpu:>4.0f}% | {phase.cpu_per_ack:>10.0f} | {extra:<14} |"
    )


def bench_bare(args: argparse.Namespace) -> list[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    lines = []
    try:
        wait_for(lambda: _listening(port), 10, 0.05, "the bare app")
        body = payload(0, "bare")
        run_phase(port, [request(body)] * 500, 16)  # warm-up
        for concurrency in args.concurrency:
            rounds = [
                run_phase(port, [request(body)] * args.payloads, concurrency, proc.pid)
                for _ in range(args.rounds)
            ]
            lines.append(row("bare gevent WSGI 200", concurrency, max(rounds, key=lambda p: p.rate)))
    finally:
        proc.kill()
        proc.wait()
    return lines


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def bench_node(label: str, url: str, workdir: Path, args: argparse.Namespace) -> list[str]:
    node = Node(workdir, url, WHATSAPP_WEBHOOK_SECRET=SECRET, STATSD_HOST="", WAFLEET_SANDBOX="true")
    lines = []
    try:
        node.start()
        node.create_company("bench")
        from wafleet.storage.database import Database
        from wafleet.storage.models import Company, Message, WebhookInbox

        db = Database(url)
        with db.work():
            Company.update(cloud_phone_number_id=PID).where(Company.id == "bench").execute()
        run_phase(node.port, [request(payload(i, "warm")) for i in range(500)], 16)  # warm-up
        for concurrency in args.concurrency:
            best: tuple[Phase, float] | None = None
            for attempt in range(args.rounds):
                run = f"c{concurrency}r{attempt}"
                requests = [request(payload(i, run)) for i in range(args.payloads)]
                with db.work():
                    rows_before = WebhookInbox.select().count()
                assert node.proc is not None
                phase = run_phase(node.port, requests, concurrency, node.proc.pid)
                t_acked = time.perf_counter()
                with db.work():  # every 200 is a committed row
                    committed = WebhookInbox.select().count() - rows_before
                assert committed >= len(phase.latencies) - phase.failures, (committed, len(phase.latencies))

                def stored(run: str = run) -> bool:
                    with db.work():
                        n = Message.select().where(Message.wa_id.startswith(f"wamid.bench.{run}.")).count()
                    return n == args.payloads

                wait_for(stored, 600, 0.1, "every acknowledged message processed")
                drain = time.perf_counter() - t_acked
                if best is None or phase.rate > best[0].rate:
                    best = (phase, drain)
            assert best is not None
            lines.append(row(label, concurrency, best[0], f"drained +{best[1]:.1f}s"))
        db.close()
    finally:
        node.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payloads", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--rounds", type=int, default=1, help="run each row N times and keep the best (a shared machine)"
    )
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL URL to use instead of starting one"
    )
    args = parser.parse_args()

    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.payloads} payloads per row, "
        f"best of {args.rounds} round(s)"
    )
    lines = bench_bare(args)
    for backend in args.backends:
        workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-webhook-"))
        server: Postgres | None = None
        try:
            if backend == "sqlite":
                url = f"sqlite:///{workdir}/wafleet.db"
            elif args.database_url:
                url = args.database_url
            else:
                server = Postgres()
                url = server.create_database()
            lines += bench_node(f"wafleet, {backend}", url, workdir, args)
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        "| server                   |   c |   acks/s | p50 ms  | p99 ms  | max ms  | !200  | client "
        "| µs CPU/ack | processing     |"
    )
    print(
        "|--------------------------|-----|----------|---------|---------|---------|-------|--------"
        "|------------|----------------|"
    )
    for line in lines:
        print(line)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
