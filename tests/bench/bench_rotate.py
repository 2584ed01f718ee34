"""Key rotation benchmark: how fast ``wafleet rotate-keys`` re-encrypts stored message texts.

    python tests/bench/bench_rotate.py [--rows 100000] [--batch 500] [--database-url URL]

Seeds ``--rows`` sealed message texts (about 80 characters each) under an old key into a fresh
SQLite file in a temporary folder (or the given database, which must be empty), then runs the real
CLI twice with ``NEW,OLD``: the first run re-encrypts every row, the second finds them all current
(that is the cost of re-running a rotation that was stopped: one decryption per row). Prints
rows per second of each run. Not a pytest test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root

from wafleet.storage.crypto import Cipher, TextSeal, generate_key  # noqa: E402
from wafleet.storage.database import Database  # noqa: E402
from wafleet.storage.models import Message  # noqa: E402
from wafleet.storage.schema import migrate  # noqa: E402


def seed(url: str, rows: int, key: str) -> None:
    db = Database(url)
    migrate(db)
    seal = TextSeal(Cipher.from_key(key), True)
    text = "Hello, I would like to book a haircut tomorrow at 3pm, if there is a free slot. "
    with db.work():
        for start in range(0, rows, 1000):
            batch = [
                {
                    "company": f"c{i % 100}",
                    "direction": "in",
                    "peer": "5511977776666",
                    "type": "text",
                    "text": seal.seal(f"c{i % 100}", text),
                    "at": i,
                }
                for i in range(start, min(rows, start + 1000))
            ]
            with db.atomic():
                Message.insert_many(batch).execute()
    db.close()


def run(url: str, keys: str, batch: int, cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "DATABASE_URL": url, "WAFLEET_ENCRYPTION_KEY": keys, "WHATSAPP_LOG_LEVEL": "warning"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "rotate-keys", "--batch", str(batch)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rotate-keys failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("message.text:"))
    return elapsed, line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="wafleet-bench-rotate-"))
    url = args.database_url or f"sqlite:///{workdir}/wafleet.db"
    old, new = generate_key(), generate_key()
    try:
        t0 = time.perf_counter()
        seed(url, args.rows, old)
        print(f"seeded {args.rows} sealed texts in {time.perf_counter() - t0:.1f}s ({url.split(':')[0]})")
        for label in ("rotate", "re-run"):
            elapsed, line = run(url, f"{new},{old}", args.batch, workdir)
            print(
                f"{label}: {elapsed:.1f}s, {args.rows / elapsed:,.0f} rows/s (process start included)  [{line}]"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
