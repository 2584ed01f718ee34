"""The admin sessions list as the dashboard uses it at scale: pages, a status filter and a search
by id, name or phone; without those parameters it answers as it always did (every session)."""

from __future__ import annotations

from tests.harness import Node

LIST = "/api/whatsapp/sessions"


def listing(node: Node, **params: str) -> dict:
    r = node.client.get(LIST, params=params, headers=node.admin())
    assert r.status_code == 200, r.text
    return r.json()


def test_pages_search_by_name_and_status_filter(node: Node) -> None:
    node.create_company("salon-rosa", name="Salão Rosa", phone="5511999990001")
    node.create_company("clinica-sol", name="Clínica Sol")
    node.create_company("loja-azul", name="Loja Azul")
    for i in range(7):
        node.create_company(f"shop-{i}", name=f"Shop number {i}")
    node.connect("loja-azul")

    # existing callers: no parameters -> every session, sorted by id, with its total
    everything = listing(node)
    ids = [s["companyId"] for s in everything["sessions"]]
    assert ids == sorted(ids) and len(ids) == 10 and everything["total"] == 10
    assert "history" not in everything["sessions"][0]
    assert "nextCursor" not in everything
    assert [s["companyId"] for s in listing(node, status="connected")["sessions"]] == ["loja-azul"]

    # pages of 4 follow the cursor to the end, each row once, with the name shown
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        page = listing(node, **params)
        assert page["total"] == 10 and len(page["sessions"]) <= 4
        seen += [s["companyId"] for s in page["sessions"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    assert {s["companyId"]: s["name"] for s in everything["sessions"]}["salon-rosa"] == "Salão Rosa"

    # search finds a name (case and accents as typed), an id fragment, a phone
    assert [s["companyId"] for s in listing(node, q="rosa")["sessions"]] == ["salon-rosa"]
    assert [s["companyId"] for s in listing(node, q="CLÍNICA")["sessions"]] == ["clinica-sol"]
    assert [s["companyId"] for s in listing(node, q="salão")["sessions"]] == ["salon-rosa"]
    assert [s["companyId"] for s in listing(node, q="Salao R")["sessions"]] == ["salon-rosa"]
    assert [s["companyId"] for s in listing(node, q="azul")["sessions"]] == ["loja-azul"]
    assert [s["companyId"] for s in listing(node, q="99990001")["sessions"]] == ["salon-rosa"]
    found = listing(node, q="shop number", limit="5")
    assert found["total"] == 7 and len(found["sessions"]) == 5 and found["nextCursor"] == "shop-4"
    # search and filter together
    assert listing(node, q="loja", status="stopped")["sessions"] == []
    assert listing(node, q="loja", status="connected")["total"] == 1


def test_bad_list_parameters_are_clear_400s(node: Node) -> None:
    node.create_company("acme")
    for params, word in (
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"status": "dancing"}, "status"),
        ({"q": "x" * 201}, "q"),
        ({"cursor": "x" * 300}, "cursor"),
    ):
        r = node.client.get(LIST, params=params, headers=node.admin())
        assert r.status_code == 400, (params, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_query" and word in error["message"]
    # a company token does not list the fleet
    token = node.create_company("bistro")
    r = node.client.get(LIST, params={"q": "acme"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
