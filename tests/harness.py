"""Run real wafleet nodes and real servers (PostgreSQL) for the tests, on loopback only."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll until ``predicate`` returns something truthy; fail with what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


def holds(predicate: Callable[[], Any], seconds: float, interval: float = 0.02, what: str = "") -> None:
    """Check ``predicate`` throughout ``seconds`` (an interval the behaviour under test defines,
    such as the longest backoff): proves that something did not happen."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if not value:
            raise AssertionError(f"{what or predicate} stopped holding; last value: {value!r}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


class Node:
    """One `wafleet serve` process with its own data folder, port and database."""

    def __init__(self, workdir: Path, database_url: str | None = None, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            WAFLEET_PORT=str(self.port),
            WAFLEET_HOST="127.0.0.1",
            WAFLEET_ADMIN_TOKEN=ADMIN_TOKEN,
            WAFLEET_DATA_DIR=str(workdir / "data"),
            WAFLEET_SANDBOX="true",
            WHATSAPP_LOG_LEVEL="warning",
            PYTHONUNBUFFERED="1",
        )
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"node-{self.port}.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.base_url, timeout=15.0)

    def start(self, timeout: float = 15.0) -> Node:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wafleet.http.main", "serve"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, timeout, 0.05, f"node on port {self.port} to be healthy")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return self.client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        self.kill()
        self.client.close()

    # -- API shortcuts -------------------------------------------------------------------------
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def create_company(self, company_id: str, **fields: Any) -> str:
        body = {"id": company_id, "name": fields.pop("name", company_id.title()), "link": "sandbox", **fields}
        r = self.client.post("/admin/companies", json=body, headers=self.admin())
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def status(self, company_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/whatsapp/sessions/{company_id}/status", headers=self.admin())
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, json: Any = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else self.admin()
        return self.client.post(path, json=json, headers=headers)

    def wait_status(self, company_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.status(company_id))["status"] == status and s,
            timeout,
            what=f"{company_id} to be {status}",
        )

    def connect(self, company_id: str) -> dict[str, Any]:
        """initialize -> qr -> sandbox scan -> connected."""
        assert self.post(f"/api/whatsapp/sessions/{company_id}/initialize").status_code == 202
        self.wait_status(company_id, "qr")
        r = self.post(f"/api/sandbox/{company_id}/scan")
        assert r.status_code == 202, r.text
        return self.wait_status(company_id, "connected")


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class Postgres:
    """A throwaway PostgreSQL server on 127.0.0.1 (run as the postgres user when we are root)."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run .ci/setup (apt-get install postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="wafleet-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"]
        )
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "pg.log"),
                "-w",
                "-t",
                "30",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.dir} -F -c max_connections=300",
                "start",
            ]
        )
        self.counter = 0

    def _run(self, cmd: list[str]) -> None:
        subprocess.run(
            self.as_user + cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir
        )

    def create_database(self) -> str:
        import psycopg2

        self.counter += 1
        name = f"wafleet_test_{os.getpid()}_{self.counter}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
