"""Assistant benchmark: 1,000 customers across 100 companies, each a three-turn booking
conversation through the sandbox, on the rules and against a fake model that answers in 300 ms.

    python tests/bench/bench_assistant.py [--companies 100] [--customers 1000] [--rate 200]
                                          [--model-latency-ms 300] [--model-rate 100]
                                          [--skip-model]

One ``wafleet serve`` node (subprocess, temporary data folder, SQLite, 127.0.0.1,
WAFLEET_BATCH_WINDOW=0 so that the figures exclude the batch window). Each customer writes
"Olá, quero marcar um corte" -> (asked the day) "amanhã" -> (asked the time) "às 9h30" -> booked;
the ten customers of a company ask for ten different times, so every conversation ends booked.

Four runs, each on fresh companies of the same node:

1. rules, full load: 200 customers talking at once (each waits for its reply before its next
   turn; the next customer starts when one is done);
   turns/s = turns answered / wall time of the run;
2. rules, offered load: a dispatcher sends turns at ``--rate`` turns/s (open loop, from the
   customers whose last reply has come), for the p99 at that rate;
3. model: the node's ``openai`` client talks to the contract fake (tests/fake_openai.py) which
   answers after ``--model-latency-ms``; full load as in 1 (200 customers each waiting 300 ms
   ask for ~650 turns/s: more than one core carries on this path, so its p99 is queueing);
4. model, offered load: as in 2, at ``--model-rate`` turns/s, for the p99 below saturation
   (the model-latency target is a statement about the node's overhead on a model call, which
   only means something while the node keeps up).

Latency of a turn: from just before its POST /api/sandbox/{id}/inbound to the moment the reply is
seen on the admin's event stream (GET /api/whatsapp/events, a ``message`` event with direction
``out``: the deliverer has handed the reply to the sandbox's WhatsApp, i.e. it is in the outbox the
sandbox shows). Node CPU is utime+stime of the node process over the run / wall time (1.0 = one
core busy). Double bookings are counted in the database after all runs (overlapping confirmed
bookings of one resource); they must be 0.

Targets: rules >= 500 turns/s at full load; rules p99 <= 50 ms at 200 turns/s;
model p99 <= model latency + 50 ms. The client runs on the same machine (a gevent process, so it
costs little), and the machine may be shared: the report prints the client's CPU, the load
average, and the node's CPU time per turn, which does not depend on how much of the machine the
node got (the same-run baseline: 1000 / that = turns/s one core would carry).

Not a pytest test (the file name is not test_*.py). Bounded loops only; the node and the fake are
stopped at the end whatever happens.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.queue  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fake_openai import FakeOpenAI, Outcome, reply  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TZ = "Europe/Lisbon"
TIMES = ["9h", "9h30", "10h", "10h30", "11h", "11h30", "12h", "12h30", "13h", "13h30", "14h", "14h30"]
IN_FLIGHT = 200  # at most this many connections at once (the node's listen backlog is finite)
SCRIPT = ("Olá, quero marcar um corte", "amanhã", None)  # the third turn is "às <time>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def config() -> dict[str, Any]:
    every_day = {
        d: {"open": "09:00", "close": "19:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    return {
        "enabled": True,
        "languages": ["pt", "en", "ru"],
        "timezone": TZ,
        "businessName": "Bench Salon",
        "services": [
            {"id": "haircut", "name": "Corte", "aliases": ["corte de cabelo", "haircut"], "durationMin": 30}
        ],
        "resources": [{"id": "chair", "name": "Rita", "services": ["haircut"]}],
        "hours": dict(every_day, closed=[]),
        "slotStepMin": 30,
        "horizonDays": 30,
    }


# -- the node -------------------------------------------------------------------------------------
class Node:
    def __init__(self, workdir: Path, env: dict[str, str], profile: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.pop("DATABASE_URL", None)
        self.env.update(
            WAFLEET_PORT=str(self.port),
            WAFLEET_HOST=HOST,
            WAFLEET_ADMIN_TOKEN=ADMIN,
            WAFLEET_DATA_DIR=str(workdir / "data"),
            WAFLEET_SANDBOX="true",
            WAFLEET_BATCH_WINDOW="0",
            WHATSAPP_LOG_LEVEL="warning",
            STATSD_HOST="",
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.log = open(workdir / "node.log", "ab")
        self.profile = profile
        profiler = ["-m", "cProfile", "-o", profile] if profile else []
        self.proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "wafleet.http.main", "serve"],
            cwd=workdir,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited: {(workdir / 'node.log').read_text()[-2000:]}")
            try:
                if call(self.port, "GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("node not ready")

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.profile and self.proc.poll() is None:  # a clean stop writes the profile
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def call(
    port: int, method: str, path: str, body: Any = None, conn: http.client.HTTPConnection | None = None
) -> tuple[int, Any]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)
    finally:
        if own:
            conn.close()


# -- the event stream: when each reply left ---------------------------------------------------------
class Replies:
    """Reads the admin's event stream; wakes the customer waiting for a reply to its chat."""

    def __init__(self, port: int) -> None:
        self.waiting: dict[tuple[str, str], gevent.event.AsyncResult] = {}
        self.sock = socket.create_connection((HOST, port))
        self.sock.sendall(
            f"GET /api/whatsapp/events HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ADMIN}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.reader = gevent.spawn(self._read)

    def expect(self, company: str, peer: str) -> gevent.event.AsyncResult:
        result = gevent.event.AsyncResult()
        self.waiting[(company, peer)] = result
        return result

    def _read(self) -> None:
        stream = self.sock.makefile("rb")
        event = None
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "message":
                data = json.loads(line[5:])
                if data.get("direction") == "out":
                    waiter = self.waiting.pop((data.get("companyId"), data.get("peer")), None)
                    if waiter is not None:
                        waiter.set((time.perf_counter(), data.get("text") or ""))
            elif line == "":
                event = None

    def close(self) -> None:
        self.reader.kill(block=False)
        self.sock.close()


# -- the customers ----------------------------------------------------------------------------------
@dataclass
class Customer:
    company: str
    phone: str
    time: str
    turn: int = 0
    booked: bool = False
    texts: list[str] = field(default_factory=list)

    def next_text(self) -> str:
        text = SCRIPT[self.turn] or f"às {self.time}"
        return text


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    wall: float = 0.0
    node_cpu: float = 0.0
    client_cpu: float = 0.0
    booked: int = 0


def setup_companies(port: int, prefix: str, companies: int) -> list[str]:
    ids = [f"{prefix}-{i:03d}" for i in range(companies)]
    pool = gevent.pool.Pool(20)

    def one(company: str) -> None:
        status, body = call(
            port, "POST", "/admin/companies", {"id": company, "name": company, "link": "sandbox"}
        )
        assert status == 201, body
        assert call(port, "PUT", f"/api/assistant/{company}/config", config())[0] == 200
        assert call(port, "POST", f"/api/whatsapp/sessions/{company}/initialize")[0] == 202
        for _ in range(400):
            if call(port, "GET", f"/api/whatsapp/sessions/{company}/status")[1]["status"] == "qr":
                break
            gevent.sleep(0.05)
        assert call(port, "POST", f"/api/sandbox/{company}/scan")[0] == 202
        for _ in range(400):
            if call(port, "GET", f"/api/whatsapp/sessions/{company}/status")[1]["status"] == "connected":
                return
            gevent.sleep(0.05)
        raise RuntimeError(f"{company} did not connect")

    for company in ids:
        pool.spawn(one, company)
    pool.join(raise_error=True)
    return ids


def customers_for(companies: list[str], customers: int, run_index: int) -> list[Customer]:
    per = max(1, customers // len(companies))
    out = []
    for c, company in enumerate(companies):
        for j in range(per):
            out.append(Customer(company, f"3519{run_index}{c:03d}{j:04d}", TIMES[j % len(TIMES)]))
    return out[:customers]


def turn(port: int, replies: Replies, customer: Customer, run: Run, conn: http.client.HTTPConnection) -> None:
    text = customer.next_text()
    waiter = replies.expect(customer.company, customer.phone)
    started = time.perf_counter()
    try:
        status, _ = call(
            port,
            "POST",
            f"/api/sandbox/{customer.company}/inbound",
            {"from": customer.phone, "text": text},
            conn,
        )
    except OSError:
        status = 0
    if status != 202:
        run.failures += 1
        return
    try:
        at, answer = waiter.get(timeout=30)
    except gevent.Timeout:
        run.failures += 1
        return
    run.latencies.append((at - started) * 1000)
    customer.texts.append(answer)
    customer.turn += 1
    if customer.turn == 3 and (answer.startswith("Pronto!") or "Done!" in answer):
        customer.booked = True


def full_load(port: int, replies: Replies, people: list[Customer], run: Run) -> None:
    def converse(customer: Customer) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            while customer.turn < 3:
                before = customer.turn
                turn(port, replies, customer, run, conn)
                if customer.turn == before:
                    return
        finally:
            conn.close()

    pool = gevent.pool.Pool(IN_FLIGHT)  # customers talking at once (each waits for its replies)
    for customer in people:
        pool.spawn(converse, customer)
    pool.join()


def offered_load(port: int, replies: Replies, people: list[Customer], run: Run, rate: float) -> None:
    ready: gevent.queue.Queue[Customer] = gevent.queue.Queue()
    for customer in people:
        ready.put(customer)
    pool = gevent.pool.Pool(IN_FLIGHT)
    total = 3 * len(people)
    sent = 0
    start = time.perf_counter()

    def one(customer: Customer) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            before = customer.turn
            turn(port, replies, customer, run, conn)
            if customer.turn != before and customer.turn < 3:
                ready.put(customer)
        finally:
            conn.close()

    while sent < total:
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        try:
            customer = ready.get(timeout=30)
        except gevent.queue.Empty:
            break
        pool.spawn(one, customer)
        sent += 1
    pool.join()


def measure(node: Node, name: str, fn: Any) -> Run:
    run = Run(name)
    cpu0, own0, t0 = node.cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn(run)
    run.wall = time.perf_counter() - t0
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    run.node_cpu = (node.cpu() - cpu0) / run.wall
    run.client_cpu = ((own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)) / run.wall
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def report(run: Run, people: list[Customer]) -> None:
    run.booked = sum(c.booked for c in people)
    turns = len(run.latencies)
    print(
        f"{run.name:<34} turns {turns:5d} in {run.wall:6.2f}s = {turns / run.wall:7.1f} turns/s | "
        f"p50 {pct(run.latencies, 0.5):6.1f} ms p99 {pct(run.latencies, 0.99):7.1f} ms max {max(run.latencies or [0]):7.1f} ms | "
        f"booked {run.booked}/{len(people)} failures {run.failures} | node CPU {run.node_cpu:4.2f} cores, client {run.client_cpu:4.2f}",
        flush=True,
    )
    if turns:
        per_turn = run.node_cpu * run.wall / turns * 1000
        print(
            f"{'':<34} node CPU per turn {per_turn:.2f} ms -> {1000 / per_turn:.0f} turns/s per core the node gets "
            f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
            flush=True,
        )


def double_bookings(workdir: Path) -> int:
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/data/wafleet.db"
    from wafleet.storage import bookings
    from wafleet.storage.database import Database

    db = Database(os.environ["DATABASE_URL"])
    try:
        return bookings.double_bookings(db)
    finally:
        db.close()


def model_responder(latency: float) -> Any:
    tomorrow = (
        dt.datetime.now(dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo(TZ)).date() + dt.timedelta(days=1)
    ).isoformat()

    def answer(body: dict) -> Outcome:
        text = body["messages"][-1]["content"]
        if "corte" in text:
            out = reply("booking", language="pt", service="haircut")
        elif text == "amanhã":
            out = reply("booking", language="pt", date=tomorrow)
        else:
            raw = text.removeprefix("às ").replace("h", ":")
            hour, _, minute = raw.partition(":")
            out = reply("booking", language="pt", time=f"{int(hour):02d}:{int(minute or 0):02d}")
        return out.after(latency)

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--model-latency-ms", type=float, default=300.0)
    parser.add_argument(
        "--model-rate", type=float, default=100.0, help="offered turns/s of the second model run"
    )
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument(
        "--profile", metavar="FILE", help="run the node under cProfile, write its stats to FILE"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-assistant-"))
    fake = None
    node = None
    try:
        fake = FakeOpenAI(
            api_key="sk-bench", timezone=TZ, responder=model_responder(args.model_latency_ms / 1000)
        ).start()
        node = Node(
            workdir,
            {
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": fake.url,
                "WAFLEET_AI_CONCURRENCY": "2000",
                # the run measures the model path: no circuit breaker, and a timeout far above
                # the fake's latency (a fallback is counted and printed, not hidden)
                "WAFLEET_AI_BREAKER_FAILURES": "0",
                "WAFLEET_AI_TIMEOUT": "30000",
            },
            profile=os.path.abspath(args.profile) if args.profile else None,
        )
        replies = Replies(node.port)
        print(
            f"node pid {node.proc.pid}, {args.companies} companies x {args.customers // args.companies} customers per run, batch window 0",
            flush=True,
        )
        runs = []
        for index, (name, ai) in enumerate(
            [
                ("rules, full load", False),
                (f"rules, offered {args.rate:.0f} turns/s", False),
                ("model, full load", True),
                (f"model, offered {args.model_rate:.0f} turns/s", True),
            ]
        ):
            if ai and args.skip_model:
                continue
            t0 = time.perf_counter()
            companies = setup_companies(node.port, f"r{index}", args.companies)
            if not ai:
                for company in companies:
                    doc = config()
                    doc["ai"] = {"enabled": False, "model": None}
                    call(node.port, "PUT", f"/api/assistant/{company}/config", doc)
            print(f"  set up {len(companies)} companies in {time.perf_counter() - t0:.1f}s", flush=True)
            people = customers_for(companies, args.customers, index)
            if "offered" in name:
                rate = args.model_rate if ai else args.rate
                run = measure(
                    node, name, lambda r, p=people, q=rate: offered_load(node.port, replies, p, r, q)
                )
            else:
                run = measure(node, name, lambda r, p=people: full_load(node.port, replies, p, r))
            report(run, people)
            if ai:
                calls = fallbacks = 0.0
                for company in companies:
                    stats = call(node.port, "GET", f"/api/assistant/{company}/stats")[1]["ai"]
                    calls += stats["calls"]
                    fallbacks += stats["calls"] * stats["fallbackRate"]
                print(
                    f"{'':<34} model calls {calls:.0f}, answered by the rules after a failure {fallbacks:.0f}"
                )
            runs.append(run)
        replies.close()
        print(
            f"model latency configured: {args.model_latency_ms:.0f} ms; fake served {len(fake.requests)} calls, max in flight {fake.max_in_flight}"
        )
        print(f"double bookings: {double_bookings(workdir)}")
    finally:
        if node is not None:
            node.stop()
        if fake is not None:
            fake.stop()
        if os.environ.get("BENCH_KEEP"):
            print("kept", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
