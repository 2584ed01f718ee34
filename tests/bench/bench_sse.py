"""SSE benchmark: N idle server-sent-event streams on one node, then the fan-out of live events.

    python tests/bench/bench_sse.py [--streams 1000] [--companies 100] [--heartbeat-ms 2000]

The issue: "Thousands of idle streams must not cost a greenlet spinning each: measure 1,000 open
streams." Starts one ``wafleet serve`` node (subprocess, temporary data folder, SQLite, 127.0.0.1,
sandbox link, a short heartbeat so that heartbeats happen during the idle window), creates the
companies, and then:

1. idle baseline with no stream: RSS (settled), open fds, node CPU over the idle window;
2. opens N streams: most on ``/api/whatsapp/sessions/{id}/events`` spread round-robin over the
   companies, each with that company's own token, plus ``--fleet-streams`` admin streams on
   ``/api/whatsapp/events``; RSS (settled) and fds with all of them open -> KiB per stream;
3. the idle window with all streams open: node CPU (utime + stime from /proc/PID/stat) and the
   heartbeat comments each stream received (expected ~ window / heartbeat);
4. fan-out: for ``--trials`` companies, ``initialize`` (-> status ``starting``) and, once the QR
   is out, the sandbox ``scan`` (-> status ``connected``); latency = from just before the API call
   to the event's arrival, on every stream of that company and on every fleet stream; then checks
   that streams of the other companies received no event at all, that every fleet stream saw the
   same event ids and every company stream exactly the fleet's ids of its company;
5. closes every client socket and waits until the node's open fds come back to the baseline (an
   idle stream only notices a gone client when its next heartbeat write fails).

The client is one thread in this process: raw non-blocking sockets on an epoll selector, with a
tiny HTTP/1.1 chunked + SSE parser; arrival times are taken when recv() returns. The report shows
the client's CPU too, so that one can see it is not the bottleneck. The soft RLIMIT_NOFILE is
raised to the hard limit in this process before the node starts, so that the node inherits it
(the report reads the node's /proc/PID/limits to show it did).

Not a pytest test (the file name is not test_*.py). Bounded loops only; the node is killed at the
end whatever happens.
"""

from __future__ import annotations

import argparse
import codecs
import functools
import http.client
import json
import os
import resource
import selectors
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_fleet import (  # noqa: E402  (a sibling script, not a package)
    ADMIN_TOKEN,
    CLK_TCK,
    HOST,
    NodeProcess,
    _exchange,
    _own_cpu,
    percentile,
)

OPEN_BATCH = 50  # streams connected before waiting for their response headers (listen backlog)


# -- the SSE client ----------------------------------------------------------------------------
@dataclass(eq=False)
class Arrival:
    at: float
    event: str
    id: int | None
    company_id: str | None
    state: str | None


@dataclass(eq=False)
class Stream:
    index: int
    company_id: str | None  # None: the admin's fleet stream
    sock: socket.socket
    opened_at: float
    status: int | None = None
    headers_at: float | None = None
    chunked: bool = False
    eof_at: float | None = None
    error: str | None = None
    events: list[Arrival] = field(default_factory=list)
    heartbeats: list[float] = field(default_factory=list)
    comments: int = 0
    # parser state
    _raw: bytearray = field(default_factory=bytearray)
    _chunk_left: int = -1  # -1: expecting a size line; 0 after data: expecting CRLF; -2: done
    _text: str = ""
    _fields: dict[str, str] = field(default_factory=dict)
    _decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    # feeding ----------------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        self._raw += data
        if self.status is None:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                if len(self._raw) > 65536:
                    self.error = "response headers too long"
                return
            head = bytes(self._raw[:end]).decode("latin-1").split("\r\n")
            del self._raw[: end + 4]
            try:
                self.status = int(head[0].split()[1])
            except (IndexError, ValueError):
                self.status = -1
                self.error = f"bad status line {head[0][:80]!r}"
            self.headers_at = now
            self.chunked = any(
                h.lower().startswith("transfer-encoding:") and "chunked" in h.lower() for h in head[1:]
            )
        if self.chunked:
            self._dechunk(now)
        else:
            self._body(bytes(self._raw), now)
            self._raw.clear()

    def _dechunk(self, now: float) -> None:
        raw = self._raw
        while raw:
            if self._chunk_left == -2:
                raw.clear()
                return
            if self._chunk_left == -1:
                end = raw.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(raw[:end]).split(b";")[0].strip() or b"0", 16)
                del raw[: end + 2]
                if size == 0:
                    self._chunk_left = -2
                    return
                self._chunk_left = size
            elif self._chunk_left > 0:
                take = min(self._chunk_left, len(raw))
                self._body(bytes(raw[:take]), now)
                del raw[:take]
                self._chunk_left -= take
            else:  # 0: the CRLF after a chunk's data
                if len(raw) < 2:
                    return
                del raw[:2]
                self._chunk_left = -1

    def _body(self, data: bytes, now: float) -> None:
        self._text += self._decoder.decode(data)
        while True:
            nl = self._text.find("\n")
            if nl < 0:
                return
            line = self._text[:nl].rstrip("\r")
            self._text = self._text[nl + 1 :]
            self._line(line, now)

    def _line(self, line: str, now: float) -> None:
        if line == "":
            fields, self._fields = self._fields, {}
            if "event" in fields:
                try:
                    data = json.loads(fields.get("data", "{}"))
                except ValueError:
                    data = {}
                raw_id = fields.get("id")
                self.events.append(
                    Arrival(
                        now,
                        fields["event"],
                        int(raw_id) if raw_id and raw_id.isdigit() else None,
                        data.get("companyId"),
                        data.get("state"),
                    )
                )
        elif line.startswith(":"):
            self.comments += 1
            if line[1:].strip() == "keep-alive":
                self.heartbeats.append(now)
        else:
            name, _, value = line.partition(":")
            self._fields[name] = value[1:] if value.startswith(" ") else value


