"""Fleet benchmark: N sandbox companies on one node, from nothing to all connected, and back
after a kill -9.

    python tests/bench/bench_fleet.py [--companies 10000] [--concurrency 16] [--postgres]

Starts one ``wafleet serve`` node (subprocess, temporary data folder, 127.0.0.1; SQLite, or
PostgreSQL with ``--database-url URL`` or ``--postgres``, which starts a throwaway server the way
the tests do, fsync off), then through its HTTP API, with a bounded pool of client threads on
keep-alive connections:

1. creates N sandbox companies;
2. initializes each session and waits until the metrics report N sessions in ``qr``;
3. scans each QR and waits until the metrics report N ``connected``;
4. reads the node's RSS after it settled (idle after boot, after the creates, after connect);
5. hammers ``GET /api/whatsapp/sessions/{id}/status`` of random companies for a while (idle
   otherwise: this is the status p99 at idle);
6. restore: kill -9, start the node again, and times ``/healthz`` answering, ``/readyz`` saying
   ready, and all N sessions ``connected`` again.

Targets (the issue): all connected within 60 s (at 10,000); at most 40 KiB of RSS per connected
session and at most 3 GiB in all; no request refused; after the kill, ``/healthz`` within 1 s and
every session connected within N / WAFLEET_BOOT_RATE + 10 s.

What is measured, honestly: RSS is VmRSS of the node process from /proc, read once it has
stopped moving (the node offers no way to force a gc from outside); the per-session figure is
(RSS when all are connected - RSS idle after boot) / N and so includes everything N companies
cost the process (directory records, token index, SQLite page cache, allocator slack), not just
the actors. The client runs in this process on the same 2-core machine, so the report also shows
how much CPU the client and the node used during each phase: if the node is near 100 % of one
core, the node is the bottleneck; if the client is, the figures are a floor.

Not a pytest test (the file name is not test_*.py). Bounded loops only; the node is killed at
the end whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ADMIN_TOKEN = "bench-admin-token-0123456789"
HOST = "127.0.0.1"
TARGET_SECONDS = 60.0
TARGET_KIB_PER_SESSION = 40.0
TARGET_RSS_KIB = 3 * 1024 * 1024
TARGET_HEALTHZ_SECONDS = 1.0
RESTORE_SLACK_SECONDS = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the node ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class NodeProcess:
    def __init__(
        self, workdir: Path, max_sessions: int, extra_env: dict[str, str], command: list[str] | None = None
    ) -> None:
        self.workdir = workdir
        self.command = command or [sys.executable, "-m", "wafleet.http.main", "serve"]
        self.port = free_port()
        self.log_path = workdir / "node.log"
        env = dict(os.environ)
        env.update(
            WAFLEET_PORT=str(self.port),
            WAFLEET_HOST=HOST,
            WAFLEET_ADMIN_TOKEN=ADMIN_TOKEN,
            WAFLEET_DATA_DIR=str(workdir / "data"),
            WAFLEET_SANDBOX="true",
            WHATSAPP_MAX_SESSIONS=str(max_sessions),
            WHATSAPP_LOG_LEVEL="warning",
            PYTHONUNBUFFERED="1",
            # Nobody scans before every company is initialized: at 100,000 that takes longer
            # than WhatsApp's three QR rounds, which would stop the first sessions unscanned.
            WAFLEET_QR_FIRST_TIMEOUT="3600000",
            WAFLEET_QR_TIMEOUT="3600000",
        )
        env.pop("DATABASE_URL", None)  # SQLite in the data folder unless extra_env names one
        env.update(extra_env)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> float:
        """Start the process; returns the monotonic time just before it was started."""
        with open(self.log_path, "ab") as log:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return t0

    def wait_answer(self, path: str, timeout: float, interval: float = 0.01) -> float:
        """Poll ``path`` until it answers 200; returns the monotonic time it first did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log_tail()}")  # type: ignore[union-attr]
            try:
                status, _ = request_once(self.port, "GET", path, None, None, timeout=2.0)
                if status == 200:
                    return time.monotonic()
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(interval)
        raise RuntimeError(f"{path} not 200 after {timeout}s:\n{self.log_tail()}")

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_answer("/readyz", timeout, 0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def settled_rss(
        self, max_wait: float = 30.0, interval: float = 1.0, band_kib: int = 256
    ) -> tuple[int, float]:
        """RSS once three readings in a row stay within ``band_kib``; (rss, seconds waited)."""
        start = time.monotonic()
        readings = [self.rss_kib()]
        while time.monotonic() - start < max_wait:
            time.sleep(interval)
            readings.append(self.rss_kib())
            last = readings[-3:]
            if len(last) == 3 and max(last) - min(last) <= band_kib:
                break
        return readings[-1], time.monotonic() - start

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


# -- the client --------------------------------------------------------------------------------
def request_once(
    port: int, method: str, path: str, body: Any, token: str | None, timeout: float = 10.0
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        return _exchange(conn, method, path, body, token)
    finally:
        conn.close()


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any,
    token: str | None,
    quickack: bool = False,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or ADMIN_TOKEN}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    if quickack and conn.sock is not None:
        # ACK the response's header segment at once, so that the node's second segment (the
        # body) is not held back by Nagle until our delayed ACK fires (~40 ms); see --quickack.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    response = conn.getresponse()
    raw = response.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw[:200]
    return response.status, payload


class Client:
    """A bounded pool of threads, each with its own keep-alive connection to the node."""

    def __init__(self, port: int, concurrency: int, quickack: bool = False, timeout: float = 30.0) -> None:
        self.port = port
        self.quickack = quickack
        self.concurrency = concurrency
        self.timeout = timeout
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench")
        self.connections: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self.local.conn = conn
            with self.lock:
                self.connections.append(conn)
        return conn

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any, float]:
        """(status, payload, seconds); status 0 is a transport error after one retry."""
        for attempt in (1, 2):
            conn = self._conn()
            start = time.perf_counter()
            try:
                status, payload = _exchange(conn, method, path, body, token, self.quickack)
                return status, payload, time.perf_counter() - start
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # reconnects on the next request
                if attempt == 2:
                    return 0, f"{type(exc).__name__}: {exc}", time.perf_counter() - start
        raise AssertionError("unreachable")

    def run_all(self, items: Iterable[Any], fn: Callable[[Any], Any]) -> list[Any]:
        return list(self.pool.map(fn, items))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        with self.lock:
            for conn in self.connections:
                conn.close()


