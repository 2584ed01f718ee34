"""Hostile and broken input: every answer is a JSON 4xx, never a 500, never a stack trace.

One node takes the whole barrage; a bystander company stays connected through it, untouched.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.harness import ADMIN_TOKEN, Node, wait_for

JSON = {"Content-Type": "application/json"}


@dataclass
class Target:
    node: Node
    bystander: dict[str, Any]  # its status before the barrage


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    # Many wrong tokens from one address: the failed-auth limit is tested in test_security_http.py.
    node = Node(
        tmp_path_factory.mktemp("hostile"), WAFLEET_WEB_LINK="false", WAFLEET_AUTH_FAILURE_LIMIT="100000"
    ).start()
    try:
        node.create_company("bystander")
        node.create_company("victim")
        before = node.connect("bystander")
        yield Target(node, before)
    finally:
        node.close()


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    where = f"{r.request.method} {r.request.url.raw_path[:80]!r}"
    assert r.status_code == status, f"{where}: {r.status_code} {r.text[:300]}"
    assert 400 <= r.status_code < 500
    assert r.headers.get("content-type", "").startswith("application/json"), where
    assert "Traceback" not in r.text and 'File "' not in r.text
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    if code is not None:
        assert error["code"] == code, f"{where}: {body}"
    return error


def raw_json(value: Any) -> bytes:
    """JSON as bytes, escaping what httpx's json= cannot encode (lone surrogates)."""
    return json.dumps(value).encode()


def raw_request(node: Node, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client normalises paths, encodes chunks or checks headers)."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def raw_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == code


def admin_request(target: Target, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
    return target.node.client.request(method, path, headers=headers, **kwargs)


# -- unknown companies and bad ids --------------------------------------------------------------
@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/admin/companies/nobody"),
        ("PATCH", "/admin/companies/nobody"),
        ("DELETE", "/admin/companies/nobody"),
        ("GET", "/admin/companies/" + "a" * 64),  # the longest valid id
        ("GET", "/api/whatsapp/sessions/nobody/status"),
        ("GET", "/api/whatsapp/sessions/nobody/qr"),
        ("POST", "/api/whatsapp/sessions/nobody/initialize"),
        ("POST", "/api/whatsapp/sessions/nobody/stop"),
        ("POST", "/api/sandbox/nobody/scan"),
        ("POST", "/api/sandbox/nobody/crash"),
    ],
)
def test_unknown_company_is_404_for_admin(target: Target, method: str, path: str) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    assert_error(admin_request(target, method, path, json=body), 404, "not_found")


