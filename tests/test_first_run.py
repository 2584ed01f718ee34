"""A new user's first run: the demo token survives a restart, a busy port says what to change,
``--version`` works, refusals name the setting to fix, and company ids ignore case."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness import Node, free_port, wait_for

TOKEN_LINE = re.compile(r"demo admin token[^:]*: (\S+)")


def _env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAFLEET_", "WHATSAPP_", "DATABASE_URL"))}
    env.update(
        WAFLEET_PORT=str(port),
        WAFLEET_HOST="127.0.0.1",
        WAFLEET_DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _wafleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "wafleet.http.main", *args]


class Demo:
    """``wafleet serve --demo`` as a user starts it, with what it printed."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.out = tmp_path / f"demo-{port}-{len(list(tmp_path.glob('demo-*')))}.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                _wafleet("serve", "--demo"),
                cwd=tmp_path,
                env=_env(tmp_path, port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"
        wait_for(self._up, 20, 0.05, "the demo node to answer")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.out.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def token(self) -> str:
        found = TOKEN_LINE.findall(self.out.read_text())
        assert len(found) == 1, self.out.read_text()
        return found[0]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_the_demo_keeps_its_admin_token_across_a_kill_9(tmp_path: Path) -> None:
    port = free_port()
    first = Demo(tmp_path, port)
    try:
        token = first.token()
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(
            f"{first.url}/admin/companies", json={"id": "salon-rosa", "name": "Salon Rosa"}, headers=auth
        )
        assert r.status_code == 201, r.text
        kept = tmp_path / "data" / "demo-admin-token"
        assert kept.read_text().strip() == token
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    finally:
        first.kill()

    again = Demo(tmp_path, port)  # the README's kill -9 step
    try:
        assert again.token() == token  # printed again, the same
        r = httpx.get(f"{again.url}/admin/companies/salon-rosa", headers=auth)
        assert r.status_code == 200, r.text
    finally:
        again.kill()


@pytest.mark.parametrize("args", [["serve"], ["serve", "--demo"]])
def test_a_busy_port_is_one_line_naming_the_address_and_the_variable(tmp_path: Path, args: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, port, WAFLEET_ADMIN_TOKEN="test-admin-token-0123456789")
        if "--demo" in args:
            del env["WAFLEET_ADMIN_TOKEN"]
        done = subprocess.run(_wafleet(*args), cwd=tmp_path, env=env, capture_output=True, timeout=60)
    printed = (done.stdout + done.stderr).decode()
    assert done.returncode != 0
    lines = printed.strip().splitlines()
    assert len(lines) == 1, printed
    assert f"127.0.0.1:{port}" in lines[0] and "WAFLEET_PORT" in lines[0] and "WAFLEET_HOST" in lines[0]
    assert "token" not in printed and "Traceback" not in printed


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = subprocess.run(_wafleet("--version"), cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == f"wafleet {version('wafleet')}"


def test_a_cloud_company_without_an_encryption_key_is_told_which_variable_to_set(node: Node) -> None:
    body = {
        "id": "clinic",
        "name": "Clinic",
        "link": "cloud",
        "cloud": {"phoneNumberId": "106540352242922", "accessToken": "EAAG-token"},
    }
    r = node.client.post("/admin/companies", json=body, headers=node.admin())
    assert r.status_code == 400
    assert "WAFLEET_ENCRYPTION_KEY" in r.json()["error"]["message"], r.text


def test_company_ids_are_unique_regardless_of_case(node_factory, database_url: str) -> None:
    node: Node = node_factory(database_url).start()
    node.create_company("salon-rosa")
    for clash in ("SALON-ROSA", "Salon-Rosa"):
        r = node.client.post(
            "/admin/companies", json={"id": clash, "name": "Other", "link": "sandbox"}, headers=node.admin()
        )
        assert r.status_code == 409, r.text
        assert "salon-rosa" in r.json()["error"]["message"]
    ids = [c["id"] for c in node.client.get("/admin/companies", headers=node.admin()).json()["companies"]]
    assert ids == ["salon-rosa"]


def _walk_through_to_pairing() -> str:
    """The README's curl walk-through, from the three stores to the pairing code, as written
    (less the command that starts the server and the event stream that never ends)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Walk-through with curl", 1)[1].split("Nobody scans?", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 3, "the walk-through changed shape: update this test"
    lines = [
        line
        for block in blocks
        if "wafleet serve" not in block
        for line in block.splitlines()
        if "/events" not in line
    ]
    return "\n".join(lines)


def test_the_readme_pairing_code_example_runs_in_the_order_written(tmp_path: Path) -> None:
    demo = Demo(tmp_path, free_port())
    try:
        env = dict(os.environ, ADMIN=demo.token(), W=demo.url)
        done = subprocess.run(
            ["bash", "-eu", "-c", _walk_through_to_pairing()],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )
        printed = done.stdout.decode()
        assert done.returncode == 0, printed + done.stderr.decode()
        assert '"error"' not in printed, printed
        assert '"action": "enter_code", "accepted": true' in printed, printed
        admin = {"Authorization": f"Bearer {demo.token()}"}
        status = wait_for(
            lambda: (
                (
                    s := httpx.get(
                        f"{demo.url}/api/whatsapp/sessions/clinica-sol/status", headers=admin
                    ).json()
                )["status"]
                == "connected"
                and s
            ),
            what="clinica-sol to connect with its pairing code",
        )
        assert "pairing" in [h["status"] for h in status["history"]]
    finally:
        demo.kill()
