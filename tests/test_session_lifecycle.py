"""The session state machine as a user drives it: QR, scan, crash, close reasons, stop."""

from __future__ import annotations

from tests.harness import Node, wait_for


def test_qr_rounds_change_code_then_scan_connects(node_factory) -> None:
    node: Node = node_factory(WAFLEET_QR_FIRST_TIMEOUT="300", WAFLEET_QR_TIMEOUT="200").start()
    node.create_company("salon")
    assert node.post("/api/whatsapp/sessions/salon/initialize").status_code == 202
    first = node.wait_status("salon", "qr")["qr"]["code"]
    qr = node.client.get(
        "/api/whatsapp/sessions/salon/qr", headers={**node.admin(), "Accept": "application/json"}
    ).json()
    assert qr["round"] >= 1 and qr["expiresAt"].endswith("Z")
    second = wait_for(
        lambda: (c := node.status("salon")["qr"]) and c["code"] != first and c["code"], what="a new QR round"
    )
    assert second != first
    assert node.post("/api/sandbox/salon/scan").status_code == 202
    status = node.wait_status("salon", "connected")
    assert status["connected"] is True and status["qr"] is None
    r = node.client.get("/api/whatsapp/sessions/salon/qr", headers=node.admin())
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_qr"


def test_crash_comes_back_by_itself_with_restart_counted(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="50").start()
    node.create_company("shop")
    node.connect("shop")
    assert node.post("/api/sandbox/shop/crash").status_code == 202
    back = wait_for(
        lambda: (s := node.status("shop"))["status"] == "connected" and s["restarts"] == 1 and s,
        what="shop back and connected",
    )
    assert back["lastError"]["reason"] == "crash"
    assert "injected crash" in back["lastError"]["message"]
    statuses = [h["status"] for h in back["history"]]
    assert statuses[-3:] == ["reconnecting", "starting", "connected"]
    assert back["history"][-3]["retryIn"] >= 0


def test_close_reasons(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="50").start()
    for cid in ("a", "b", "c"):
        node.create_company(cid)
        node.connect(cid)

    # restart_required: straight back, not counted as a restart
    assert node.post("/api/sandbox/a/disconnect", {"reason": "restart_required"}).status_code == 202
    a = wait_for(
        lambda: (
            (s := node.status("a"))["status"] == "connected"
            and s["history"][-2]["reason"] == "restart_required"
            and s
        ),
        what="a reconnected after 515",
    )
    assert a["restarts"] == 0
    assert [h["status"] for h in a["history"][-3:]] == ["connected", "starting", "connected"]

    # transient: reconnecting with a delay, then connected, counted
    assert node.post("/api/sandbox/b/disconnect", {"reason": "transient"}).status_code == 202
    b = wait_for(
        lambda: (s := node.status("b"))["status"] == "connected" and s["restarts"] == 1 and s,
        what="b back after a transient close",
    )
    assert "reconnecting" in [h["status"] for h in b["history"]]

    # logged_out: final, credentials gone, no restart
    assert node.post("/api/sandbox/c/disconnect", {"reason": "logged_out"}).status_code == 202
    c = node.wait_status("c", "logged_out")
    assert c["lastError"]["reason"] == "logged_out" and c["phoneNumber"] is None
    r = node.post("/api/sandbox/c/crash")
    assert r.status_code == 409
    # and after initialize it needs a new QR: the login was wiped
    assert node.post("/api/whatsapp/sessions/c/initialize").status_code == 202
    node.wait_status("c", "qr")


def test_qr_is_an_svg_by_default_a_png_on_request(node: Node) -> None:
    node.create_company("img")
    node.post("/api/whatsapp/sessions/img/initialize")
    node.wait_status("img", "qr")
    svg = node.client.get("/api/whatsapp/sessions/img/qr", headers=node.admin())
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.lstrip().startswith("<svg") and "<path" in svg.text
    png = node.client.get("/api/whatsapp/sessions/img/qr?format=png", headers=node.admin())
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png.content[16:20], "big")
    assert width >= 8 * 21  # at least a version-1 symbol at scale 8
    bad = node.client.get("/api/whatsapp/sessions/img/qr?format=gif", headers=node.admin())
    assert bad.status_code == 400


def test_replaced_waits_a_cooloff_and_a_loop_of_three_raises_an_alert(node_factory) -> None:
    from tests.harness import ADMIN_TOKEN
    from tests.sse import SseClient

    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="20", WAFLEET_REPLACED_COOLOFF="300").start()
    node.create_company("twice")
    node.connect("twice")
    stream = SseClient(node.base_url, "/api/whatsapp/events", ADMIN_TOKEN)
    try:
        for n in (1, 2, 3):
            assert node.post("/api/sandbox/twice/disconnect", {"reason": "replaced"}).status_code == 202
            back = wait_for(
                lambda n=n: (s := node.status("twice"))["status"] == "connected" and s["restarts"] == n and s,
                what=f"back after replaced #{n}",
            )
            waited = back["history"][-3]
            assert (waited["status"], waited["reason"]) == ("reconnecting", "replaced")
            assert waited["retryIn"] >= 0.3  # the cool-off comes first, then the jittered backoff
        alerts = stream.until(lambda e: e.event == "alert" and e.data.get("reason") == "replaced_loop")
        alert = alerts[-1]
        assert alert.data["companyId"] == "twice" and "replaced 3 times" in alert.data["message"]
    finally:
        stream.close()
