"""The metrics routes over HTTP against a real node: shapes, figures, isolation, persistence."""

from __future__ import annotations

from typing import Any

from tests.harness import Node, wait_for

FAST = {"WHATSAPP_METRICS_INTERVAL": "200", "WHATSAPP_RECONNECT_DELAY": "100", "STATSD_HOST": ""}


def get(node: Node, path: str, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else node.admin()
    r = node.client.get(path, headers=headers)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    return r.json()


def inbound(node: Node, company_id: str, n: int) -> None:
    for i in range(n):
        r = node.post(f"/api/sandbox/{company_id}/inbound", {"from": "15551234567", "text": f"hi {i}"})
        assert r.status_code == 202, r.text


def test_figures_of_a_working_fleet_in_the_users_shapes(node_factory) -> None:
    node = node_factory(**FAST).start()
    tokens = {cid: node.create_company(cid) for cid in ("alpha", "beta", "gamma")}
    node.connect("alpha")
    node.connect("beta")
    inbound(node, "alpha", 3)
    r = node.post("/api/whatsapp/send", {"companyId": "alpha", "phone": "15551234567", "message": "hello"})
    assert r.status_code == 202, r.text
    wait_for(lambda: get(node, "/api/whatsapp/metrics")["messagesSent"] == 1, what="the send")
    # a dropped connection: an error of class NETWORK, a disconnection, a restart
    assert node.post("/api/sandbox/beta/disconnect", {"reason": "transient"}).status_code == 202
    wait_for(lambda: (s := node.status("beta"))["status"] == "connected" and s["restarts"] == 1)

    m = get(node, "/api/whatsapp/metrics")
    assert m["messagesSent"] == 1 and m["messagesReceived"] == 3
    sessions = m["sessions"]
    assert sessions["active"] == 2 and sessions["connected"] == 2 and sessions["stopped"] == 1
    assert sessions["connections"] == 3 and sessions["disconnections"] == 1
    assert m["errors"]["total"] == 1 and m["errors"]["breakdown"] == {"NETWORK": 1}
    # 1 error among: 3 connections, 3 messages in, 1 out, the error itself
    assert m["errors"]["rate"] == round(1 / 8, 4)

    alpha = get(node, "/api/whatsapp/metrics/alpha", tokens["alpha"])
    assert alpha["success"] is True
    assert alpha["metrics"]["companyId"] == "alpha"
    assert alpha["metrics"]["messages"] == {"sent": 1, "received": 3, "failed": 0}
    assert alpha["metrics"]["errors"] == {"total": 0, "rate": 0.0}
    assert alpha["metrics"]["uptime"] >= 0
    beta = get(node, "/api/whatsapp/metrics/beta", tokens["beta"])["metrics"]
    assert beta["errors"]["total"] == 1 and beta["messages"]["received"] == 0

    rate = get(node, "/api/whatsapp/metrics/rate")
    assert rate["messagesPerMinute"] == {"sent": 1, "received": 3, "total": 4}

    perf = get(node, "/api/whatsapp/metrics/performance")
    assert perf["operations"]["send"]["count"] == 1
    assert perf["operations"]["connect"]["count"] == 1  # beta's resume (QR scans wait for a human)
    status_route = perf["routes"]["GET /api/whatsapp/sessions/<company_id>/status"]
    assert status_route["count"] >= 2
    assert 0 < status_route["p50"] <= status_route["p95"] <= status_route["p99"] <= status_route["max"]

    page = get(node, "/api/whatsapp/metrics/companies/all?limit=2")
    assert [c["companyId"] for c in page["companies"]] == ["alpha", "beta"]
    assert page["total"] == 3 and page["nextCursor"] == "beta"
    rest = get(node, f"/api/whatsapp/metrics/companies/all?limit=2&cursor={page['nextCursor']}")
    assert [c["companyId"] for c in rest["companies"]] == ["gamma"] and rest["nextCursor"] is None

    health = get(node, "/api/whatsapp/health/metrics")
    assert health["sessions"]["connected"] == 2
    assert health["metrics"]["messagesReceived"] == 3
    assert health["process"]["memoryMb"] > 10 and health["process"]["openFiles"] > 3
    assert set(health["process"]["cpu"]) == {"percent", "userSeconds", "systemSeconds"}

    def saved() -> dict[str, int] | None:
        """The sums over the saved minutes, once every figure above has been saved."""
        points = get(node, "/api/whatsapp/metrics/timeseries")["points"]
        sums = {k: sum(p[k] for p in points) for k in ("messagesIn", "messagesOut", "restarts", "errors")}
        # the connected gauge is the count when the minute was last saved: both, once saved again
        done = sums == {"messagesIn": 3, "messagesOut": 1, "restarts": 1, "errors": 1}
        return sums if done and points[-1]["connected"] == 2 else None

    wait_for(saved, what="the minutes' figures saved")


def test_a_company_sees_only_its_own_figures(node_factory) -> None:
    node = node_factory(**FAST).start()
    alpha = node.create_company("alpha")
    node.create_company("beta")
    r = node.client.get("/api/whatsapp/metrics/beta", headers={"Authorization": f"Bearer {alpha}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    for path in (
        "/api/whatsapp/metrics",
        "/api/whatsapp/metrics/companies/all",
        "/api/whatsapp/metrics/performance",
        "/api/whatsapp/metrics/timeseries",
        "/api/whatsapp/metrics/rate",
        "/api/whatsapp/metrics/alerts",
        "/api/whatsapp/health/metrics",
    ):
        r = node.client.get(path, headers={"Authorization": f"Bearer {alpha}"})
        assert r.status_code == 403, path
    r = node.client.get("/api/whatsapp/metrics/nobody", headers=node.admin())
    assert r.status_code == 404
    for bad in ("limit=0", "limit=x", "limit=100000"):
        r = node.client.get(f"/api/whatsapp/metrics/companies/all?{bad}", headers=node.admin())
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query"
    r = node.client.get("/api/whatsapp/metrics/timeseries?minutes=1441", headers=node.admin())
    assert r.status_code == 400


def test_the_timeseries_survives_a_kill_9(node_factory, database_url: str) -> None:
    node = node_factory(database_url, **FAST).start()
    node.create_company("alpha")
    node.connect("alpha")
    inbound(node, "alpha", 4)

    def saved() -> list[dict[str, Any]] | None:
        points = get(node, "/api/whatsapp/metrics/timeseries")["points"]
        return points if sum(p["messagesIn"] for p in points) == 4 else None

    before = wait_for(saved, what="four messages in the saved timeseries")
    node.kill()
    again = node_factory(database_url, **FAST).start()  # the same folder and database
    after = get(again, "/api/whatsapp/metrics/timeseries")["points"]
    assert [p["t"] for p in before] == [p["t"] for p in after][: len(before)]
    assert sum(p["messagesIn"] for p in after) == 4
    # and it goes on adding up after the restart (the session is restored: connected again)
    again.wait_status("alpha", "connected")
    inbound(again, "alpha", 1)
    wait_for(
        lambda: sum(p["messagesIn"] for p in get(again, "/api/whatsapp/metrics/timeseries")["points"]) == 5,
        what="the fifth message added to the saved minutes",
    )