BAD_IDS = [
    "a" * 65,
    "a" * 5000,
    "dot.ted",
    "sp%20ace",
    "caf%C3%A9",  # unicode
    "%F0%9F%9A%80",  # an emoji
    "nul%00byte",
    "%00",
    "...",  # (".." itself is resolved by httpx: see test_path_traversal_in_ids)
    "..%5C..%5Cwindows",
    "%2E%2E",
    "semi;colon",
    "quote%27or%271%27%3D%271",
    "%3Cscript%3E",
    "tab%09",
    "new%0Aline",
    "bystander%0A",  # a valid id plus a newline must not pass a ^...$ pattern
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize(
    "method,template",
    [
        ("GET", "/admin/companies/{}"),
        ("DELETE", "/admin/companies/{}"),
        ("GET", "/api/whatsapp/sessions/{}/status"),
        ("POST", "/api/whatsapp/sessions/{}/cleanup"),
        ("POST", "/api/sandbox/{}/disconnect"),
    ],
)
def test_bad_company_id_in_path_is_400(target: Target, method: str, template: str, bad_id: str) -> None:
    r = admin_request(target, method, template.format(bad_id))
    assert_error(r, 400, "invalid_company_id")


@pytest.mark.parametrize(
    "path",
    [
        "/api/whatsapp/sessions/../../admin/companies",
        "/api/whatsapp/sessions/../bystander/status",
        "/api/whatsapp/sessions/..%2Fbystander/status",
        "/api/whatsapp/sessions/..%2F..%2F..%2Fetc%2Fpasswd/status",
        "/api/sandbox/..%2F..%2Fdata%2Fsessions/scan",
        "/admin/companies/..%2Fbystander",
        "/admin/companies/%2F..%2F..%2Fetc",
        "/admin/companies/bystander/..",
        "/api/whatsapp/sessions/../status",
        "/api/sandbox/../scan",
        "//admin/companies",
    ],
)
def test_path_traversal_in_ids(target: Target, path: str) -> None:
    """Sent verbatim (httpx would resolve the dots): a 400 or a 404, never another company."""
    for method in ("GET", "POST", "DELETE"):
        status, headers, body = raw_request(
            target.node,
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode(),
        )
        assert status in (400, 404, 405), (method, path, status, body)
        assert headers["content-type"].startswith("application/json")
        assert "error" in json.loads(body)


@pytest.mark.parametrize(
    "body,code",
    [
        ({"id": "a" * 65, "name": "Long"}, "invalid_company_id"),
        ({"id": "a" * 100_000, "name": "Longer"}, None),  # 413 or 400, either is fine: not 500
        ({"id": "café", "name": "Cafe"}, "invalid_company_id"),
        ({"id": "nul\x00", "name": "Nul"}, "invalid_company_id"),
        ({"id": "../etc", "name": "Up"}, "invalid_company_id"),
        ({"id": "ok\n", "name": "Newline"}, "invalid_company_id"),
        ({"id": "", "name": "Empty"}, "invalid_company_id"),
        ({"id": "\ud800", "name": "Surrogate"}, "invalid_company_id"),
        ({"id": "n1", "name": "nul\x00byte"}, "invalid_field"),
        ({"id": "n2", "name": "\ud800"}, "invalid_field"),  # a lone surrogate: was a 500 (sqlite)
        ({"id": "n3", "name": "bell\x07"}, "invalid_field"),
        ({"id": "n4", "name": "x" * 201}, "invalid_field"),
        ({"id": "n5", "name": "x" * 60_000}, "invalid_field"),
        ({"id": "n6", "name": "   "}, "invalid_field"),
    ],
)
def test_hostile_ids_and_names_on_create(target: Target, body: dict[str, Any], code: str | None) -> None:
    r = admin_request(target, "POST", "/admin/companies", content=raw_json(body), headers=JSON)
    if code is None:
        assert r.status_code in (400, 413)
    assert_error(r, r.status_code if code is None else 400, code)


def test_unicode_names_are_fine(target: Target) -> None:
    name = 'Ünïcödé 名前 🚀 — "quoted" <b>'
    r = admin_request(
        target, "POST", "/admin/companies", content=raw_json({"id": "uni", "name": name}), headers=JSON
    )
    assert r.status_code == 201, r.text
    assert admin_request(target, "GET", "/admin/companies/uni").json()["company"]["name"] == name
    r = admin_request(target, "POST", "/admin/companies", json={"id": "b" * 64, "name": "x" * 200})
    assert r.status_code == 201, r.text
    for cid in ("uni", "b" * 64):
        assert admin_request(target, "DELETE", f"/admin/companies/{cid}").status_code == 200


def test_duplicate_company_is_409(target: Target) -> None:
    r = admin_request(target, "POST", "/admin/companies", json={"id": "bystander", "name": "Again"})
    assert_error(r, 409, "exists")
    assert admin_request(target, "GET", "/admin/companies/bystander").json()["company"]["name"] == "Bystander"


# -- bodies ---------------------------------------------------------------------------------------
BODY_ROUTES = [
    ("POST", "/admin/companies"),
    ("PATCH", "/admin/companies/victim"),
    ("POST", "/api/whatsapp/sessions/victim/initialize"),
    ("POST", "/api/whatsapp/sessions/victim/pairing-code"),
    ("POST", "/api/whatsapp/sessions/victim/stop"),
    ("POST", "/api/sandbox/victim/enter-code"),
    ("POST", "/api/sandbox/victim/disconnect"),
    ("POST", "/api/sandbox/victim/crash"),
]


NOT_AN_OBJECT = {
    "truncated": b'{"id": ',
    "single-quotes": b"{'single': 'quotes'}",
    "trailing-comma": b'{"a": 1,}',
    "not-utf8": b'{"name": "\xff\xfe"}',
    "deep-arrays": b"[" * 60_000,  # deeper than the recursion limit: was a 500
    "deep-objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "array": b"[]",
    "array-of-object": b'[{"id": "x"}]',
    "string": b'"a string"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "nan": b"NaN",
}


@pytest.mark.parametrize("method,path", BODY_ROUTES)
@pytest.mark.parametrize("kind", list(NOT_AN_OBJECT))
def test_body_that_is_not_a_json_object_is_400(target: Target, method: str, path: str, kind: str) -> None:
    r = admin_request(target, method, path, content=NOT_AN_OBJECT[kind], headers=JSON)
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("method,path", BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ],
)
def test_wrong_content_type_is_415(target: Target, method: str, path: str, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = admin_request(target, method, path, content=b'{"name": "x"}', headers=headers)
    assert_error(r, 415, "unsupported_media_type")


def test_content_type_parameters_are_fine(target: Target) -> None:
    r = admin_request(
        target,
        "PATCH",
        "/admin/companies/victim",
        content=b'{"name": "Victim"}',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200, r.text


TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize(
    "method,path", [("POST", "/admin/companies"), ("POST", "/api/sandbox/victim/disconnect")]
)
def test_ten_megabytes_is_413_and_the_node_keeps_serving(target: Target, method: str, path: str) -> None:
    r = admin_request(target, method, path, content=b"x" * TEN_MB, headers=JSON)
    assert_error(r, 413, "body_too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(TEN_MB // 65536):
            yield b" " * 65536

    r = admin_request(target, method, path, content=chunks(), headers=JSON)
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert_error(r, 413, "body_too_large")
    # just over the limit, chunked: the size is only known while reading
    r = admin_request(target, method, path, content=iter([b" " * 65536, b"{}"]), headers=JSON)
    assert_error(r, 413, "body_too_large")
    assert target.node.client.get("/healthz").status_code == 200


def test_broken_chunked_encoding_is_400(target: Target) -> None:
    """Was a 500: gevent's reader raises an IOError for a bad chunk size."""
    status, headers, body = raw_request(
        target.node,
        f"POST /admin/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode(),
    )
    raw_error(status, headers, body, 400, "invalid_body")
    assert headers.get("connection") == "close"


def test_malformed_content_length_is_refused_by_the_server(target: Target) -> None:
    """gevent answers these itself (an empty 400, not our JSON) before the app runs."""
    for value in ("abc", "-5", "1e3"):
        status, _, _ = raw_request(
            target.node,
            f"POST /admin/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {value}\r\nConnection: close\r\n\r\n{{}}".encode(),
        )
        assert status == 400
    assert target.node.client.get("/healthz").status_code == 200


# -- fields ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,path,body,code",
    [
        # wrong types
        ("POST", "/admin/companies", {"id": 5, "name": "Five"}, "invalid_field"),
        ("POST", "/admin/companies", {"id": ["x"], "name": "List"}, "invalid_field"),
        ("POST", "/admin/companies", {"id": "t1", "name": 5}, "invalid_field"),
        ("POST", "/admin/companies", {"id": "t1", "name": {"first": "x"}}, "invalid_field"),
        ("POST", "/admin/companies", {"id": "t1"}, "invalid_field"),
        ("POST", "/admin/companies", {"name": "no id"}, "invalid_field"),
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "phone": 15551234567}, "invalid_phone"),
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "phone": "+1 555"}, "invalid_phone"),
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "link": 1}, "invalid_field"),
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "link": "carrier-pigeon"}, "invalid_field"),
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "link": "cloud"}, "link_unavailable"),
        ("POST", "/admin/companies", {}, "invalid_field"),
        ("POST", "/admin/companies", None, "body_required"),
        ("PATCH", "/admin/companies/victim", {"name": None}, "invalid_field"),
        ("PATCH", "/admin/companies/victim", {"name": True}, "invalid_field"),
        ("PATCH", "/admin/companies/victim", {"phone": 1}, "invalid_phone"),
        ("PATCH", "/admin/companies/victim", {"link": "web"}, "link_unavailable"),
        ("PATCH", "/admin/companies/victim", {}, "invalid_field"),
        ("PATCH", "/admin/companies/victim", None, "body_required"),
        ("POST", "/api/whatsapp/sessions/victim/initialize", {"usePairingCode": "yes"}, "invalid_field"),
        ("POST", "/api/whatsapp/sessions/victim/initialize", {"usePairingCode": 1}, "invalid_field"),
        ("POST", "/api/whatsapp/sessions/victim/initialize", {"phoneNumber": 15551234567}, "invalid_phone"),
        ("POST", "/api/whatsapp/sessions/victim/initialize", {"usePairingCode": True}, "invalid_phone"),
        ("POST", "/api/whatsapp/sessions/victim/pairing-code", {"phoneNumber": ["1555"]}, "invalid_phone"),
        ("POST", "/api/whatsapp/sessions/victim/pairing-code", {"phoneNumber": "1" * 16}, "invalid_phone"),
        ("POST", "/api/whatsapp/sessions/victim/pairing-code", {}, "invalid_phone"),
        ("POST", "/api/sandbox/victim/scan", {"phoneNumber": "not a phone"}, "invalid_phone"),
        ("POST", "/api/sandbox/victim/enter-code", {"code": 12345678}, "invalid_field"),
        ("POST", "/api/sandbox/victim/enter-code", {"code": "x" * 17}, "invalid_field"),
        ("POST", "/api/sandbox/victim/enter-code", {}, "invalid_field"),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": 5}, "invalid_field"),
        ("POST", "/api/sandbox/victim/disconnect", {}, "invalid_field"),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": "transient", "message": 5}, "invalid_field"),
        (
            "POST",
            "/api/sandbox/victim/disconnect",
            {"reason": "transient", "message": "x" * 501},
            "invalid_field",
        ),
        # these reach the database through the fleet: a lone surrogate crashed the whole Fleet
        (
            "POST",
            "/api/sandbox/victim/disconnect",
            {"reason": "transient", "message": "\ud800"},
            "invalid_field",
        ),
        (
            "POST",
            "/api/sandbox/victim/disconnect",
            {"reason": "transient", "message": "a\x00b"},
            "invalid_field",
        ),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": "banned", "until": 5}, "invalid_field"),
        (
            "POST",
            "/api/sandbox/victim/disconnect",
            {"reason": "banned", "until": "tomorrow"},
            "invalid_field",
        ),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": "banned", "until": "\ud800"}, "invalid_field"),
        # unknown disconnect reasons
        ("POST", "/api/sandbox/victim/disconnect", {"reason": "nuked"}, "invalid_field"),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": "LOGGED_OUT"}, "invalid_field"),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": ""}, "invalid_field"),
        # unknown fields
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "admin": True}, "unknown_field"),
        ("POST", "/admin/companies", {"id": "t1", "name": "T", "token": "wf_mine"}, "unknown_field"),
        ("PATCH", "/admin/companies/victim", {"id": "renamed"}, "unknown_field"),
        ("PATCH", "/admin/companies/victim", {"name": "V", "token": "wf_mine"}, "unknown_field"),
        ("POST", "/api/whatsapp/sessions/victim/initialize", {"companyId": "bystander"}, "unknown_field"),
        ("POST", "/api/whatsapp/sessions/victim/pairing-code", {"phone": "15551234567"}, "unknown_field"),
        ("POST", "/api/sandbox/victim/scan", {"phone": "15551234567"}, "unknown_field"),
        ("POST", "/api/sandbox/victim/enter-code", {"code": "ABCD-EFGH", "x": 1}, "unknown_field"),
        ("POST", "/api/sandbox/victim/disconnect", {"reason": "transient", "extra": 1}, "unknown_field"),
    ],
)
def test_bad_fields_are_400(target: Target, method: str, path: str, body: Any, code: str) -> None:
    content = raw_json(body) if body is not None else b""
    r = admin_request(target, method, path, content=content, headers=JSON)
    assert_error(r, 400, code)
    assert "t1" not in admin_request(target, "GET", "/admin/companies").text


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=" + "1" * 5000,  # int() refuses > 4300 digits: was a 500
        "limit=%C2%B2",  # "²" is a digit to str.isdigit
        "limit=%D9%A1",  # an Arabic-Indic one
        "limit=%00",
    ],
)
def test_bad_list_limit_is_400(target: Target, query: str) -> None:
    assert_error(admin_request(target, "GET", f"/admin/companies?{query}"), 400, "invalid_query")


