"""Tenant isolation: a company's token opens that company's routes and nothing else.

The route tables below are the contract; ``test_route_tables_cover_the_app`` builds the real
Bottle app in-process and fails when a route exists that no table lists, so a new route cannot be
left out of these checks by accident.
"""

from __future__ import annotations

import base64
import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.harness import ADMIN_TOKEN, Node, wait_for
from tests.sse import SseClient


@dataclass(frozen=True)
class Route:
    method: str
    rule: str  # Bottle's rule, with <company_id>
    body: Any = None  # a valid body, so that only authorisation can refuse the request

    def path(self, company_id: str = "") -> str:
        return (
            self.rule.replace("<company_id>", company_id)
            .replace("<code>", "ABC234")
            .replace("<phone>", "15551234567")
        )

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


# Routes of one company: admin or that company's token.
COMPANY_ROUTES = [
    Route("POST", "/api/whatsapp/sessions/<company_id>/initialize", {}),
    Route("GET", "/api/whatsapp/sessions/<company_id>/status"),
    Route("GET", "/api/whatsapp/sessions/<company_id>/qr"),
    Route("POST", "/api/whatsapp/sessions/<company_id>/pairing-code", {"phoneNumber": "15551234567"}),
    Route("POST", "/api/whatsapp/sessions/<company_id>/reconnect"),
    Route("POST", "/api/whatsapp/sessions/<company_id>/stop"),
    Route("POST", "/api/whatsapp/sessions/<company_id>/cleanup"),
    Route("POST", "/api/sandbox/<company_id>/scan", {}),
    Route("POST", "/api/sandbox/<company_id>/enter-code", {"code": "ABCD-EFGH"}),
    Route("POST", "/api/sandbox/<company_id>/disconnect", {"reason": "logged_out"}),
    Route("POST", "/api/sandbox/<company_id>/crash"),
    Route("GET", "/api/whatsapp/sessions/<company_id>/events"),
    Route("GET", "/api/whatsapp/messages/<company_id>"),
    Route("POST", "/api/sandbox/<company_id>/inbound", {"from": "15551234567", "text": "hi"}),
    Route("GET", "/api/sandbox/<company_id>/outbox"),
    Route("GET", "/api/whatsapp/blocklist/<company_id>"),
    Route("PUT", "/api/whatsapp/blocklist/<company_id>", {"numbers": ["15551234567"]}),
    Route("POST", "/api/whatsapp/blocklist/<company_id>", {"numbers": ["15551234567"]}),
    Route("DELETE", "/api/whatsapp/blocklist/<company_id>/<phone>"),
    Route("POST", "/api/sandbox/<company_id>/zombie"),
    Route("GET", "/api/whatsapp/metrics/<company_id>"),
    Route("GET", "/api/whatsapp/webhooks/<company_id>/deliveries"),
    Route("POST", "/api/whatsapp/webhooks/<company_id>/deliveries/<delivery_id>/redeliver"),
    Route("POST", "/api/whatsapp/webhooks/<company_id>/deliveries/redeliver"),
]

# The assistant's routes (behaviour in test_assistant_*.py): the same rule, admin or that company.
ASSISTANT_ROUTES = [
    Route("GET", "/api/assistant/<company_id>/config"),
    Route("PUT", "/api/assistant/<company_id>/config", {"businessName": "Hijacked"}),
    Route("GET", "/api/assistant/<company_id>/bookings"),
    Route(
        "POST",
        "/api/assistant/<company_id>/bookings",
        {"service": "haircut", "start": "2030-01-07T10:00:00+00:00", "customerPhone": "15551234567"},
    ),
    Route("POST", "/api/assistant/<company_id>/bookings/<code>/cancel"),
    Route(
        "POST",
        "/api/assistant/<company_id>/bookings/<code>/reschedule",
        {"start": "2030-01-07T11:00:00+00:00"},
    ),
    Route("GET", "/api/assistant/<company_id>/availability"),
    Route("GET", "/api/assistant/<company_id>/conversations"),
    Route("GET", "/api/assistant/<company_id>/conversations/<phone>"),
    Route("POST", "/api/assistant/<company_id>/conversations/<phone>/pause"),
    Route("POST", "/api/assistant/<company_id>/conversations/<phone>/resume"),
    Route("GET", "/api/assistant/<company_id>/stats"),
]