class Phase:
    """Wall time plus the CPU the node and this client used while it ran."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node

    def __enter__(self) -> Phase:
        self.t0 = time.perf_counter()
        self.node_cpu0 = self.node.cpu_seconds()
        self.client_cpu0 = _own_cpu()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.node_cpu = self.node.cpu_seconds() - self.node_cpu0
        self.client_cpu = _own_cpu() - self.client_cpu0

    def cpu_text(self) -> str:
        s = max(self.seconds, 1e-9)
        return f"node CPU {100 * self.node_cpu / s:.0f} %, client CPU {100 * self.client_cpu / s:.0f} %"


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# -- the benchmark -----------------------------------------------------------------------------
def wait_metric(client: Client, node: NodeProcess, state: str, n: int, timeout: float) -> dict[str, int]:
    """Poll the metrics until ``state`` counts ``n``; returns the last counts."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        if not node.alive():
            raise RuntimeError(f"node died:\n{node.log_tail()}")
        status, payload, _ = client.call("GET", "/api/whatsapp/metrics")
        if status == 200:
            counts = payload["sessions"]
            if counts.get(state, 0) >= n:
                return counts
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {n} {state}; last counts {counts}")


REFUSED: Counter[str] = Counter()


def check(name: str, results: list[tuple[int, Any, float]], expected: int) -> None:
    codes = Counter(r[0] for r in results)
    bad = [r for r in results if r[0] != expected]
    if bad:
        REFUSED[name] += len(bad)
        sample = "; ".join(f"{r[0]} {str(r[1])[:160]}" for r in bad[:3])
        print(f"  !! {name}: {len(bad)} of {len(results)} not {expected}: {dict(codes)}; e.g. {sample}")


def count_refused(results: list[tuple[int, Any, float]], expected: int) -> int:
    return sum(1 for r in results if r[0] != expected)


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores"


def latency_text(results: list[tuple[int, Any, float]]) -> str:
    lat = sorted(r[2] for r in results)
    return f"p50 {1000 * percentile(lat, 50):.1f} ms, p99 {1000 * percentile(lat, 99):.1f} ms"