class SseFleetClient:
    """Many SSE streams read by one thread on an epoll selector."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: list[Stream] = []
        self.selector = selectors.DefaultSelector()
        self._pending: list[Stream] = []
        # a new stream wakes the reader at once, so that its headers are timed from the request
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.cpu_thread = 0.0
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)
        self._thread.start()

    def open(self, company_id: str | None, token: str) -> Stream:
        path = "/api/whatsapp/events" if company_id is None else f"/api/whatsapp/sessions/{company_id}/events"
        sock = socket.create_connection((HOST, self.port), timeout=10)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        )
        opened = time.perf_counter()
        sock.sendall(request.encode())
        sock.setblocking(False)
        stream = Stream(len(self.streams), company_id, sock, opened)
        self.streams.append(stream)
        with self._lock:
            self._pending.append(stream)
        self._wake_w.send(b"x")
        return stream

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending, self._pending = self._pending, []
            for stream in pending:
                self.selector.register(stream.sock, selectors.EVENT_READ, stream)
            for key, _ in self.selector.select(timeout=0.05):
                stream = key.data
                if stream is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                now = time.perf_counter()
                while True:
                    try:
                        data = stream.sock.recv(65536)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        stream.error = f"{type(exc).__name__}: {exc}"
                        data = b""
                    if not data:
                        stream.eof_at = now
                        self.selector.unregister(stream.sock)
                        break
                    stream.feed(data, now)
        self.cpu_thread = time.thread_time()

    def close_all(self) -> None:
        with self._lock:
            self._pending.clear()
        self._stop.set()
        self._thread.join(5)
        for stream in self.streams:
            try:
                stream.sock.close()
            except OSError:
                pass
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()


# -- helpers -----------------------------------------------------------------------------------
class Api:
    """One keep-alive connection for the control calls (this thread only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        for attempt in (1, 2):
            try:
                return _exchange(self.conn, method, path, body, token)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def raise_nofile(wanted: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = hard if hard == resource.RLIM_INFINITY else min(hard, max(wanted, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def node_nofile(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                return " / ".join(line.split()[3:5])
    return "?"


def node_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def ms_stats(values: list[float]) -> str:
    if not values:
        return "no samples"
    v = sorted(values)
    return (
        f"p50 {1000 * percentile(v, 50):6.1f} ms  p99 {1000 * percentile(v, 99):6.1f} ms  "
        f"max {1000 * v[-1]:6.1f} ms  (n={len(v)})"
    )


def idle_window(node: NodeProcess, seconds: float) -> tuple[float, float, float, float, float]:
    """(t0, t1, node CPU s, client CPU s (whole process), wall s) over a sleep of ``seconds``."""
    node0, own0, t0 = node.cpu_seconds(), _own_cpu(), time.perf_counter()
    time.sleep(seconds)
    node1, own1, t1 = node.cpu_seconds(), _own_cpu(), time.perf_counter()
    return t0, t1, node1 - node0, own1 - own0, t1 - t0


def wait_until(predicate: Any, timeout: float, interval: float = 0.005) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def first_match(stream: Stream, company_id: str, state: str, after: float) -> Arrival | None:
    for arrival in stream.events:
        if (
            arrival.at >= after
            and arrival.company_id == company_id
            and arrival.event == "status"
            and arrival.state == state
        ):
            return arrival
    return None


def all_arrived(streams: list[Stream], company_id: str, state: str, after: float) -> bool:
    return all(first_match(s, company_id, state, after) for s in streams)


# -- the benchmark -----------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> int:
    n, n_companies = args.streams, args.companies
    n_fleet = args.fleet_streams if args.fleet_streams is not None else max(1, n // 100)
    n_fleet = min(n_fleet, n)
    n_company_streams = n - n_fleet
    heartbeat = args.heartbeat_ms / 1000
    problems: list[str] = []

    soft, hard = raise_nofile(n + 256)
    print(f"RLIMIT_NOFILE (this client, inherited by the node): soft {soft}, hard {hard}")
    if soft != resource.RLIM_INFINITY and soft < n + 64:
        print(f"  !! only {soft} file descriptors for {n} streams: expect failures")

    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-sse-", dir=args.tmpdir))
    node = NodeProcess(
        workdir,
        max_sessions=n_companies + 100,
        extra_env={
            "WAFLEET_SSE_HEARTBEAT": str(args.heartbeat_ms),
            # room for every stream of the run: the caps are not what this measures
            "WAFLEET_HTTP_POOL": str(2 * n + 100),
            "WAFLEET_SSE_MAX_STREAMS": str(n + n_fleet + 10),
            "WAFLEET_SSE_MAX_PER_COMPANY": str(n // max(1, n_companies) + 10),
        },
    )
    client: SseFleetClient | None = None
    api: Api | None = None
    try:
        node.start()
        print(
            f"node pid {node.pid} on {HOST}:{node.port}, data in {workdir} (SQLite), "
            f"heartbeat {args.heartbeat_ms} ms, node max open files {node_nofile(node.pid)}"
        )
        api = Api(node.port)

        # companies ---------------------------------------------------------------------------
        ids = [f"sse{i:05d}" for i in range(n_companies)]
        tokens: dict[str, str] = {}
        t = time.perf_counter()
        for cid in ids:
            status, payload = api.call(
                "POST", "/admin/companies", {"id": cid, "name": cid, "link": "sandbox"}
            )
            if status != 201:
                raise RuntimeError(f"create {cid}: {status} {str(payload)[:200]}")
            tokens[cid] = payload["token"]
        print(f"{n_companies} companies created in {time.perf_counter() - t:.2f} s")
        # warm the stream route (first-request imports) with one stream that we close again
        warm = socket.create_connection((HOST, node.port), timeout=10)
        warm.sendall(
            f"GET /api/whatsapp/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
        )
        warm.recv(4096)
        warm.close()

        # 1. idle baseline ---------------------------------------------------------------------
        rss0, waited0 = node.settled_rss()
        fds0 = node_fds(node.pid)
        _, _, cpu0, _, wall0 = idle_window(node, args.idle_seconds)
        print(
            f"\nno streams:   RSS {rss0 / 1024:7.1f} MiB (settled after {waited0:.0f} s), "
            f"{fds0} open fds, node CPU {100 * cpu0 / wall0:.2f} % over {wall0:.1f} s idle"
        )

        # 2. open the streams ------------------------------------------------------------------
        client = SseFleetClient(node.port)
        plan: list[str | None] = [ids[i % n_companies] for i in range(n_company_streams)]
        plan += [None] * n_fleet
        own0, node_cpu0 = _own_cpu(), node.cpu_seconds()
        t_open = time.perf_counter()
        for start in range(0, n, OPEN_BATCH):
            batch = [
                client.open(cid, tokens[cid] if cid is not None else ADMIN_TOKEN)
                for cid in plan[start : start + OPEN_BATCH]
            ]
            if not wait_until(lambda b=batch: all(s.status is not None or s.eof_at for s in b), 15):
                raise RuntimeError(f"streams {start}..{start + len(batch)}: no response headers in 15 s")
        open_seconds = time.perf_counter() - t_open
        open_node_cpu, open_own_cpu = node.cpu_seconds() - node_cpu0, _own_cpu() - own0
        wait_until(lambda: all(s.comments >= 1 or s.eof_at for s in client.streams), 10)
        statuses = Counter(s.status for s in client.streams)
        if statuses != Counter({200: n}):
            problems.append(f"stream statuses {dict(statuses)}")
        open_lat = [s.headers_at - s.opened_at for s in client.streams if s.headers_at is not None]
        print(
            f"\n{n} streams opened ({n_company_streams} company streams over {n_companies} companies "
            f"with their own tokens, {n_fleet} admin fleet streams) in {open_seconds:.2f} s "
            f"(node CPU {open_node_cpu:.2f} s, client CPU {open_own_cpu:.2f} s); statuses {dict(statuses)}"
        )
        print(f"  request -> response headers: {ms_stats(open_lat)}")

        rss1, waited1 = node.settled_rss()
        fds1 = node_fds(node.pid)
        print(
            f"with {n} streams: RSS {rss1 / 1024:7.1f} MiB (settled after {waited1:.0f} s), {fds1} open fds "
            f"(+{fds1 - fds0})\n  RSS per open stream: {(rss1 - rss0) / n:.1f} KiB"
        )

        # 3. idle window with all streams open -------------------------------------------------
        eof_before = sum(1 for s in client.streams if s.eof_at)
        t0, t1, cpu1, own1, wall1 = idle_window(node, args.idle_seconds)
        per_stream = [sum(1 for h in s.heartbeats if t0 <= h < t1) for s in client.streams]
        events_idle = sum(1 for s in client.streams for e in s.events if t0 <= e.at < t1)
        hb_total = sum(per_stream)
        print(
            f"\nidle window {wall1:.1f} s with {n} streams open: node CPU {cpu1:.3f} s = "
            f"{100 * cpu1 / wall1:.2f} % of a core (vs {100 * cpu0 / wall0:.2f} % with no stream); "
            f"client CPU {100 * own1 / wall1:.2f} % (CPU read in ticks of {1000 / CLK_TCK:.0f} ms)"
        )
        print(
            f"  heartbeats per stream: min {min(per_stream)}, median {statistics.median(per_stream):.0f}, "
            f"max {max(per_stream)} (expected ~{wall1 / heartbeat:.1f}); total {hb_total} "
            f"= {hb_total / wall1:.0f}/s"
            + (
                f"; node CPU per heartbeat {1e6 * max(cpu1 - cpu0 * wall1 / wall0, 0) / hb_total:.0f} us "
                "above the no-stream baseline"
                if hb_total
                else ""
            )
        )
        print(f"  events during the idle window: {events_idle}; streams ended so far: {eof_before}")
        if min(per_stream) < int(wall1 / heartbeat) - 1:
            problems.append(f"some stream got only {min(per_stream)} heartbeats in {wall1:.1f} s")

        # 4. fan-out ---------------------------------------------------------------------------
        by_company: dict[str | None, list[Stream]] = {}
        for s in client.streams:
            by_company.setdefault(s.company_id, []).append(s)
        fleet = by_company.get(None, [])
        trial_ids = ids[: min(args.trials, n_companies)]
        lat: dict[tuple[str, str], list[float]] = {}  # (trigger, company|fleet) -> latencies
        api_lat: dict[str, list[float]] = {}
        missing = 0
        print(
            f"\nfan-out: {len(trial_ids)} companies x (initialize -> 'starting', scan -> 'connected'); "
            f"each to {len(by_company.get(trial_ids[0], []))} company streams + {len(fleet)} fleet streams"
        )
        for cid in trial_ids:
            for trigger, path, state in (
                ("initialize", f"/api/whatsapp/sessions/{cid}/initialize", "starting"),
                ("scan", f"/api/sandbox/{cid}/scan", "connected"),
            ):
                if trigger == "scan":  # the QR must be out (on every stream) before the scan
                    targets_qr = by_company.get(cid, []) + fleet
                    if not wait_until(functools.partial(all_arrived, targets_qr, cid, "qr", 0.0), 10, 0.01):
                        problems.append(f"{cid}: no 'qr' status on every stream within 10 s")
                targets = [(s, "company") for s in by_company.get(cid, [])] + [(s, "fleet") for s in fleet]
                t_call = time.perf_counter()
                status, payload = api.call("POST", path, token=tokens[cid])
                api_lat.setdefault(trigger, []).append(time.perf_counter() - t_call)
                if status != 202:
                    problems.append(f"{trigger} {cid}: {status} {str(payload)[:160]}")
                    continue
                wait_until(
                    functools.partial(all_arrived, [s for s, _ in targets], cid, state, t_call), 10, 0.002
                )
                for s, kind in targets:
                    arrival = first_match(s, cid, state, t_call)
                    if arrival is None:
                        missing += 1
                    else:
                        lat.setdefault((trigger, kind), []).append(arrival.at - t_call)
        for trigger in ("initialize", "scan"):
            print(f"  {trigger:10s} API call        {ms_stats(api_lat.get(trigger, []))}")
            for kind in ("company", "fleet"):
                print(f"  {trigger:10s} -> {kind:7s} stream {ms_stats(lat.get((trigger, kind), []))}")
        both = [v for vs in lat.values() for v in vs]
        print(f"  all deliveries             {ms_stats(both)};  missing deliveries: {missing}")
        if missing:
            problems.append(f"{missing} deliveries missing after 10 s")

        # isolation and completeness
        time.sleep(max(0.5, args.settle_seconds))  # let the trailing events (qr of the scan) arrive
        others = [s for cid in ids[len(trial_ids) :] for s in by_company.get(cid, [])]
        leaked = sum(len(s.events) for s in others)
        wrong = sum(
            1 for cid in trial_ids for s in by_company.get(cid, []) for e in s.events if e.company_id != cid
        )
        fleet_ids = [tuple(e.id for e in s.events) for s in fleet]
        fleet_same = len(set(fleet_ids)) <= 1
        reference = fleet[0].events if fleet else []
        mismatch = 0
        for cid in trial_ids:
            expected = [e.id for e in reference if e.company_id == cid]
            mismatch += sum(1 for s in by_company.get(cid, []) if [e.id for e in s.events] != expected)
        untriggered = Counter(e.company_id for e in reference if e.company_id not in set(trial_ids))
        print(
            f"  streams of the {n_companies - len(trial_ids)} other companies ({len(others)} streams): "
            f"{leaked} events received (must be 0)"
        )
        print(
            f"  events of another company on a triggered company's stream: {wrong}; fleet streams identical: "
            f"{fleet_same} ({len(reference)} events each); company streams != fleet's ids of that company: "
            f"{mismatch}; fleet events of untriggered companies: {sum(untriggered.values())}"
        )
        if leaked or wrong or not fleet_same or mismatch:
            problems.append("isolation / completeness check failed (see above)")
        ended = [s for s in client.streams if s.eof_at]
        if ended:
            problems.append(f"{len(ended)} streams ended by the node during the run")

        # 5. close every client socket ---------------------------------------------------------
        rss2 = node.rss_kib()
        client.close_all()
        t_close = time.perf_counter()
        limit = 3 * heartbeat + 5
        back = wait_until(lambda: node_fds(node.pid) <= fds0 + 2, limit, 0.05)
        took = time.perf_counter() - t_close
        fds3 = node_fds(node.pid)
        rss3, _ = node.settled_rss(max_wait=10)
        print(
            f"\nclosed all {n} client sockets: node fds {fds1} -> {fds3} (baseline {fds0}) "
            f"{'after' if back else 'still not back after'} {took:.1f} s; RSS {rss2 / 1024:.1f} -> "
            f"{rss3 / 1024:.1f} MiB (no-stream baseline {rss0 / 1024:.1f} MiB)"
        )
        if not back:
            problems.append(f"node still holds {fds3 - fds0} extra fds {limit:.0f} s after the clients left")
        print(f"client reader thread CPU over the whole run: {client.cpu_thread:.2f} s")
        log_lines = node.log_path.read_text(errors="replace").splitlines()
        noisy = [ln for ln in log_lines if "Traceback" in ln or "ERROR" in ln or "Error" in ln]
        print(f"node log: {len(log_lines)} lines, {len(noisy)} error/traceback lines")
        for ln in noisy[:5]:
            print(f"  | {ln[:200]}")
        if not node.alive():
            problems.append("node died")

        print("\nRESULT " + ("OK" if not problems else "PROBLEMS: " + "; ".join(problems)))
        return 0 if not problems else 1
    except RuntimeError as exc:
        print(f"bench failed: {exc}\n{node.log_tail()}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close_all()
        if api is not None:
            api.close()
        if args.keep:
            print(f"node log: {node.log_path}")
        node.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="SSE streams to hold open")
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--fleet-streams", type=int, default=None, help="admin streams (default streams/100)")
    parser.add_argument("--heartbeat-ms", type=int, default=2000, help="WAFLEET_SSE_HEARTBEAT of the node")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=20, help="companies whose events are triggered")
    parser.add_argument("--settle-seconds", type=float, default=1.0, help="wait before the isolation check")
    parser.add_argument("--tmpdir", default=None, help="where the node's data folder goes")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and log")
    args = parser.parse_args()
    if args.streams < 1 or args.companies < 1 or args.trials < 1 or args.heartbeat_ms < 100:
        parser.error("--streams, --companies, --trials must be >= 1 and --heartbeat-ms >= 100")
    sys.exit(bench(args))


if __name__ == "__main__":
    main()