# Admin-only routes; <company_id> is filled with the victim's id.
ADMIN_ROUTES = [
    Route("GET", "/admin/companies"),
    Route("POST", "/admin/companies", {"id": "intruder", "name": "Intruder", "link": "sandbox"}),
    Route("GET", "/admin/companies/<company_id>"),
    Route("PATCH", "/admin/companies/<company_id>", {"name": "Hijacked"}),
    Route("DELETE", "/admin/companies/<company_id>"),
    Route("POST", "/admin/companies/<company_id>/token"),
    Route("GET", "/api/whatsapp/sessions"),
    Route("GET", "/api/whatsapp/metrics"),
    Route("GET", "/api/whatsapp/metrics/companies/all"),
    Route("GET", "/api/whatsapp/metrics/performance"),
    Route("GET", "/api/whatsapp/metrics/timeseries"),
    Route("GET", "/api/whatsapp/metrics/rate"),
    Route("GET", "/api/whatsapp/metrics/alerts"),
    Route("GET", "/api/whatsapp/health/metrics"),
    Route("GET", "/api/whatsapp/events"),
    Route("GET", "/api/whatsapp/webhook/unrouted"),
    Route("GET", "/api/whatsapp/webhook/rejected"),
    Route("GET", "/api/whatsapp/alert-webhook/deliveries"),
    Route("POST", "/api/whatsapp/alert-webhook/deliveries/<delivery_id>/redeliver"),
    Route("POST", "/api/whatsapp/alert-webhook/deliveries/redeliver"),
]

# No token needed.
PUBLIC_ROUTES = [Route("GET", "/healthz"), Route("GET", "/readyz"), Route("GET", "/api/openapi.json")]

# Meta's webhook: no bearer token; the verify token (GET) and the body's signature (POST) guard it,
# see test_webhook.py.
WEBHOOK_ROUTES = [
    Route("GET", "/api/whatsapp/webhook/cloud"),
    Route("POST", "/api/whatsapp/webhook/cloud"),
    Route("GET", "/api/whatsapp/webhook/cloud/<company_id>"),
    Route("POST", "/api/whatsapp/webhook/cloud/<company_id>"),
]

# Pages: a login form for anyone; what they show needs the token (cookie), see test_pages.py.
PAGE_ROUTES = [
    Route("ANY", "/"),
    Route("GET", "/static/<path:path>"),
    Route("GET", "/connect/<company_id>"),
    Route("POST", "/connect/<company_id>/login"),
    Route("POST", "/connect/<company_id>/logout"),
    Route("POST", "/login"),
    Route("POST", "/logout"),
]

# Routes whose company is named in the body or found from the row; tested in test_send.py.
BODY_ROUTES = [
    Route("POST", "/api/whatsapp/send", {"companyId": "beta", "phone": "15551234567", "message": "hi"}),
    Route("GET", "/api/whatsapp/send/<message_id>"),
]

PROTECTED = COMPANY_ROUTES + ASSISTANT_ROUTES + ADMIN_ROUTES + BODY_ROUTES


def _routes_of_app(**env: str) -> set[tuple[str, str]]:
    from wafleet.actors.metrics import Metrics
    from wafleet.http.app import build_app
    from wafleet.http.context import Context
    from wafleet.http.settings import load

    settings = load({"WAFLEET_SANDBOX": "true", "STATSD_HOST": "", **env})
    # Installing routes reads only the settings; nothing is called until a request arrives.
    ctx = Context(settings=settings, db=None, tree=None, directory=None, auth=None, links=None)  # type: ignore[arg-type]
    app = build_app(ctx, Metrics(None))
    return {(r.method, r.rule) for r in app.routes}