def restore(node: NodeProcess, n: int, timeout: float) -> tuple[float, float, float]:
    """kill -9, start again: seconds to /healthz, to /readyz, to all n connected."""
    node.kill()
    t0 = node.spawn()
    t_health = node.wait_answer("/healthz", timeout, 0.005) - t0
    t_ready = node.wait_answer("/readyz", timeout, 0.02) - t0
    deadline = t0 + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            status, payload = request_once(node.port, "GET", "/api/whatsapp/metrics", None, None)
        except (OSError, http.client.HTTPException):
            status, payload = 0, None
        if status == 200:
            counts = payload["sessions"]
            if counts.get("connected", 0) >= n:
                return t_health, t_ready, time.monotonic() - t0
        if not node.alive():
            raise RuntimeError(f"node died during restore:\n{node.log_tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"restore: not all {n} connected after {timeout:.0f}s; last counts {counts}")


def bench(args: argparse.Namespace) -> int:
    n = args.companies
    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-", dir=args.tmpdir))
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    postgres = None
    database_url = args.database_url
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.harness import Postgres

        postgres = Postgres()
        database_url = postgres.create_database()
    if database_url:
        extra_env["DATABASE_URL"] = database_url
    database = "PostgreSQL" if database_url and database_url.startswith("postgres") else "SQLite"
    boot_rate = float(extra_env.get("WAFLEET_BOOT_RATE", os.environ.get("WAFLEET_BOOT_RATE", "500")))
    command = shlex.split(args.node_cmd) if args.node_cmd else None
    node = NodeProcess(workdir, max_sessions=n + 100, extra_env=extra_env, command=command)
    client: Client | None = None
    print(f"start: {load_text()}")
    try:
        t_boot = time.perf_counter()
        node.start()
        print(f"node pid {node.pid} on {HOST}:{node.port}, data in {workdir} ({database})")
        print(f"  ready in {time.perf_counter() - t_boot:.2f} s")
        client = Client(node.port, args.concurrency, args.quickack)
        # Warm the routes we read (first-request imports and caches), then let the node settle.
        for _ in range(3):
            client.call("GET", "/api/whatsapp/metrics")
            client.call("GET", "/api/whatsapp/sessions/nobody/status")
        idle_rss, waited = node.settled_rss()
        print(f"  idle RSS {idle_rss / 1024:.1f} MiB (settled after {waited:.0f} s)")

        ids = [f"bench{i:06d}" for i in range(n)]
        tokens: dict[str, str] = {}

        def create(cid: str) -> tuple[int, Any, float]:
            result = client.call("POST", "/admin/companies", {"id": cid, "name": cid, "link": "sandbox"})
            if result[0] == 201:
                tokens[cid] = result[1]["token"]
            return result

        print(
            f"\n{n} companies, client concurrency {args.concurrency} (threads, keep-alive http.client"
            f"{', TCP_QUICKACK' if args.quickack else ''})"
        )
        t_first = time.perf_counter()
        with Phase(node) as p_create:
            created = client.run_all(ids, create)
        check("create", created, 201)
        rss_created = node.rss_kib()
        print(
            f"  create      {p_create.seconds:7.2f} s  {n / p_create.seconds:7.0f} req/s  "
            f"{latency_text(created)}  ({p_create.cpu_text()})"
        )

        with Phase(node) as p_init:
            inits = client.run_all(
                ids, lambda cid: client.call("POST", f"/api/whatsapp/sessions/{cid}/initialize")
            )
            p_init_req = time.perf_counter() - p_init.t0
            check("initialize", inits, 202)
            # A refused initialize may still have started its session, or not: wait for the rest.
            wait_metric(client, node, "qr", n - count_refused(inits, 202), args.timeout)
        rss_qr = node.rss_kib()
        print(
            f"  init + qr   {p_init.seconds:7.2f} s  {n / p_init_req:7.0f} req/s  "
            f"{latency_text(inits)}  (requests {p_init_req:.2f} s; {p_init.cpu_text()})"
        )

        with Phase(node) as p_scan:
            scans = client.run_all(ids, lambda cid: client.call("POST", f"/api/sandbox/{cid}/scan"))
            p_scan_req = time.perf_counter() - p_scan.t0
            check("scan", scans, 202)
            counts = wait_metric(client, node, "connected", n - count_refused(scans, 202), args.timeout)
        total = time.perf_counter() - t_first
        print(
            f"  scan -> conn{p_scan.seconds:7.2f} s  {n / p_scan_req:7.0f} req/s  "
            f"{latency_text(scans)}  (requests {p_scan_req:.2f} s; {p_scan.cpu_text()})"
        )
        print(f"  first create -> all {n} connected: {total:.2f} s   metrics: {counts}")

        connected_rss, waited = node.settled_rss()
        per_session = (connected_rss - idle_rss) / n
        print(
            f"\n  RSS connected {connected_rss / 1024:.1f} MiB (settled after {waited:.0f} s), "
            f"idle {idle_rss / 1024:.1f} MiB"
        )
        print(f"  RSS per connected session above idle: {per_session:.1f} KiB")
        print(
            f"  (instant, not settled: {(rss_created - idle_rss) / n:.1f} KiB/company after the creates, "
            f"{(rss_qr - idle_rss) / n:.1f} KiB after init + qr)"
        )

        # Status reads of random companies, each with its own token, for a fixed time.
        pairs = [(cid, tokens.get(cid)) for cid in ids]
        deadline = time.perf_counter() + args.status_seconds
        rng = random.Random(1)

        def reader(seed: int) -> list[tuple[int, Any, float]]:
            own = random.Random(seed)
            out = []
            while time.perf_counter() < deadline:
                cid, token = pairs[own.randrange(len(pairs))]
                status, payload, seconds = client.call(
                    "GET", f"/api/whatsapp/sessions/{cid}/status", token=token
                )
                ok = status == 200 and payload.get("status") == "connected"
                out.append((200 if ok else status or -1, None if ok else payload, seconds))
            return out

        with Phase(node) as p_status:
            per_thread = client.run_all([rng.random() for _ in range(args.concurrency)], reader)
        reads = [r for rs in per_thread for r in rs]
        check("status", reads, 200)
        print(
            f"\n  status      {len(reads) / p_status.seconds:7.0f} req/s over {p_status.seconds:.1f} s "
            f"at concurrency {args.concurrency}  {latency_text(reads)}  ({p_status.cpu_text()})"
        )

        final_rss = node.rss_kib()
        print(f"  RSS after the status run {final_rss / 1024:.1f} MiB   ({load_text()})")
        max_rss = max(final_rss, connected_rss)

        client.close()
        client = None
        restore_limit = n / boot_rate + RESTORE_SLACK_SECONDS
        connected_before = counts.get("connected", 0)
        t_health, t_ready, t_all = restore(node, connected_before, args.timeout)
        restored_rss, _ = node.settled_rss()
        max_rss = max(max_rss, restored_rss)
        print(
            f"\n  restore after kill -9: /healthz {t_health:.2f} s, /readyz {t_ready:.2f} s, "
            f"all {n} connected {t_all:.2f} s (limit N / {boot_rate:.0f} + {RESTORE_SLACK_SECONDS:.0f} = "
            f"{restore_limit:.1f} s); RSS {restored_rss / 1024:.1f} MiB   ({load_text()})"
        )

        refused = sum(REFUSED.values())
        met_time = total <= TARGET_SECONDS
        met_mem = per_session <= TARGET_KIB_PER_SESSION and max_rss <= TARGET_RSS_KIB
        met_health = t_health <= TARGET_HEALTHZ_SECONDS
        met_restore = t_all <= restore_limit
        print(
            f"\nTARGETS  all connected <= {TARGET_SECONDS:.0f} s: {'MET' if met_time else 'MISSED'} "
            f"({total:.1f} s);  <= {TARGET_KIB_PER_SESSION:.0f} KiB/session and <= 3 GiB: "
            f"{'MET' if met_mem else 'MISSED'} ({per_session:.1f} KiB, max {max_rss / 1024:.0f} MiB);  "
            f"refused: {refused} {dict(REFUSED) if refused else ''};  "
            f"/healthz <= {TARGET_HEALTHZ_SECONDS:.0f} s: {'MET' if met_health else 'MISSED'} "
            f"({t_health:.2f} s);  restore <= {restore_limit:.0f} s: "
            f"{'MET' if met_restore else 'MISSED'} ({t_all:.1f} s)"
        )
        print(
            f"ROW  {database} N={n}  connect {total:.1f} s | refused {refused} | "
            f"{per_session:.1f} KiB/session, max RSS {max_rss / 1024:.0f} MiB | "
            f"status p99 {1000 * percentile(sorted(r[2] for r in reads), 99):.1f} ms "
            f"({len(reads) / p_status.seconds:.0f}/s) | restore: healthz {t_health:.2f} s, "
            f"readyz {t_ready:.2f} s, all connected {t_all:.1f} s (limit {restore_limit:.0f} s) | "
            f"{load_text()}"
        )
        ok = met_mem and met_health and met_restore and not refused and (met_time or n > 10000)
        return 0 if ok else 1
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
        if node.alive() and args.keep:
            print(f"node log: {node.log_path}")
        node.kill()
        if postgres is not None:
            postgres.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=16, help="client threads / connections")
    parser.add_argument(
        "--quickack",
        action="store_true",
        help="client ACKs at once: works around the node's Nagle + delayed-ACK stall (~40 ms a request)",
    )
    parser.add_argument("--status-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="max wait for qr / connected")
    parser.add_argument("--tmpdir", default=None, help="where the node's data folder goes")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=value for the node")
    parser.add_argument(
        "--node-cmd", default=None, help="run the node with this command instead (A/B a product change)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder and log")
    parser.add_argument("--database-url", default=None, help="the node's DATABASE_URL (default: SQLite)")
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL (as the tests do) and use it"
    )
    args = parser.parse_args()
    if args.companies < 1 or args.concurrency < 1:
        parser.error("--companies and --concurrency must be at least 1")
    sys.exit(bench(args))


if __name__ == "__main__":
    main()
