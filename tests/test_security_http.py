"""Security of the HTTP surface: streams end with their right, token rotation, page sessions,
failed-authentication limits, slow clients, stream caps, undecodable headers, data at rest."""

from __future__ import annotations

import json
import socket
import sqlite3
import stat
import time

import httpx
import pytest

from tests.harness import ADMIN_TOKEN, Node, wait_for
from tests.sse import SseClient

COOKIE = "wafleet_session"


def raw_request(node: Node, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes exactly as given (no client refuses or re-encodes a header)."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def from_address(node: Node, address: str) -> httpx.Client:
    """A client whose connections come from another loopback address (a different client)."""
    return httpx.Client(
        base_url=node.base_url, timeout=10.0, transport=httpx.HTTPTransport(local_address=address)
    )


def page_login(client: httpx.Client, company_id: str, token: str) -> str:
    r = client.post(f"/connect/{company_id}/login", data={"token": token})
    assert r.status_code == 303, r.text
    return client.cookies[COOKIE]


def ended_within(stream: SseClient, seconds: float) -> bool:
    return stream.ended.wait(seconds)


# -- streams end when their right ends --------------------------------------------------------------
def test_deleting_a_company_ends_its_streams_and_a_reused_id_gets_nothing(node_factory) -> None:
    node = node_factory(WAFLEET_SSE_HEARTBEAT="60000").start()
    token = node.create_company("acme")
    by_company = SseClient(node.base_url, "/api/whatsapp/sessions/acme/events", token)
    by_admin = SseClient(node.base_url, "/api/whatsapp/sessions/acme/events", ADMIN_TOKEN)
    assert by_company.status == by_admin.status == 200
    r = node.client.delete("/admin/companies/acme", headers=node.admin())
    assert r.status_code == 200
    start = time.monotonic()
    assert ended_within(by_company, 1.0) and ended_within(by_admin, 1.0), "a stream outlived its company"
    assert time.monotonic() - start <= 1.0
    # the id is reused by the next tenant: nothing of it reaches the old streams
    node.create_company("acme")
    node.connect("acme")
    for stream in (by_company, by_admin):
        assert [e for e in list(stream.events.queue) if e.data.get("state") == "connected"] == []
        stream.close()


def test_rotating_a_token_kills_the_old_token_its_cookies_and_streams(node_factory, database_url) -> None:
    node = node_factory(database_url, WAFLEET_SSE_HEARTBEAT="60000").start()
    old = node.create_company("acme")
    node.create_company("bistro")
    with httpx.Client(base_url=node.base_url) as browser:
        page_login(browser, "acme", old)
        assert browser.get("/api/whatsapp/sessions/acme/status").status_code == 200
        stream = SseClient(node.base_url, "/api/whatsapp/sessions/acme/events", old)
        page_stream = SseClient(
            node.base_url, "/api/whatsapp/sessions/acme/events", None, cookies=dict(browser.cookies)
        )
        admin_stream = SseClient(node.base_url, "/api/whatsapp/sessions/acme/events", ADMIN_TOKEN)
        assert stream.status == page_stream.status == admin_stream.status == 200

        # only the admin rotates
        assert node.post("/admin/companies/acme/token", token=old).status_code == 403
        assert node.client.post("/admin/companies/nobody/token", headers=node.admin()).status_code == 404
        r = node.client.post("/admin/companies/acme/token", headers=node.admin())
        assert r.status_code == 200, r.text
        new = r.json()["token"]
        assert r.json()["companyId"] == "acme" and new != old and new.startswith("wf_")
        assert ended_within(stream, 1.0) and ended_within(page_stream, 1.0)

        assert node.client.get("/api/whatsapp/sessions/acme/status", headers=_bearer(old)).status_code == 401
        assert browser.get("/api/whatsapp/sessions/acme/status").status_code == 401
        assert node.client.get("/api/whatsapp/sessions/acme/status", headers=_bearer(new)).status_code == 200
        # the admin's stream was not opened with the rotated token: it goes on
        assert not admin_stream.ended.wait(1.0)
        node.post("/api/whatsapp/sessions/acme/initialize", token=new)
        admin_stream.until(lambda e: e.event == "status" and e.data["state"] == "qr")
        # the new token is shown once: nothing else answers it
        listed = node.client.get("/admin/companies/acme", headers=node.admin()).text
        assert new not in listed and old not in listed
        for s in (stream, page_stream, admin_stream):
            s.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def database_text(database_url: str) -> str:
    """Every row of every table, as text: what a stolen copy of the database would show."""
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return "\n".join(db.iterdump())
        finally:
            db.close()
    import psycopg2

    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            out = []
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT * FROM "{table}"')
                out += [repr(row) for row in cur.fetchall()]
            return "\n".join(out)
    finally:
        conn.close()


def test_page_cookie_is_a_revocable_session_hashed_at_rest(node_factory, database_url) -> None:
    node = node_factory(database_url, WAFLEET_SSE_HEARTBEAT="60000").start()
    token = node.create_company("acme")
    with httpx.Client(base_url=node.base_url) as browser:
        session = page_login(browser, "acme", token)
        assert session != token and token not in session
        stream = SseClient(
            node.base_url, "/api/whatsapp/sessions/acme/events", None, cookies={COOKIE: session}
        )
        assert stream.status == 200
        # the session id is not stored as such anywhere in the database, only its hash
        import hashlib

        dump = database_text(database_url)
        assert session not in dump and token not in dump
        assert hashlib.sha256(session.encode()).hexdigest() in dump

        r = browser.post("/connect/acme/logout")
        assert r.status_code == 303
        assert ended_within(stream, 1.0), "the page's stream outlived its logout"
        stream.close()
    # the cookie, replayed after logout, opens nothing: revoked on the server, not just cleared
    with httpx.Client(base_url=node.base_url, cookies={COOKIE: session}) as replay:
        assert replay.get("/api/whatsapp/sessions/acme/status").status_code == 401
        assert 'id="token"' in replay.get("/connect/acme").text


def test_login_and_logout_posts_from_another_origin_are_refused(node: Node) -> None:
    token = node.create_company("acme")
    with httpx.Client(base_url=node.base_url) as browser:
        for path, secret in (("/connect/acme/login", token), ("/login", ADMIN_TOKEN)):
            r = browser.post(path, data={"token": secret}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", ""), r.text
            r = browser.post(path, data={"token": secret}, headers={"Origin": "null"})
            assert r.status_code == 403
        session = page_login(browser, "acme", token)
        r = browser.post("/connect/acme/logout", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        assert browser.get("/api/whatsapp/sessions/acme/status").status_code == 200
        # the same origin is fine
        r = browser.post("/connect/acme/logout", headers={"Origin": node.base_url})
        assert r.status_code == 303
    with httpx.Client(base_url=node.base_url, cookies={COOKIE: session}) as replay:
        assert replay.get("/api/whatsapp/sessions/acme/status").status_code == 401


# -- failed authentications are limited ------------------------------------------------------------
def test_failed_authentications_are_limited_per_address_without_locking_out_the_right_token(
    node: Node,
) -> None:
    token = node.create_company("acme")
    with from_address(node, "127.0.0.21") as attacker:
        for i in range(10):  # a forged X-Forwarded-For does not make it another client
            headers = {**_bearer(f"wf_guess{i}"), "X-Forwarded-For": f"10.0.0.{i}"}
            r = attacker.get("/api/whatsapp/sessions/acme/status", headers=headers)
            assert r.status_code == 401, (i, r.text)
        r = attacker.get(
            "/api/whatsapp/sessions/acme/status",
            headers={**_bearer("wf_guess10"), "X-Forwarded-For": "10.9.9.9"},
        )
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_failures"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # the login form is limited with it, and says so
        r = attacker.post("/login", data={"token": "not-the-admin-token"})
        assert r.status_code == 429 and "Retry-After" in r.headers
        # the admin token (it may be human-chosen) is not even tried from that address
        assert attacker.get("/admin/companies", headers=_bearer(ADMIN_TOKEN)).status_code == 429
        # a company's real token is never locked out, not even from that address
        assert attacker.get("/api/whatsapp/sessions/acme/status", headers=_bearer(token)).status_code == 200
    # another address is not affected
    with from_address(node, "127.0.0.22") as other:
        assert other.get("/admin/companies", headers=_bearer("nope-nope")).status_code == 401
        assert other.get("/admin/companies", headers=_bearer(ADMIN_TOKEN)).status_code == 200


def test_failed_authentications_are_limited_per_company_across_addresses(node: Node) -> None:
    token = node.create_company("acme")
    node.create_company("bistro")
    for i in range(10):  # ten addresses, one wrong guess each, all against acme
        with from_address(node, f"127.0.1.{i + 1}") as client:
            r = client.get("/api/whatsapp/sessions/acme/status", headers=_bearer(f"wf_guess{i}"))
            assert r.status_code == 401
    with from_address(node, "127.0.1.50") as fresh:
        r = fresh.get("/api/whatsapp/sessions/acme/status", headers=_bearer("wf_guess"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        r = fresh.post("/connect/acme/login", data={"token": "wf_guess"})
        assert r.status_code == 429
        # acme's own token still opens acme, from anywhere, as an API token and at the login
        assert fresh.get("/api/whatsapp/sessions/acme/status", headers=_bearer(token)).status_code == 200
        assert fresh.post("/connect/acme/login", data={"token": token}).status_code == 303
        # nor is the admin locked out of acme's routes
        assert (
            fresh.get("/api/whatsapp/sessions/acme/status", headers=_bearer(ADMIN_TOKEN)).status_code == 200
        )
        # another company is not affected
        r = fresh.get("/api/whatsapp/sessions/bistro/status", headers=_bearer("wf_guess"))
        assert r.status_code == 401


# -- data at rest ---------------------------------------------------------------------------------
def test_sqlite_file_and_wal_are_private_and_debug_sql_log_has_no_parameters(node_factory, tmp_path) -> None:
    node = node_factory(WHATSAPP_LOG_LEVEL="debug").start()
    token = node.create_company("acme")
    node.connect("acme")
    secret_text = "my card pin is 4711-unique-text"
    r = node.post("/api/sandbox/acme/inbound", {"from": "15551234567", "text": secret_text})
    assert r.status_code == 202, r.text
    wait_for(
        lambda: secret_text in node.client.get("/api/whatsapp/messages/acme", headers=node.admin()).text,
        what="the message stored",
    )
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("wafleet.db", "wafleet.db-wal", "wafleet.db-shm"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    log = node.log()
    assert "SELECT" in log or "INSERT" in log, "debug level logs the SQL statements"
    from wafleet.storage.tokens import hash_token

    assert secret_text not in log and hash_token(token) not in log


# -- slow clients ---------------------------------------------------------------------------------
def test_silent_sockets_cannot_starve_the_pool(node_factory) -> None:
    node = node_factory(WAFLEET_HTTP_POOL="50", WAFLEET_HTTP_HEADER_TIMEOUT="2000").start()
    node.client.close()  # its kept-alive connection would hold a slot: the pool is the silent ones'
    silent = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(50)]
    start = time.monotonic()
    try:
        with httpx.Client(base_url=node.base_url, timeout=10.0) as client:
            r = client.get("/healthz")
        took = time.monotonic() - start
        assert r.status_code == 200
        assert took <= 2.0 + 1.0, f"/healthz took {took:.2f}s"
        for s in silent:  # every silent socket was closed by the server by then
            s.settimeout(0.5)
            assert s.recv(1024) == b""
    finally:
        for s in silent:
            s.close()


def _closed_by_server(s: socket.socket, within: float) -> tuple[bool, bytes]:
    s.settimeout(within)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
        return True, got
    except TimeoutError:
        return False, got


def test_header_body_and_idle_timeouts(node_factory) -> None:
    node = node_factory(
        WAFLEET_HTTP_HEADER_TIMEOUT="1000", WAFLEET_HTTP_BODY_TIMEOUT="1000", WAFLEET_HTTP_IDLE_TIMEOUT="1500"
    ).start()
    # a slowloris: a header byte every 300 ms never finishes its headers
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 3.0:
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                closed = True
                break
            done, _ = _closed_by_server(s, 0.3)
            if done:
                closed = True
                break
        assert closed and time.monotonic() - start <= 2.0
    # a body announced and never finished: 408 JSON after the body timeout, connection closed
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(
            b"POST /admin/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN_TOKEN.encode()
            + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":'
        )
        start = time.monotonic()
        done, got = _closed_by_server(s, 3.0)
        assert done and time.monotonic() - start <= 2.0
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), got
        assert json.loads(body)["error"]["code"] == "body_timeout"
    # keep-alive: an idle connection is closed after the idle timeout, not before
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        still_open, _ = _closed_by_server(s, 1.2)
        assert not still_open, "closed before the idle timeout"
        done, _ = _closed_by_server(s, 1.5)
        assert done and time.monotonic() - start <= 1.5 + 1.0


def _open_stream(node: Node, path: str, token: str) -> tuple[socket.socket, int]:
    s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s, int(head.split()[1])


def test_event_streams_are_capped_per_company_and_per_node(node_factory) -> None:
    node = node_factory(WAFLEET_SSE_MAX_PER_COMPANY="3", WAFLEET_SSE_MAX_STREAMS="5").start()
    a = node.create_company("a")
    b = node.create_company("b")
    streams = [_open_stream(node, "/api/whatsapp/sessions/a/events", a) for _ in range(3)]
    assert [status for _, status in streams] == [200, 200, 200]
    r = node.client.get("/api/whatsapp/sessions/a/events", headers=_bearer(a))
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_streams"
    assert int(r.headers["Retry-After"]) >= 1
    streams += [_open_stream(node, "/api/whatsapp/sessions/b/events", b) for _ in range(2)]
    assert [status for _, status in streams[3:]] == [200, 200]
    r = node.client.get("/api/whatsapp/sessions/b/events", headers=_bearer(b))
    assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_streams"
    r = node.client.get("/api/whatsapp/events", headers=node.admin())
    assert r.status_code == 503
    # a client that hangs up gives its place back
    streams.pop(0)[0].close()

    def reopened() -> bool:
        streams.append(_open_stream(node, "/api/whatsapp/sessions/a/events", a))
        return streams[-1][1] == 200

    wait_for(reopened, what="a freed place")
    for s, _ in streams:
        s.close()


# -- headers that are not UTF-8 -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "request_bytes, header",
    [
        (
            b"POST /api/whatsapp/webhook/cloud HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Hub-Signature-256: sha256=\xff\xfe\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            "X-Hub-Signature-256",
        ),
        (
            b"GET /api/whatsapp/sessions/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN_TOKEN.encode()
            + b"\r\nLast-Event-ID: 1\xe9\r\nConnection: close\r\n\r\n",
            "Last-Event-ID",
        ),
        (
            b"GET /api/whatsapp/sessions/acme/qr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN_TOKEN.encode()
            + b"\r\nAccept: text/\xc3\x28\r\nConnection: close\r\n\r\n",
            "Accept",
        ),
        (
            b"GET /admin/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Connection: close\r\n\r\n",
            "Authorization",
        ),
    ],
)
def test_header_bytes_that_are_not_utf8_are_a_400(node_factory, request_bytes: bytes, header: str) -> None:
    node = node_factory(WHATSAPP_WEBHOOK_SECRET="s3cret-app-secret").start()
    node.create_company("acme")
    assert node.post("/api/whatsapp/sessions/acme/initialize").status_code == 202
    node.wait_status("acme", "qr")  # the QR route reads Accept only when a QR is pending
    status, headers, body = raw_request(node, request_bytes)
    assert status == 400, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_header" and header.lower() in error["message"].lower()
    assert "Traceback" not in node.log()