@pytest.mark.parametrize("query", ["status=bogus", "status=", "status=%00", "status=CONNECTED", "status=%FF"])
def test_bad_status_filter_is_400(target: Target, query: str) -> None:
    assert_error(admin_request(target, "GET", f"/api/whatsapp/sessions?{query}"), 400, "invalid_query")


def test_odd_cursors_are_harmless(target: Target) -> None:
    for cursor in ("%00", "%FF%FE", "zzzz", "'; DROP TABLE company; --", "a" * 2000):
        r = admin_request(target, "GET", f"/admin/companies?cursor={cursor}")
        assert r.status_code == 200 and isinstance(r.json()["companies"], list)


# -- methods and routes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,path",
    [
        ("PUT", "/admin/companies"),
        ("DELETE", "/admin/companies"),
        ("POST", "/admin/companies/victim"),
        ("PUT", "/admin/companies/victim"),
        ("GET", "/api/whatsapp/sessions/victim/initialize"),
        ("DELETE", "/api/whatsapp/sessions/victim/status"),
        ("POST", "/api/whatsapp/sessions/victim/status"),
        ("GET", "/api/sandbox/victim/scan"),
        ("POST", "/healthz"),
        ("OPTIONS", "/api/whatsapp/sessions"),
        ("TRACE", "/admin/companies"),
        ("PROPFIND", "/admin/companies"),
    ],
)
def test_wrong_method_is_405_json(target: Target, method: str, path: str) -> None:
    r = admin_request(target, method, path)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"]


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/admin",
        "/admin/companies/victim/secrets",
        "/api/whatsapp/sessions/victim",
        "/api/whatsapp/sessions/victim/status/extra",
        "/api/whatsapp/sessions/victim/nope",
        "/api/sandbox/victim",
        "/api/sandbox/victim/outbox-x",
        "/%00",
        "/%FF",
        "/" + "x" * 4000,
        "/.env",
        "/static/../../etc/passwd",
    ],
)
def test_unknown_route_is_404_json(target: Target, path: str) -> None:
    for method in ("GET", "POST"):
        assert_error(admin_request(target, method, path), 404, "not_found")