def test_route_tables_cover_the_app() -> None:
    listed = {(r.method, r.rule) for r in PROTECTED + PUBLIC_ROUTES + PAGE_ROUTES + WEBHOOK_ROUTES}
    assert _routes_of_app() == listed, "a route of build_app is missing from the tables (or gone)"
    # Single-tenant mode adds id-less twins of the company routes, acting on DEFAULT_COMPANY_ID.
    twins = {(r.method, r.rule.replace("/<company_id>", "")) for r in COMPANY_ROUTES + ASSISTANT_ROUTES}
    assert _routes_of_app(WHATSAPP_MULTI_TENANT="false") == listed | twins


# -- one node, three companies ------------------------------------------------------------------
@dataclass
class Fleet:
    node: Node
    tokens: dict[str, str]

    def snapshot(self, company_id: str) -> dict[str, Any]:
        r = self.node.client.get(f"/admin/companies/{company_id}", headers=self.node.admin())
        assert r.status_code == 200, r.text
        body = r.json()
        s = body["session"]
        return {
            "company": body["company"],
            "status": s["status"],
            "since": s["since"],
            "restarts": s["restarts"],
            "phoneNumber": s["phoneNumber"],
            "history": s["history"],
        }

    def company_ids(self) -> list[str]:
        r = self.node.client.get("/admin/companies", headers=self.node.admin())
        return [c["id"] for c in r.json()["companies"]]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # This module tries hundreds of wrong tokens from one address: lift the failed-auth limit
    # (test_security_http.py tests the limit itself).
    node = Node(
        tmp_path_factory.mktemp("isolation"),
        WHATSAPP_RECONNECT_DELAY="50",
        WAFLEET_AUTH_FAILURE_LIMIT="100000",
    ).start()
    try:
        tokens = {cid: node.create_company(cid) for cid in ("alpha", "beta", "gamma")}
        node.connect("beta")  # beta connected, gamma stopped: both must stay so
        yield Fleet(node, tokens)
    finally:
        node.close()


def _send(node: Node, route: Route, company_id: str, headers: dict[str, str]) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kwargs["json"] = route.body
    return node.client.request(route.method, route.path(company_id), **kwargs)


def _assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]


def test_each_company_gets_its_own_token(fleet: Fleet) -> None:
    tokens = list(fleet.tokens.values())
    assert len(set(tokens)) == 3
    assert ADMIN_TOKEN not in tokens
    assert all(t.startswith("wf_") and len(t) >= 40 for t in tokens)
    # the token is shown once: no read of the company gives it back
    admin = fleet.node.admin()
    listing = fleet.node.client.get("/admin/companies", headers=admin).text
    one = fleet.node.client.get("/admin/companies/alpha", headers=admin).text
    for token in tokens:
        assert token not in listing and token not in one


@pytest.mark.parametrize("route", COMPANY_ROUTES + ASSISTANT_ROUTES, ids=str)
@pytest.mark.parametrize("victim", ["beta", "gamma", "no-such-company"])
def test_company_token_is_forbidden_on_other_companies_routes(
    fleet: Fleet, route: Route, victim: str
) -> None:
    before = fleet.snapshot(victim) if victim != "no-such-company" else None
    r = _send(fleet.node, route, victim, {"Authorization": f"Bearer {fleet.tokens['alpha']}"})
    # 403 even for a company that does not exist: a token cannot probe for other tenants' ids
    _assert_error(r, 403, "forbidden")
    if before is not None:
        assert fleet.snapshot(victim) == before


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=str)
@pytest.mark.parametrize("target", ["alpha", "beta"])
def test_company_token_is_forbidden_on_admin_routes(fleet: Fleet, route: Route, target: str) -> None:
    """Even on its own company's admin record: a company cannot rename or delete itself."""
    before = fleet.snapshot(target)
    r = _send(fleet.node, route, target, {"Authorization": f"Bearer {fleet.tokens['alpha']}"})
    _assert_error(r, 403, "forbidden")
    assert fleet.snapshot(target) == before
    assert "intruder" not in fleet.company_ids()


