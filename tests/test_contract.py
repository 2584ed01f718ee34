"""The OpenAPI contract: every route is declared, the document is valid OpenAPI 3.1 and describes
this node, it is served without a credential, the request models refuse bad input with 400s that
name the field, and Schemathesis finds nothing against a live node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.harness import ADMIN_TOKEN, Node

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes


def _app(**env: str) -> Any:
    from wafleet.actors.metrics import Metrics
    from wafleet.http.app import build_app
    from wafleet.http.context import Context
    from wafleet.http.settings import load

    settings = load({"STATSD_HOST": "", **env})
    # Installing routes reads only the settings; nothing is called until a request arrives.
    ctx = Context(settings=settings, db=None, tree=None, directory=None, auth=None, links=None)  # type: ignore[arg-type]
    return build_app(ctx, Metrics(None))


NODES = [
    {"WAFLEET_SANDBOX": "true"},
    {"WAFLEET_SANDBOX": "false"},
    {"WAFLEET_SANDBOX": "true", "WHATSAPP_MULTI_TENANT": "false"},
]


@pytest.mark.parametrize("env", NODES, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_every_route_is_declared_and_the_document_is_openapi_3_1(env: dict[str, str]) -> None:
    from wafleet.http.contract import contract_of

    app = _app(**env)
    contract = contract_of(app)
    served = {(r.method, r.rule) for r in app.routes}
    declared = {(op.method, op.rule) for op in contract.operations}
    assert served == declared, f"undeclared: {served - declared}; declared, not served: {declared - served}"
    doc = contract.document()
    validate(doc)  # raises on anything that is not OpenAPI 3.1
    assert doc["openapi"] == "3.1.0"
    operations = sum(len(methods) for methods in doc["paths"].values())
    assert operations == len(served)
    sandbox = [p for p in doc["paths"] if p.startswith("/api/sandbox")]
    assert bool(sandbox) == (env["WAFLEET_SANDBOX"] == "true")  # the document describes this node


def test_the_document_states_auth_errors_and_the_nodes_own_patterns() -> None:
    from wafleet.http.contract import contract_of

    doc = contract_of(_app(WAFLEET_SANDBOX="true", WHATSAPP_ALLOWED_PHONE_PATTERN="^351[0-9]{9}$")).document()
    schemes = doc["components"]["securitySchemes"]
    assert {"adminToken", "companyToken", "pageSession", "metaSignature"} <= set(schemes)
    paths = doc["paths"]
    assert paths["/admin/companies"]["post"]["security"] == [
        {"adminToken": []},
        {"adminHeader": []},
        {"pageSession": []},
    ]
    assert {"companyToken": []} in paths["/api/whatsapp/sessions/{company_id}/status"]["get"]["security"]
    assert paths["/api/openapi.json"]["get"]["security"] == []
    assert {"metaSignature": []} in paths["/api/whatsapp/webhook/cloud"]["post"]["security"]
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    detail = doc["components"]["schemas"]["ErrorDetail"]
    assert {"code", "message", "retryAfter"} <= set(detail["properties"])
    send = paths["/api/whatsapp/send"]["post"]
    assert send["responses"]["429"]["headers"]["Retry-After"]
    assert send["responses"]["202"]["content"]["application/json"]
    body = doc["components"]["schemas"][
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    ]
    assert body["additionalProperties"] is False
    assert body["properties"]["phone"]["pattern"] == "^351[0-9]{9}$"  # this node's setting
    assert body["properties"]["message"]["maxLength"] == 4096
    events = paths["/api/whatsapp/sessions/{company_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    pages = paths["/connect/{company_id}"]["get"]["responses"]["200"]["content"]
    assert list(pages) == ["text/html"]
    webhook = paths["/api/whatsapp/webhook/cloud"]["post"]
    assert any(p["name"] == "X-Hub-Signature-256" for p in webhook["parameters"])


def test_the_document_is_served_without_a_credential_and_bad_bodies_name_the_field(node: Node) -> None:
    r = node.client.get("/api/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    validate(doc)
    assert "/api/sandbox/{company_id}/scan" in doc["paths"]
    token = node.create_company("salon")
    h = {"Authorization": f"Bearer {token}"}
    config = {
        "timezone": "Europe/Lisbon",
        "businessName": "Salon",
        "services": [
            {"id": "a", "name": "A", "durationMin": 30},
            {"id": "b", "name": "B", "durationMin": 30},
            {"id": "c", "name": "C", "durationMin": "30"},  # a string where JSON needs a number
        ],
        "resources": [{"id": "r", "name": "R", "services": ["a", "b", "c"]}],
        "hours": {},
    }
    r = node.client.put("/api/assistant/salon/config", json=config, headers=h)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_config" and error["field"] == "services[2].durationMin"
    assert error["message"].startswith("services[2].durationMin")
    for body, code, named in (
        (
            {"companyId": "salon", "phone": "15551234567", "message": "hi", "urgent": True},
            "unknown_field",
            "urgent",
        ),
        ({"companyId": "salon", "phone": "15551234567", "message": 7}, "invalid_field", "message"),
        ({"companyId": "salon", "phone": 15551234567, "message": "hi"}, "invalid_phone", "phone"),
    ):
        r = node.client.post("/api/whatsapp/send", json=body, headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
        assert named in r.json()["error"]["message"]
    r = node.client.post(
        "/api/whatsapp/sessions/salon/initialize", json={"usePairingCode": "true"}, headers=h
    )
    assert r.status_code == 400 and "usePairingCode" in r.json()["error"]["message"]  # no "true" for true
    r = node.client.get("/api/whatsapp/messages/salon?limit=1e3", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query"
    assert "limit" in r.json()["error"]["message"]


def test_a_body_that_says_json_must_be_json_even_when_blank(node: Node) -> None:
    """Found by Schemathesis: "\\r" sent as application/json to an optional-body command ran it."""
    node.create_company("acme")
    r = node.client.post(
        "/api/whatsapp/sessions/acme/stop",
        content=b"\r",
        headers={**node.admin(), "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    assert node.client.post("/api/whatsapp/sessions/acme/stop", headers=node.admin()).status_code == 200


def test_logging_out_of_a_connect_page_with_a_malformed_id_is_a_404(node: Node) -> None:
    """Found by Schemathesis: a malformed company id in the logout URL redirected as if valid."""
    r = node.client.post("/connect/%C3%BB%C3%87/logout")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


# The SSE streams are left out: a stream never ends, so a fuzzer's request would wait forever.
# The crash injection is left out: it kills the session on purpose, and the requests that race
# its restart get the designed 503 "unavailable" with Retry-After (test_session_lifecycle.py
# tests it).
EXCLUDED = r"(/events|/crash)$"
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
    )
)


def _schemathesis(node: Node, token: str, seconds: int) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(HERE / "contract" / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{node.base_url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--exclude-path-regex",
        EXCLUDED,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "30",
        "--max-time",
        str(seconds),
        "--workers",
        "1",  # one thread: ast.parse in CPython 3.11 is not safe across threads (Hypothesis calls it)
        "--request-timeout",
        "10",
        "--seed",
        "20261130",
        "--suppress-health-check",
        "all",
        "--output-truncate",
        "false",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, cwd=node.workdir)


@pytest.mark.slow
def test_schemathesis_finds_nothing_against_a_live_node(node_factory) -> None:
    """The node's own document, fuzzed against it: once with a company's token (a tenant is an
    attacker too), once with the admin token. No 5xx, and every answer is as documented."""
    assert SCHEMATHESIS.exists(), "pip install -e '.[dev]' brings schemathesis"
    node: Node = node_factory(
        WAFLEET_ENCRYPTION_KEY=KEY,
        WAFLEET_WEBHOOK_ALLOW_PRIVATE="true",
        WHATSAPP_WEBHOOK_SECRET="contract-webhook-secret",
        WHATSAPP_VERIFY_TOKEN="contract-verify-token",
        WAFLEET_AUTH_FAILURE_LIMIT="1000000",  # fuzzed page logins fail by the thousand
        WHATSAPP_RATE_LIMIT_PER_COMPANY="1000000",
    ).start()
    tokens = {company: node.create_company(company) for company in ("alpha", "beta")}
    node.connect("beta")
    for who, token in (("company alpha", tokens["alpha"]), ("admin", ADMIN_TOKEN)):
        run = _schemathesis(node, token, 70)
        report = run.stdout[-20000:] + run.stderr[-5000:]
        assert run.returncode == 0, f"Schemathesis with the {who} token:\n{report}"
    assert node.client.get("/readyz").status_code == 200
    assert json.loads(node.client.get("/api/openapi.json").text)["openapi"] == "3.1.0"