# -- the sandbox in the wrong state -------------------------------------------------------------
def test_sandbox_and_session_actions_in_the_wrong_state_are_409(target: Target) -> None:
    node = target.node

    def post(path: str, body: Any = None) -> httpx.Response:
        return admin_request(target, "POST", path, json=body)

    node.post("/api/whatsapp/sessions/victim/cleanup")
    assert node.status("victim")["status"] == "stopped"
    # stopped: no live session to act on
    for action, body in (
        ("scan", {}),
        ("enter-code", {"code": "ABCD-EFGH"}),
        ("disconnect", {"reason": "transient"}),
        ("crash", None),
    ):
        assert_error(post(f"/api/sandbox/victim/{action}", body), 409, "wrong_state")
    assert_error(admin_request(target, "GET", "/api/whatsapp/sessions/victim/qr"), 404, "no_qr")

    # showing a QR: no pairing code to enter
    assert post("/api/whatsapp/sessions/victim/initialize").status_code == 202
    node.wait_status("victim", "qr")
    assert_error(post("/api/sandbox/victim/enter-code", {"code": "ABCD-EFGH"}), 409, "wrong_state")

    # connected: nothing to scan, initialize or pair
    assert post("/api/sandbox/victim/scan").status_code == 202
    node.wait_status("victim", "connected")
    assert_error(post("/api/sandbox/victim/scan"), 409, "wrong_state")
    assert_error(post("/api/sandbox/victim/enter-code", {"code": "ABCD-EFGH"}), 409, "wrong_state")
    assert_error(post("/api/whatsapp/sessions/victim/initialize"), 409, "wrong_state")
    assert_error(
        post("/api/whatsapp/sessions/victim/pairing-code", {"phoneNumber": "15551234567"}), 409, "wrong_state"
    )

    # pairing: a wrong code is a 400, the right one connects
    post("/api/whatsapp/sessions/victim/cleanup")
    r = post("/api/whatsapp/sessions/victim/pairing-code", {"phoneNumber": "15551234567"})
    assert r.status_code == 200, r.text
    assert_error(post("/api/sandbox/victim/enter-code", {"code": "ZZZZ-ZZZZ"}), 400, "wrong_code")
    assert post("/api/sandbox/victim/enter-code", {"code": r.json()["pairingCode"]}).status_code == 202
    node.wait_status("victim", "connected")

    # logged out by the far side: final until initialize
    assert post("/api/sandbox/victim/disconnect", {"reason": "logged_out"}).status_code == 202
    node.wait_status("victim", "logged_out")
    for action in ("scan", "crash"):
        assert_error(post(f"/api/sandbox/victim/{action}"), 409, "wrong_state")


