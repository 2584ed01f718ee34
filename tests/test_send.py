"""Sending: a 202 means committed; the deliverer sends it once the session is connected."""

from __future__ import annotations

from tests.harness import Node, wait_for


def _send(node: Node, company: str, text: str, token: str | None = None, phone: str = "5511988887777"):
    return node.post(
        "/api/whatsapp/send", {"companyId": company, "phone": phone, "message": text}, token=token
    )


def _outbox_row(node: Node, row_id: int, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else node.admin()
    r = node.client.get(f"/api/whatsapp/send/{row_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_send_reaches_the_customer_through_the_sandbox(node: Node) -> None:
    token = node.create_company("shop")
    node.connect("shop")
    r = _send(node, "shop", "Your appointment is at 10:00", token=token)
    assert r.status_code == 202, r.text
    row = r.json()
    assert row["status"] == "queued" and row["companyId"] == "shop"
    sent = wait_for(lambda: (s := _outbox_row(node, row["id"], token))["status"] == "sent" and s)
    assert sent["waId"].startswith("wamid.")
    far_side = node.client.get("/api/sandbox/shop/outbox", headers=node.admin()).json()["messages"]
    assert [(m["to"], m["text"], m["waId"]) for m in far_side] == [
        ("5511988887777", "Your appointment is at 10:00", sent["waId"])
    ]


def test_messages_wait_for_the_session_and_survive_a_kill_9(node_factory, database_url) -> None:
    node: Node = node_factory(database_url).start()
    node.create_company("later")
    ids = [_send(node, "later", f"message {i}").json()["id"] for i in range(3)]
    # The deliverer tries the first (the customer's head of line), finds no live session and puts
    # it back to wait with the reason; the rows behind it wait too. Read once that happened, not
    # right after the 202: during an attempt a row is "sending", for as long as a loaded machine
    # takes. Pending either way: none is sent while the session is down.
    head = wait_for(
        lambda: (r := _outbox_row(node, ids[0]))["status"] == "queued" and r["error"] and r,
        timeout=20,
        what="the deliverer to put the first message back to wait for the session",
    )
    assert "no live session" in head["error"]["message"] and head["attempts"] == 0
    assert all(_outbox_row(node, i)["status"] in ("queued", "sending") for i in ids)
    node.kill()  # the 202s were committed: nothing is lost
    node.start()
    node.connect("later")
    wait_for(lambda: all(_outbox_row(node, i)["status"] == "sent" for i in ids), timeout=20, what="all sent")
    far_side = node.client.get("/api/sandbox/later/outbox", headers=node.admin()).json()["messages"]
    assert [m["text"] for m in far_side] == ["message 0", "message 1", "message 2"]


def test_send_is_tenant_isolated_and_validated(node: Node) -> None:
    token_a = node.create_company("a")
    node.create_company("b")
    r = _send(node, "b", "not yours", token=token_a)
    assert r.status_code == 403
    row = _send(node, "b", "hello").json()
    r = node.client.get(f"/api/whatsapp/send/{row['id']}", headers={"Authorization": f"Bearer {token_a}"})
    assert r.status_code == 404  # another company's message does not exist for a
    assert _send(node, "a", "x", token=token_a, phone="+55 11").status_code == 400
    assert _send(node, "a", "", token=token_a).status_code == 400
    assert _send(node, "a", "x" * 4097, token=token_a).status_code == 400
    assert _send(node, "nobody", "x").status_code == 404
    r = node.post("/api/whatsapp/send", {"phone": "5511988887777", "message": "hi"}, token=token_a)
    assert r.status_code == 202 and r.json()["companyId"] == "a"  # a company token implies its id


def test_a_conversation_lands_in_the_history_and_on_the_stream(node: Node) -> None:
    from tests.sse import SseClient

    token = node.create_company("salon")
    node.connect("salon")
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/salon/events", token)
    r = node.post("/api/sandbox/salon/inbound", {"from": "5511977776666", "text": "Can I book at 3pm?"})
    assert r.status_code == 202
    event = stream.until(lambda e: e.event == "message").pop()
    assert (event.data["direction"], event.data["peer"], event.data["text"]) == (
        "in",
        "5511977776666",
        "Can I book at 3pm?",
    )
    _send(node, "salon", "Yes, see you at 3pm", token=token, phone="5511977776666")
    out = stream.until(lambda e: e.event == "message" and e.data["direction"] == "out").pop()
    assert out.data["text"] == "Yes, see you at 3pm"
    stream.close()
    history = node.client.get(
        "/api/whatsapp/messages/salon", headers={"Authorization": f"Bearer {token}"}
    ).json()["messages"]
    assert [(m["direction"], m["text"]) for m in history] == [
        ("out", "Yes, see you at 3pm"),
        ("in", "Can I book at 3pm?"),
    ]
    assert history[0]["status"] == "sent"
