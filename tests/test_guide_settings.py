"""The configuration guide's variables, as an operator sets them: refused at start when unsafe,
and visible in what a running node does (default link, connect method, log file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Node, wait_for


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "WAFLEET_"))}
    return subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "serve"],
        cwd=tmp_path,
        env={**base, "WAFLEET_ADMIN_TOKEN": "test-admin-token-0123456789", "WAFLEET_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WHATSAPP_VALIDATE_WEBHOOKS": "false"},
            "WHATSAPP_VALIDATE_WEBHOOKS: false is only allowed with the sandbox",
        ),
        (
            {"WHATSAPP_PROVIDER": "whatsapp-web.js"},
            "WHATSAPP_PROVIDER: expected one of baileys, web, cloud, sandbox",
        ),
        (
            {"WHATSAPP_RATE_LIMIT_PER_COMPANY": "0"},
            "WHATSAPP_RATE_LIMIT_PER_COMPANY: expected a whole number >= 1",
        ),
        ({"WHATSAPP_BLOCKED_NUMBERS": "79001234567,call-me"}, "WHATSAPP_BLOCKED_NUMBERS: 'call-me'"),
        ({"WHATSAPP_ENCRYPT_MESSAGES": "true"}, "WHATSAPP_ENCRYPT_MESSAGES: needs WAFLEET_ENCRYPTION_KEY"),
        ({"WAFLEET_ENCRYPTION_KEY": "abc,"}, "WAFLEET_ENCRYPTION_KEY (key 1 of 2)"),
        ({"WHATSAPP_ISOLATE_AUTH": "false"}, "WHATSAPP_ISOLATE_AUTH: false is not supported"),
        ({"WHATSAPP_LOG_TO_FILE": "yes please"}, "WHATSAPP_LOG_TO_FILE: expected true or false"),
    ],
)
def test_unsafe_or_bad_values_stop_the_start_with_one_line(tmp_path: Path, env: dict, expected: str) -> None:
    done = _serve(tmp_path, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unsigned_webhooks_are_allowed_with_the_sandbox(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_VALIDATE_WEBHOOKS="false").start()
    payload = {"object": "whatsapp_business_account", "entry": []}
    r = node.client.post("/api/whatsapp/webhook/cloud", json=payload)  # no X-Hub-Signature-256
    assert r.status_code == 200, r.text


def test_signatures_are_checked_by_default(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_WEBHOOK_SECRET="app-secret").start()
    r = node.client.post(
        "/api/whatsapp/webhook/cloud", json={"object": "whatsapp_business_account", "entry": []}
    )
    assert r.status_code == 401


def test_provider_is_the_default_link_of_new_companies(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_PROVIDER="baileys").start()
    r = node.client.post("/admin/companies", json={"id": "salon", "name": "Salon"}, headers=node.admin())
    assert r.status_code == 201, r.text
    assert r.json()["company"]["link"] == "web"
    explicit = node.client.post(
        "/admin/companies", json={"id": "demo", "name": "Demo", "link": "sandbox"}, headers=node.admin()
    )
    assert explicit.json()["company"]["link"] == "sandbox"


def test_use_pairing_code_makes_initialize_ask_for_a_code(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_USE_PAIRING_CODE="true").start()
    node.create_company("salon", phone="5511999990001")
    node.create_company("nophone")
    assert node.post("/api/whatsapp/sessions/salon/initialize").status_code == 202
    status = node.wait_status("salon", "pairing")
    assert status["pairingCode"]
    # Without a phone to pair, the QR is the way; asking for QR explicitly still works too.
    assert node.post("/api/whatsapp/sessions/nophone/initialize").status_code == 202
    node.wait_status("nophone", "qr")


def test_log_file_follows_logrotate(node_factory, tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "whatsapp.log"
    node: Node = node_factory(
        WHATSAPP_LOG_TO_FILE="true", WHATSAPP_LOG_PATH=str(log_path), WHATSAPP_LOG_LEVEL="info"
    ).start()
    node.create_company("first")
    node.post("/api/whatsapp/sessions/first/initialize")
    # its last line until the QR's round ends: nothing about it may come after the rename
    wait_for(lambda: log_path.exists() and "company first: starting -> qr" in log_path.read_text())
    log_path.rename(log_path.with_suffix(".log.1"))  # what logrotate does (without copytruncate)
    node.create_company("second")
    node.post("/api/whatsapp/sessions/second/initialize")
    wait_for(lambda: log_path.exists() and "company second: stopped -> starting" in log_path.read_text())
    assert "company first" not in log_path.read_text()
    assert "company second" not in log_path.with_suffix(".log.1").read_text()


def test_debug_sessions_opens_the_session_loggers_below_the_log_level(node_factory) -> None:
    quiet: Node = node_factory(WHATSAPP_LOG_LEVEL="warning", WHATSAPP_DEBUG_SESSIONS="true").start()
    quiet.create_company("shop")
    quiet.post("/api/whatsapp/sessions/shop/initialize")
    wait_for(
        lambda: "company shop: stopped -> starting" in quiet.log(), what="the session's transition logged"
    )
