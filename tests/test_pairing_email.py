"""A company's notificationEmail gets each pairing code it is issued, through a real SMTP
server on loopback (aiosmtpd) that authenticates the node and reads the message."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import re
import ssl
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness import Node, free_port, wait_for


class Inbox:
    """aiosmtpd handler: keeps every message it accepts, with who logged in to send it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "tls": session.ssl is not None,
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


def start_smtp(inbox: Inbox, port: int, tls: ssl.SSLContext | None = None) -> Controller:
    if tls is None:  # AUTH without TLS on loopback only: the test reads the login the node sent
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=tls is not None,
        tls_context=tls,
        require_starttls=tls is not None,
    )
    controller.start()
    return controller


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = start_smtp(inbox, port)
    yield inbox, port
    controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the node is told to trust it through SSL_CERT_FILE)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wafleet test smtp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def request_code(node: Node, company: str, token: str | None = None) -> str:
    r = node.post(
        f"/api/whatsapp/sessions/{company}/pairing-code", {"phoneNumber": "5511999990001"}, token=token
    )
    assert r.status_code == 200, r.text
    return r.json()["pairingCode"]


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


def test_starttls_is_used_when_the_server_offers_it(node_factory, tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox, port = Inbox(), free_port()
    controller = start_smtp(inbox, port, tls)  # refuses AUTH and mail before STARTTLS
    try:
        node: Node = node_factory(
            WAFLEET_SMTP_URL=f"smtp://mailer:p%40ss%20w0rd@127.0.0.1:{port}", SSL_CERT_FILE=str(cert)
        ).start()
        node.create_company("tls", phone="5511999990001", notificationEmail="ops@tls.test")
        code = request_code(node, "tls")
        wait_for(lambda: inbox.messages, timeout=20, what="the email over STARTTLS")
        assert inbox.messages[0]["tls"] and inbox.messages[0]["login"] == "mailer"
        assert f"Pairing code: {code}" in inbox.messages[0]["message"].get_content()
    finally:
        controller.stop()


def test_the_email_waits_in_its_queue_while_the_smtp_server_is_down(node_factory) -> None:
    inbox, port = Inbox(), free_port()  # nothing listens there yet
    node: Node = node_factory(
        WAFLEET_SMTP_URL=f"smtp://mailer:p%40ss%20w0rd@127.0.0.1:{port}",
        WAFLEET_WEBHOOK_RETRY_BASE="100",
        WAFLEET_WEBHOOK_RETRY_MAX="500",
    ).start()
    node.create_company("later", phone="5511999990001", notificationEmail="ops@later.test")
    code = request_code(node, "later")

    def pending() -> Any:
        r = node.client.get("/api/whatsapp/webhooks/later/deliveries", headers=node.admin())
        rows = r.json()["deliveries"]
        return rows and rows[0]["status"] == "pending" and rows[0]["attempts"] >= 1 and rows[0]

    waiting = wait_for(pending, timeout=20, what="a failed first attempt")
    assert "SMTP" in waiting["lastError"] and waiting["retryUntil"] is not None
    controller = start_smtp(inbox, port)
    try:
        wait_for(lambda: inbox.messages, timeout=30, what="the email once the server is up")
        assert f"Pairing code: {code}" in inbox.messages[0]["message"].get_content()
    finally:
        controller.stop()
