"""A company's notificationEmail gets each pairing code it is issued, through a real SMTP
server on loopback (aiosmtpd) that authenticates the node and reads the message."""

from __future__ import annotations

import email
import email.policy
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.harness import Node, free_port, wait_for


class Inbox:
    """aiosmtpd handler: keeps every message it accepts, with who logged in to send it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "login": session.auth_data.login.decode() if session.auth_data else None,
                "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
            }
        )
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"p@ss w0rd",
    )
    return AuthResult(success=ok, auth_data=auth_data if ok else None)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    # AUTH without TLS on loopback only: the test reads the login the node sent.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_pairing_code_is_emailed_with_its_expiry_and_the_company_name(node_factory, smtp) -> None:
    inbox, port = smtp
    node: Node = node_factory(
        WAFLEET_SMTP_URL=f"smtp://mailer:p%40ss%20w0rd@127.0.0.1:{port}",
        WAFLEET_SMTP_FROM="codes@wafleet.test",
    ).start()
    token = node.create_company(
        "bela", name="Salão Bela", phone="5511999990001", notificationEmail="admin@bela.test"
    )
    shown = node.client.get("/admin/companies/bela", headers=node.admin()).json()["company"]
    assert shown["notificationEmail"] == "admin@bela.test"

    r = node.post("/api/whatsapp/sessions/bela/pairing-code", {"phoneNumber": "5511999990001"}, token=token)
    assert r.status_code == 200, r.text
    code = r.json()["pairingCode"]
    issued_at = datetime.now(UTC)

    wait_for(lambda: inbox.messages, timeout=20, what="the pairing-code email")
    got = inbox.messages[0]
    msg = got["message"]
    assert (
        got["login"] == "mailer" and got["to"] == ["admin@bela.test"] and got["from"] == "codes@wafleet.test"
    )
    assert msg["Subject"] == "WhatsApp pairing code for Salão Bela"
    lines = msg.get_content().strip().splitlines()
    assert lines[:2] == ["Company: Salão Bela", f"Pairing code: {code}"] and len(lines) == 3
    expires = datetime.strptime(re.fullmatch(r"Expires: (.+) UTC", lines[2]).group(1), "%Y-%m-%d %H:%M:%S")
    seconds = (expires.replace(tzinfo=UTC) - issued_at).total_seconds()
    assert 50 <= seconds <= 61, seconds  # the code lives 60 s

    # Listed as delivered; the list never shows an email's content (it held the code).
    listed = node.client.get(
        "/api/whatsapp/webhooks/bela/deliveries", headers={"Authorization": f"Bearer {token}"}
    )
    (delivery,) = listed.json()["deliveries"]
    assert delivery["status"] == "delivered" and delivery["endpoint"] == {
        "kind": "email",
        "url": "admin@bela.test",
    }
    assert "payload" not in delivery and code not in listed.text


def test_notification_email_is_validated_and_can_be_cleared(node: Node) -> None:
    admin = node.admin()
    for bad in (
        "not-an-address",
        "a@b.test\nBcc: x@y.test",
        "Name <a@b.test>",
        "a@b.test, c@d.test",
        42,
        "x" * 250 + "@b.test",
    ):
        r = node.client.post(
            "/admin/companies", json={"id": "v", "name": "V", "notificationEmail": bad}, headers=admin
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_field", (bad, r.text)
    node.create_company("v", notificationEmail="ops@v.test")
    r = node.client.patch("/admin/companies/v", json={"notificationEmail": None}, headers=admin)
    assert r.status_code == 200 and r.json()["company"]["notificationEmail"] is None