def _basic(value: str) -> str:
    return "Basic " + base64.b64encode(value.encode()).decode()


BAD_CREDENTIALS: dict[str, dict[str, str]] = {
    "none": {},
    "wrong-token": {"Authorization": "Bearer wf_not-a-real-token"},
    "bearer-only": {"Authorization": "Bearer"},
    "no-scheme": {"Authorization": "{alpha}"},
    "basic-scheme": {"Authorization": _basic(f"admin:{ADMIN_TOKEN}")},
    "token-scheme": {"Authorization": "Token {alpha}"},
    "token-plus-junk": {"Authorization": "Bearer {alpha} extra"},
    "admin-prefix": {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    "admin-suffix": {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    "company-token-as-admin-header": {"X-Admin-Token": "{alpha}"},
    "wrong-admin-header": {"X-Admin-Token": "wf_not-the-admin-token"},
    "empty-admin-header": {"X-Admin-Token": ""},
    # A malformed Authorization wins over a valid X-Admin-Token: no guessing which one was meant.
    "bad-auth-with-admin-header": {"Authorization": "Bearer nope", "X-Admin-Token": ADMIN_TOKEN},
}


@pytest.mark.parametrize("route", PROTECTED, ids=str)
@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS), ids=str)
def test_no_or_bad_token_is_401(fleet: Fleet, route: Route, credentials: str) -> None:
    alpha = fleet.tokens["alpha"]
    headers = {name: value.replace("{alpha}", alpha) for name, value in BAD_CREDENTIALS[credentials].items()}
    before = fleet.snapshot("beta")
    r = _send(fleet.node, route, "beta", headers)
    _assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert fleet.snapshot("beta") == before


@pytest.mark.parametrize("route", PROTECTED, ids=str)
@pytest.mark.parametrize("header", [b"Bearer \xff\xfe", b"\xc3(", b"Bearer wf_\xe9"])
def test_undecodable_authorization_header_is_400(fleet: Fleet, route: Route, header: bytes) -> None:
    """Bytes that are not UTF-8 in the header (Bottle's own decoding raised: a 500): refused
    before any route reads a header, like every other undecodable header."""
    for name in ("Authorization", "X-Admin-Token"):
        conn = http.client.HTTPConnection("127.0.0.1", fleet.node.port, timeout=10)
        try:
            conn.putrequest(route.method, route.path("beta"))
            conn.putheader(name, header)
            conn.putheader("Content-Length", "0")
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 400, (name, body)
        assert b'"invalid_header"' in body