# -- headers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [b"Authorization: Bearer \xff\xfe", b"X-Admin-Token: \xc3\x28\xa0"])
def test_undecodable_token_header_is_400(target: Target, header: bytes) -> None:
    """Was a 500: Bottle's header decoding raised UnicodeDecodeError."""
    status, headers, body = raw_request(
        target.node,
        b"GET /admin/companies HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n",
    )
    raw_error(status, headers, body, 400, "invalid_header")


def test_undecodable_path_is_4xx_json(target: Target) -> None:
    status, headers, body = raw_request(
        target.node,
        f"GET /api/whatsapp/sessions/\xff\xfe/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "Connection: close\r\n\r\n".encode("latin-1"),
    )
    assert 400 <= status < 500 and headers["content-type"].startswith("application/json"), body


# -- after all that -------------------------------------------------------------------------------
def test_after_the_barrage_the_node_is_fine(target: Target) -> None:
    """Runs last in this module."""
    node = target.node
    after = node.status("bystander")
    assert after["status"] == "connected"
    # same `since` and history: the fleet never restarted under it (a Fleet crash reloads records)
    assert after["since"] == target.bystander["since"]
    assert after["history"] == target.bystander["history"]
    assert node.client.get("/healthz").status_code == 200
    assert node.client.get("/readyz").json()["status"] == "ready"
    # nothing a client sent made it to a 500 or an actor failure
    log = node.log()
    assert "Traceback" not in log and "unhandled error" not in log and " failed: " not in log, log[-3000:]
    # nothing was written outside the companies' own credential folders
    sessions = node.workdir / "data" / "sessions"
    assert {p.name for p in sessions.iterdir()} <= {"company_bystander", "company_victim"}
    wait_for(lambda: node.status("bystander")["connected"], what="bystander still connected")
