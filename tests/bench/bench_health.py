"""Health-monitor benchmark: status latency with N connected sessions, monitor idle vs probing.

    python tests/bench/bench_health.py [--companies 10000] [--interval-ms 5000] [--seconds 20]

One node (subprocess, SQLite in a temporary folder, 127.0.0.1) builds the fleet (create,
initialize, scan: N sandbox sessions connected) with the health monitor idle (a one-hour
interval). Each phase (``--phases``, default idle,probe,idle) then reads
``GET /api/whatsapp/sessions/{id}/status`` of random companies for ``--seconds`` and reports
p50/p99; between phases the node is stopped (SIGTERM: sessions persist) and started again on the
same data, the monitor idle or probing every ``--interval-ms`` (the boot restores every session
from its stored login; measuring starts once all N are connected, one round later). The probes
per second come from ``/api/whatsapp/metrics``. Same machine, same run, same fleet: the idle
phases are the baseline, and two of them, before and after, show how much the machine itself
(other processes) moved the figures meanwhile.

Not a pytest test (the file name is not test_*.py). Bounded loops only; the node is killed at
the end whatever happens.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_fleet import Client, NodeProcess, Phase, check, latency_text, percentile, wait_metric


def status_run(
    client: Client, ids: list[str], seconds: float, concurrency: int
) -> list[tuple[int, Any, float]]:
    deadline = time.perf_counter() + seconds

    def reader(seed: int) -> list[tuple[int, Any, float]]:
        own = random.Random(seed)
        out = []
        while time.perf_counter() < deadline:
            cid = ids[own.randrange(len(ids))]
            status, payload, took = client.call("GET", f"/api/whatsapp/sessions/{cid}/status")
            ok = status == 200 and payload.get("status") == "connected"
            out.append((200 if ok else status or -1, None if ok else payload, took))
        return out

    per_thread = client.run_all(list(range(concurrency)), reader)
    return [r for rs in per_thread for r in rs]


def figures(client: Client) -> dict[str, Any]:
    status, payload, _ = client.call("GET", "/api/whatsapp/metrics")
    return payload if status == 200 else {}


def bench(args: argparse.Namespace) -> int:
    n = args.companies
    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-health-", dir=args.tmpdir))
    idle_env = {"WHATSAPP_HEALTH_CHECK_INTERVAL": "3600000", "STATSD_HOST": ""}
    node = NodeProcess(workdir, max_sessions=n + 100, extra_env=idle_env)
    client: Client | None = None
    results: dict[str, list[float]] = {}  # phase kind -> status p99 (ms) of each such phase
    try:
        node.start()
        client = Client(node.port, args.concurrency)
        ids = [f"health{i:06d}" for i in range(n)]
        t0 = time.perf_counter()
        check(
            "create",
            client.run_all(
                ids,
                lambda c: client.call("POST", "/admin/companies", {"id": c, "name": c, "link": "sandbox"}),
            ),
            201,
        )
        check(
            "initialize",
            client.run_all(ids, lambda c: client.call("POST", f"/api/whatsapp/sessions/{c}/initialize")),
            202,
        )
        wait_metric(client, node, "qr", n, args.timeout)
        check("scan", client.run_all(ids, lambda c: client.call("POST", f"/api/sandbox/{c}/scan")), 202)
        wait_metric(client, node, "connected", n, args.timeout)
        print(
            f"{n} sessions connected in {time.perf_counter() - t0:.1f} s (node pid {node.pid}, data {workdir})"
        )

        first = True
        for index, kind in enumerate(args.phases.split(",")):
            probing = kind == "probe"
            phase = f"{chr(ord('A') + index)} {'probing /' + str(args.interval_ms) + ' ms' if probing else 'monitor idle'}"
            if not first or probing:  # restart on the same data with this phase's monitor
                env = {"WHATSAPP_HEALTH_CHECK_INTERVAL": str(args.interval_ms)} if probing else {}
                client.close()
                node.proc.terminate()
                node.proc.wait(120)
                node = NodeProcess(workdir, max_sessions=n + 100, extra_env={**idle_env, **env})
                node.start(timeout=120)
                client = Client(node.port, args.concurrency)
                t1 = time.perf_counter()
                wait_metric(client, node, "connected", n, args.timeout)
                print(f"restarted ({kind}): {n} restored and connected in {time.perf_counter() - t1:.1f} s")
                if probing:
                    time.sleep(args.interval_ms / 1000)  # one whole round before measuring
            first = False
            before = figures(client)
            load = os.getloadavg()[0]
            with Phase(node) as p:
                reads = status_run(client, ids, args.seconds, args.concurrency)
            after = figures(client)
            check("status", reads, 200)
            probes = after.get("healthProbes", 0) - before.get("healthProbes", 0)
            zombies = after.get("zombies", 0)
            results.setdefault(kind, []).append(1000 * percentile(sorted(r[2] for r in reads), 99))
            print(
                f"  {phase}: {len(reads) / p.seconds:6.0f} status/s  {latency_text(reads)}  "
                f"probes {probes / p.seconds:6.0f}/s  zombies {zombies}  ({p.cpu_text()}; "
                f"machine load {load:.1f} on {os.cpu_count()} cores)"
            )
        summary = ", ".join(
            f"{kind}: " + " / ".join(f"{v:.1f}" for v in values) for kind, values in results.items()
        )
        print(f"\nstatus p99 (ms) with {n} connected sessions, by phase kind: {summary}")
        return 0
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
        node.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, default=10000)
    parser.add_argument("--interval-ms", type=int, default=5000, help="the probing phase's health interval")
    parser.add_argument("--seconds", type=float, default=20.0, help="each status run's length")
    parser.add_argument(
        "--phases",
        default="idle,probe,idle",
        help="idle|probe, comma-separated: A/B/A shows the machine's drift",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    return bench(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