def test_admin_token_via_either_header_opens_everything(fleet: Fleet) -> None:
    for headers in ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"X-Admin-Token": ADMIN_TOKEN}):
        assert fleet.node.client.get("/admin/companies", headers=headers).status_code == 200
        assert fleet.node.client.get("/api/whatsapp/sessions", headers=headers).status_code == 200
        assert fleet.node.client.get("/api/whatsapp/metrics", headers=headers).status_code == 200
        r = fleet.node.client.get("/admin/companies/beta", headers=headers)
        assert r.status_code == 200 and r.json()["company"]["id"] == "beta"
        for cid in ("alpha", "beta", "gamma"):
            r = fleet.node.client.get(f"/api/whatsapp/sessions/{cid}/status", headers=headers)
            assert r.status_code == 200 and r.json()["companyId"] == cid
    # the scheme is case-insensitive (RFC 9110)
    r = fleet.node.client.get("/admin/companies", headers={"Authorization": f"bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200


def test_public_routes_need_no_token(fleet: Fleet) -> None:
    for route in PUBLIC_ROUTES:
        assert fleet.node.client.request(route.method, route.path()).status_code == 200


def test_company_token_drives_its_own_session(fleet: Fleet) -> None:
    """Every company route, with alpha's own token, does its job (the table must be covered)."""
    node, token = fleet.node, fleet.tokens["alpha"]
    headers = {"Authorization": f"Bearer {token}"}
    hit: set[str] = set()

    def call(method: str, suffix: str, body: Any = None, expect: int = 200) -> dict[str, Any]:
        sandbox = suffix in ("scan", "enter-code", "disconnect", "crash", "inbound", "outbox", "zombie")
        prefix = "/api/sandbox/alpha" if sandbox else "/api/whatsapp/sessions/alpha"
        extra = {"Accept": "application/json"} if suffix == "qr" else {}
        r = node.client.request(method, f"{prefix}/{suffix}", headers={**headers, **extra}, json=body)
        assert r.status_code == expect, f"{method} {suffix}: {r.status_code} {r.text}"
        hit.add(f"{method} {prefix.replace('alpha', '<company_id>')}/{suffix}")
        return r.json()

    def status() -> dict[str, Any]:
        return call("GET", "status")

    def wait(state: str) -> dict[str, Any]:
        return wait_for(lambda: (s := status())["status"] == state and s, what=f"alpha {state}")

    assert status()["status"] == "stopped"
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/alpha/events", fleet.tokens["alpha"])
    hit.add("GET /api/whatsapp/sessions/<company_id>/events")
    call("POST", "initialize", {}, 202)
    wait("qr")
    assert call("GET", "qr")["code"].startswith("2@")
    call("POST", "scan", {}, 202)
    wait("connected")
    call("POST", "inbound", {"from": "15551234567", "text": "hi"}, 202)
    assert call("GET", "outbox")["companyId"] == "alpha"

    def received() -> int:
        r = node.client.get("/api/whatsapp/metrics/alpha", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["metrics"]["messages"]["received"]

    # The sandbox's 202 means the message was handed to the link; the session stores it after.
    wait_for(lambda: received() == 1, what="alpha's inbound message counted")
    hit.add("GET /api/whatsapp/metrics/<company_id>")
    call("POST", "disconnect", {"reason": "transient"}, 202)
    wait_for(lambda: (s := status())["status"] == "connected" and s["restarts"] == 1, what="alpha back")
    call("POST", "crash", None, 202)
    wait_for(lambda: (s := status())["status"] == "connected" and s["restarts"] == 2, what="alpha back")
    call("POST", "zombie", {}, 202)  # its link goes silent; a stop still ends it
    assert call("POST", "stop")["status"] == "stopped"
    call("POST", "reconnect")
    wait("connected")  # the login was kept: no QR
    assert call("POST", "cleanup")["status"] == "stopped"
    code = call("POST", "pairing-code", {"phoneNumber": "15551234567"})["pairingCode"]
    call("POST", "enter-code", {"code": code}, 202)
    assert wait("connected")["phoneNumber"] == "15551234567"
    call("POST", "cleanup")
    r = node.client.get("/api/whatsapp/messages/alpha", headers=headers)
    assert r.status_code == 200
    assert [(m["companyId"], m["direction"], m["text"]) for m in r.json()["messages"]] == [
        ("alpha", "in", "hi")
    ]
    hit.add("GET /api/whatsapp/messages/<company_id>")
    blocklist = "/api/whatsapp/blocklist/alpha"
    for method, path, body in (
        ("PUT", blocklist, {"numbers": ["15551234567"]}),
        ("POST", blocklist, {"numbers": ["15551234568"]}),
        ("DELETE", f"{blocklist}/15551234567", None),
        ("GET", blocklist, None),
    ):
        r = node.client.request(method, path, headers=headers, json=body)
        assert r.status_code == 200, r.text
        hit.add(f"{method} /api/whatsapp/blocklist/<company_id>" + ("/<phone>" if method == "DELETE" else ""))
    assert r.json()["numbers"] == ["15551234568"]
    r = node.client.get("/api/whatsapp/webhooks/alpha/deliveries", headers=headers)
    assert r.status_code == 200 and r.json() == {"deliveries": [], "nextCursor": None}  # no webhooks
    hit.add("GET /api/whatsapp/webhooks/<company_id>/deliveries")
    r = node.client.post("/api/whatsapp/webhooks/alpha/deliveries/1/redeliver", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    hit.add("POST /api/whatsapp/webhooks/<company_id>/deliveries/<delivery_id>/redeliver")
    r = node.client.post("/api/whatsapp/webhooks/alpha/deliveries/redeliver", headers=headers)
    assert r.status_code == 202 and r.json() == {"redelivered": 0}
    hit.add("POST /api/whatsapp/webhooks/<company_id>/deliveries/redeliver")
    assert {e.data["companyId"] for e in stream.until(lambda e: e.data["reason"] == "cleanup")} == {"alpha"}
    stream.close()

    assert hit == {str(r) for r in COMPANY_ROUTES}
    # and none of that touched the other companies
    assert fleet.snapshot("beta")["status"] == "connected"
    assert fleet.snapshot("gamma")["status"] == "stopped"


@pytest.mark.parametrize("route", ASSISTANT_ROUTES, ids=str)
def test_company_token_opens_its_own_assistant_routes(fleet: Fleet, route: Route) -> None:
    r = _send(fleet.node, route, "gamma", {"Authorization": f"Bearer {fleet.tokens['gamma']}"})
    assert r.status_code not in (401, 403), f"{route}: {r.status_code} {r.text}"
    assert r.status_code < 500 and r.headers["content-type"].startswith("application/json")


def test_deleted_company_token_stops_working(fleet: Fleet) -> None:
    node = fleet.node
    old = node.create_company("delta")
    own = {"Authorization": f"Bearer {old}"}
    assert node.client.get("/api/whatsapp/sessions/delta/status", headers=own).status_code == 200
    assert node.client.delete("/admin/companies/delta", headers=node.admin()).status_code == 200
    _assert_error(node.client.get("/api/whatsapp/sessions/delta/status", headers=own), 401, "unauthorized")
    # the same id again gets a new token; the old one stays dead
    new = node.create_company("delta")
    assert new != old
    _assert_error(node.client.get("/api/whatsapp/sessions/delta/status", headers=own), 401, "unauthorized")
    r = node.client.get("/api/whatsapp/sessions/delta/status", headers={"Authorization": f"Bearer {new}"})
    assert r.status_code == 200
    node.client.delete("/admin/companies/delta", headers=node.admin())


def test_others_untouched_after_all_attempts(fleet: Fleet) -> None:
    """Runs last in this module: nothing alpha tried reached beta or gamma."""
    beta, gamma = fleet.snapshot("beta"), fleet.snapshot("gamma")
    assert beta["status"] == "connected" and beta["restarts"] == 0
    assert [h["status"] for h in beta["history"]] == ["starting", "qr", "connected"]
    assert beta["company"]["name"] == "Beta"
    assert gamma["status"] == "stopped" and gamma["history"] == []
    assert sorted(fleet.company_ids()) == ["alpha", "beta", "gamma"]


def test_single_tenant_routes_keep_tenants_apart(node_factory) -> None:
    node: Node = node_factory(
        WHATSAPP_MULTI_TENANT="false", DEFAULT_COMPANY_ID="main", WAFLEET_AUTH_FAILURE_LIMIT="100000"
    ).start()
    other = node.create_company("other")
    headers = {"Authorization": f"Bearer {other}"}
    for route in COMPANY_ROUTES:
        kwargs: dict[str, Any] = {"headers": headers}
        if route.body is not None:
            kwargs["json"] = route.body
        r = node.client.request(route.method, route.rule.replace("/<company_id>", ""), **kwargs)
        _assert_error(r, 403, "forbidden")
    assert node.status("main")["status"] == "stopped"
    assert node.client.get("/api/whatsapp/sessions/other/status", headers=headers).status_code == 200
