"""Companies' lifecycle, pairing codes, and single-tenant mode, as an API user sees them."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

from tests.harness import Node, wait_for

CODE = re.compile(r"^[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}$")  # WhatsApp's alphabet: no 0 O I U


def test_three_stores_connect_at_the_same_time(node_factory, database_url) -> None:
    node: Node = node_factory(database_url).start()
    stores = ["salon-rosa", "clinica-sol", "loja-azul"]
    tokens = {s: node.create_company(s) for s in stores}
    assert len(set(tokens.values())) == 3

    def connect(store: str) -> None:
        assert node.post(f"/api/whatsapp/sessions/{store}/initialize", token=tokens[store]).status_code == 202

    threads = [threading.Thread(target=connect, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = {s: node.wait_status(s, "qr")["qr"]["code"] for s in stores}
    assert len(set(codes.values())) == 3
    for s in stores:
        assert node.post(f"/api/sandbox/{s}/scan", token=tokens[s]).status_code == 202
    for s in stores:
        node.wait_status(s, "connected")
    listed = node.client.get("/api/whatsapp/sessions?status=connected", headers=node.admin()).json()
    assert sorted(x["companyId"] for x in listed["sessions"]) == sorted(stores)


def test_pairing_code_flow(node: Node) -> None:
    node.create_company("clinic", phone="5511999990001")
    r = node.post("/api/whatsapp/sessions/clinic/pairing-code", {"phoneNumber": "5511988887777"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["companyId"] == "clinic" and body["expiresIn"] == 60
    assert CODE.match(body["pairingCode"]), body
    status = node.wait_status("clinic", "pairing")
    assert status["pairingCode"]["code"] == body["pairingCode"]

    wrong = node.post("/api/sandbox/clinic/enter-code", {"code": "AAAA-AAAA"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_code"
    assert (
        node.post("/api/sandbox/clinic/enter-code", {"code": body["pairingCode"].lower()}).status_code == 202
    )
    connected = node.wait_status("clinic", "connected")
    assert connected["phoneNumber"] == "5511988887777" and connected["pairingCode"] is None


def test_initialize_with_pairing_uses_the_stored_phone(node: Node) -> None:
    node.create_company("shop", phone="5511977776666")
    assert node.post("/api/whatsapp/sessions/shop/initialize", {"usePairingCode": True}).status_code == 202
    status = node.wait_status("shop", "pairing")
    assert CODE.match(status["pairingCode"]["code"])
    node.create_company("nophone")
    r = node.post("/api/whatsapp/sessions/nophone/initialize", {"usePairingCode": True})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_phone"


def test_stop_persists_and_delete_erases(node_factory, tmp_path: Path) -> None:
    node: Node = node_factory(f"sqlite:///{tmp_path}/wafleet.db").start()
    node.create_company("gone")
    node.connect("gone")
    creds = tmp_path / "data" / "sessions" / "company_gone"
    assert creds.is_dir()
    r = node.client.patch("/admin/companies/gone", json={"name": "Gone Shop"}, headers=node.admin())
    assert r.status_code == 200 and r.json()["company"]["name"] == "Gone Shop"
    node.post("/api/sandbox/gone/inbound", {"from": "5511977776666", "text": "private"})
    node.post(
        "/api/whatsapp/send", {"companyId": "gone", "phone": "5511977776666", "message": "also private"}
    )
    wait_for(
        lambda: (
            len(node.client.get("/api/whatsapp/messages/gone", headers=node.admin()).json()["messages"]) == 2
        )
    )
    r = node.client.delete("/admin/companies/gone", headers=node.admin())
    assert r.status_code == 200
    assert not creds.exists()
    db = sqlite3.connect(tmp_path / "wafleet.db")
    columns = {
        "message": "company",
        "outbox": "company",
        "event": "company",
        "pairing_code": "company",
        "session": "company_id",
        "company": "id",
    }
    for table, column in columns.items():
        assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = 'gone'").fetchone() == (0,), table
    assert node.client.get("/admin/companies/gone", headers=node.admin()).status_code == 404
    assert node.client.get("/api/whatsapp/sessions/gone/status", headers=node.admin()).status_code == 404
    # the id is free again, with a fresh session
    node.create_company("gone")
    assert node.status("gone")["status"] == "stopped" and node.status("gone")["history"] == []


def test_companies_are_paged(node: Node) -> None:
    for i in range(5):
        node.create_company(f"co-{i}")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = node.client.get("/admin/companies", params=params, headers=node.admin()).json()
        seen += [c["id"] for c in page["companies"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"co-{i}" for i in range(5)]


def test_single_tenant_routes_act_on_the_default_company(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_MULTI_TENANT="false", DEFAULT_COMPANY_ID="main-store").start()
    assert node.post("/api/whatsapp/sessions/initialize").status_code == 202
    wait_for(
        lambda: (
            node.client.get("/api/whatsapp/sessions/status", headers=node.admin()).json()["status"] == "qr"
        )
    )
    assert node.post("/api/sandbox/scan").status_code == 202
    node.wait_status("main-store", "connected")
