"""The assistant's HTTP API on a real node: config, bookings (50 at once for one slot, on SQLite and
PostgreSQL), cancel, reschedule, availability, events on the live stream, isolation."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.assistant_helpers import TZ, at, salon, setup_salon, tomorrow
from tests.harness import ADMIN_TOKEN, Node, wait_for
from tests.sse import SseClient

PHONE = "351910000001"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_config_is_read_and_replaced_by_its_company_only(node_factory) -> None:
    node: Node = node_factory().start()
    token = node.create_company("rosa")
    other = node.create_company("sol")
    c = node.client
    r = c.get("/api/assistant/rosa/config", headers=auth(token))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_configured"
    assert c.put("/api/assistant/rosa/config", json=salon(), headers=auth(other)).status_code == 403
    assert c.get("/api/assistant/rosa/config").status_code == 401
    r = c.put("/api/assistant/rosa/config", json=salon(), headers=auth(token))
    assert r.status_code == 200, r.text
    got = c.get("/api/assistant/rosa/config", headers=auth(token)).json()
    assert got["businessName"] == "Salon Rosa" and got["services"][0]["name"] == "Стрижка"
    assert c.get("/api/assistant/rosa/bookings", headers=auth(other)).status_code == 403
    # a bad document names the field, and the stored config is unchanged
    bad = salon()
    bad["resources"][0]["services"] = ["haircut", "nails"]
    r = c.put("/api/assistant/rosa/config", json=bad, headers=auth(token))
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "invalid_config",
        "message": "resources[0].services[1]: names no service: 'nails'",
        "field": "resources[0].services[1]",
    }
    for body in ([], "x", {"timezone": "Nowhere/City"}):
        r = c.put("/api/assistant/rosa/config", json=body, headers=auth(token))
        assert r.status_code == 400 and "error" in r.json()
    assert c.get("/api/assistant/rosa/config", headers=auth(token)).json() == got


def test_fifty_concurrent_requests_for_one_slot_make_one_booking(node_factory, database_url: str) -> None:
    node: Node = node_factory(database_url).start()
    token = setup_salon(node, "rosa")
    start = at(tomorrow(), 14).isoformat()

    def book(i: int) -> httpx.Response:
        with httpx.Client(base_url=node.base_url, timeout=30) as client:
            body = {"service": "haircut", "start": start, "customerPhone": f"3519100001{i:02d}"}
            return client.post("/api/assistant/rosa/bookings", json=body, headers=auth(token))

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(book, range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49, statuses
    for r in responses:
        if r.status_code == 409:
            body = r.json()
            assert body["error"]["code"] == "slot_taken"
            assert len(body["alternatives"]) == 3
            assert start not in body["alternatives"]
    listed = node.client.get("/api/assistant/rosa/bookings", headers=auth(token)).json()["bookings"]
    assert len(listed) == 1 and listed[0]["status"] == "confirmed" and listed[0]["start"] == start
    # an alternative offered is really free
    alternative = responses[[r.status_code for r in responses].index(409)].json()["alternatives"][0]
    r = node.client.post(
        "/api/assistant/rosa/bookings",
        json={"service": "haircut", "start": alternative, "customerPhone": PHONE},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text


def test_bookings_list_cancel_reschedule_availability_and_events(node_factory) -> None:
    node: Node = node_factory().start()
    token = setup_salon(node, "rosa")
    c = node.client
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/rosa/events", token)
    day = tomorrow()
    made = []
    for hour in (10, 12, 16):
        r = c.post(
            "/api/assistant/rosa/bookings",
            json={
                "service": "manicure",
                "start": at(day, hour).isoformat(),
                "customerPhone": PHONE,
                "customerName": "Olga",
            },
            headers=auth(token),
        )
        assert r.status_code == 201, r.text
        made.append(r.json())
    assert made[0]["customerPhone"] == PHONE and made[0]["customerName"] == "Olga"
    assert made[0]["end"] == at(day, 10, 45).isoformat() and made[0]["resource"] == "anna"
    created = stream.until(lambda e: e.event == "booking.created" and e.data["code"] == made[2]["code"])
    assert "customerPhone" not in created[-1].data

    # paged by start time
    page = c.get("/api/assistant/rosa/bookings?limit=2", headers=auth(token)).json()
    assert [b["code"] for b in page["bookings"]] == [made[0]["code"], made[1]["code"]] and page["nextCursor"]
    rest = c.get(
        f"/api/assistant/rosa/bookings?limit=2&cursor={page['nextCursor']}", headers=auth(token)
    ).json()
    assert [b["code"] for b in rest["bookings"]] == [made[2]["code"]] and rest["nextCursor"] is None

    # cancel by code (company token), then it is listed as cancelled and its slot is free again
    r = c.post(f"/api/assistant/rosa/bookings/{made[1]['code']}/cancel", headers=auth(token))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (
        c.post(f"/api/assistant/rosa/bookings/{made[1]['code']}/cancel", headers=auth(token)).status_code
        == 409
    )
    assert c.post("/api/assistant/rosa/bookings/ZZZZZZ/cancel", headers=auth(token)).status_code == 404
    stream.until(lambda e: e.event == "booking.cancelled" and e.data["code"] == made[1]["code"])
    cancelled = c.get("/api/assistant/rosa/bookings?status=cancelled", headers=auth(token)).json()["bookings"]
    assert [b["code"] for b in cancelled] == [made[1]["code"]]
    free = c.get(f"/api/assistant/rosa/availability?service=manicure&date={day}", headers=auth(token)).json()
    assert at(day, 12).isoformat() in free["starts"] and at(day, 10).isoformat() not in free["starts"]
    assert at(day, 10, 30).isoformat() not in free["starts"]  # 10:30 + 45 min overlaps 10:00-10:45

    # reschedule onto a taken slot: refused, the booking stays; onto a free one: moved, same code
    r = c.post(
        f"/api/assistant/rosa/bookings/{made[0]['code']}/reschedule",
        json={"start": at(day, 16, 15).isoformat()},
        headers=auth(token),
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "slot_taken" and r.json()["alternatives"]
    r = c.post(
        f"/api/assistant/rosa/bookings/{made[0]['code']}/reschedule",
        json={"start": at(day, 12).isoformat()},
        headers=auth(token),
    )
    assert r.status_code == 200 and r.json()["start"] == at(day, 12).isoformat()
    moved = stream.until(lambda e: e.event == "booking.rescheduled")[-1]
    assert moved.data["code"] == made[0]["code"] and moved.data["previousStart"] == at(day, 10).isoformat()
    stream.close()


def test_bad_booking_requests_are_clear_4xx(node_factory) -> None:
    node: Node = node_factory().start()
    token = setup_salon(node, "rosa")
    c = node.client
    start = at(tomorrow(), 11).isoformat()
    cases = [
        ({"service": "nails", "start": start, "customerPhone": PHONE}, 400, "unknown_service"),
        (
            {"service": "haircut", "resource": "bob", "start": start, "customerPhone": PHONE},
            400,
            "unknown_resource",
        ),
        ({"service": "haircut", "start": "2026-12-01T14:00", "customerPhone": PHONE}, 400, "invalid_field"),
        ({"service": "haircut", "start": "tomorrow", "customerPhone": PHONE}, 400, "invalid_field"),
        ({"service": "haircut", "start": start, "customerPhone": "+1 555"}, 400, "invalid_phone"),
        ({"service": "haircut", "start": start, "customerPhone": PHONE, "x": 1}, 400, "unknown_field"),
        (
            {"service": "haircut", "start": at(tomorrow(), 3).isoformat(), "customerPhone": PHONE},
            409,
            "outside_hours",
        ),
        (
            {
                "service": "haircut",
                "start": (dt.datetime.now(TZ) - dt.timedelta(hours=1)).isoformat(),
                "customerPhone": PHONE,
            },
            409,
            "past",
        ),
    ]
    for body, status, code in cases:
        r = c.post("/api/assistant/rosa/bookings", json=body, headers=auth(token))
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
    for query in ("service=haircut&date=tomorrow", "service=nails&date=2026-12-01", "date=2026-12-01"):
        r = c.get(f"/api/assistant/rosa/availability?{query}", headers=auth(token))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query"
    for query in ("limit=0", "status=maybe", "cursor=abc", "from=yesterday"):
        r = c.get(f"/api/assistant/rosa/bookings?{query}", headers=auth(token))
        assert r.status_code == 400, (query, r.text)
    r = c.get("/api/assistant/rosa/stats?from=2026-12-02&to=2026-12-01", headers=auth(token))
    assert r.status_code == 400
    # the admin token opens every company's assistant too
    assert c.get("/api/assistant/rosa/bookings", headers=auth(ADMIN_TOKEN)).status_code == 200
    assert c.get("/api/assistant/nobody/bookings", headers=auth(ADMIN_TOKEN)).status_code == 404


def test_hostile_assistant_input_is_a_clear_4xx_never_a_500(node_factory) -> None:
    node: Node = node_factory().start()
    token = setup_salon(node, "rosa")
    c, h = node.client, auth(token)
    bad_configs = [
        salon(services=[{"id": "x" * 65, "name": "n", "durationMin": 30}]),
        salon(services=[{"id": "a", "name": "\ud800", "durationMin": 30}]),
        salon(services=[{"id": "a", "name": "n", "durationMin": True}]),
        salon(services=[{"id": "a", "name": "n", "durationMin": 30}] * 2),
        salon(services=[{"id": "a", "name": "n", "durationMin": 30, "aliases": [[]]}]),
        salon(services=[{"id": f"s{i}", "name": "n", "durationMin": 30} for i in range(101)]),
        salon(hours={"mon": {"open": "9:00", "close": "19:00"}}),
        salon(hours={"mon": "09:00-19:00"}),
        salon(hours={"closed": ["2026-02-30"]}),
        salon(languages=[]),
        salon(languages="ru"),
        salon(slotStepMin=0),
        salon(horizonDays=10**9),
        salon(faq=[{"question": "q"}]),
        salon(ai={"enabled": "yes"}),
        salon(businessName="x" * 201),
        salon(timezone="../../etc/passwd"),
    ]
    for body in bad_configs:
        raw = json.dumps(body)  # ASCII, so that a lone surrogate travels as JSON allows: "\ud800"
        r = c.put(
            "/api/assistant/rosa/config", content=raw, headers={**h, "Content-Type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", (body, r.text)
        assert r.json()["error"]["field"] in r.json()["error"]["message"]
    r = c.put(
        "/api/assistant/rosa/config",
        content=b'{"a":' * 5000,
        headers={**h, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    for path in ("conversations/abc", "conversations/%00", "conversations/" + "9" * 40):
        r = c.get(f"/api/assistant/rosa/{path}", headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_phone", (path, r.text)
    for minutes in (0, -5, True, "10", 10**12):
        r = c.post(
            "/api/assistant/rosa/conversations/351910000001/pause", json={"minutes": minutes}, headers=h
        )
        assert r.status_code == 400, (minutes, r.text)
    for code in ("abc", "ABC1234", "%00", "ÄÄÄÄÄÄ"):
        r = c.post(f"/api/assistant/rosa/bookings/{code}/cancel", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (code, r.text)
    for start in ("2026-13-01T10:00:00+00:00", "9" * 41, "", "2026-12-01T10:00:00+99:00"):
        r = c.post(
            "/api/assistant/rosa/bookings",
            json={"service": "haircut", "start": start, "customerPhone": PHONE},
            headers=h,
        )
        assert r.status_code == 400, (start, r.text)
    r = c.post(
        "/api/assistant/rosa/bookings",
        json={
            "service": "haircut",
            "start": at(tomorrow(), 11).isoformat(),
            "customerPhone": PHONE,
            "customerName": "\x00",
        },
        headers=h,
    )
    assert r.status_code == 400
    assert node.status("rosa")["status"] == "connected"


def test_assistant_settings_have_defaults_and_refuse_bad_values() -> None:
    from wafleet.http.settings import ConfigError, load

    s = load({})
    assert (s.batch_window_ms, s.handoff_minutes, s.conversation_idle_ms) == (2000, 30, 600_000)
    s = load(
        {"WAFLEET_BATCH_WINDOW": "0", "WAFLEET_HANDOFF_MINUTES": "5", "WAFLEET_CONVERSATION_IDLE": "60000"}
    )
    assert (s.batch_window_ms, s.handoff_minutes, s.conversation_idle_ms) == (0, 5, 60000)
    for name, value in (
        ("WAFLEET_BATCH_WINDOW", "2s"),
        ("WAFLEET_HANDOFF_MINUTES", "-1"),
        ("WAFLEET_CONVERSATION_IDLE", "10"),
    ):
        with pytest.raises(ConfigError, match=name):
            load({name: value})


def test_a_booking_that_has_ended_is_completed(node_factory, tmp_path) -> None:
    node: Node = node_factory(WAFLEET_BOOKING_COMPLETE_EVERY="200").start()
    token = setup_salon(node, "rosa")
    r = node.client.post(
        "/api/assistant/rosa/bookings",
        json={"service": "haircut", "start": at(tomorrow(), 10).isoformat(), "customerPhone": PHONE},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    # yesterday's appointment, as a booking made then would be (the API takes no past starts)
    from wafleet.storage.database import Database
    from wafleet.storage.models import Booking
    from wafleet.storage.phone_vault import vault_for

    vault = vault_for(None, f"{tmp_path}/data")  # the node's own key (no WAFLEET_ENCRYPTION_KEY)
    db = Database(f"sqlite:///{tmp_path}/data/wafleet.db")
    yesterday = int((dt.datetime.now(TZ) - dt.timedelta(days=1)).timestamp() * 1000)
    with db.work():
        Booking.insert(
            company="rosa", code="PAST23", customer_phone=vault.seal("rosa", PHONE),
            customer_hash=vault.lookup("rosa", PHONE), service="haircut",
            resource="anna", start_ms=yesterday, end_ms=yesterday + 3600_000, status="confirmed",
            source="api", created_at=yesterday, updated_at=yesterday,
        ).execute()  # fmt: skip
    db.close()

    def statuses() -> dict[str, str]:
        listed = node.client.get("/api/assistant/rosa/bookings", headers=auth(token)).json()["bookings"]
        return {b["code"]: b["status"] for b in listed}

    done = wait_for(
        lambda: (s := statuses()).get("PAST23") == "completed" and s, what="the ended one completed"
    )
    assert done[r.json()["code"]] == "confirmed"  # the one ahead is untouched
