"""Live events: each company sees only its own; Last-Event-ID replays exactly what was missed."""

from __future__ import annotations

import queue
import socket

import pytest

from tests.harness import ADMIN_TOKEN, Node, wait_for
from tests.sse import SseClient


@pytest.fixture
def sse_node(node_factory) -> Node:
    return node_factory(WAFLEET_SSE_HEARTBEAT="200").start()


def test_a_company_stream_carries_only_that_company(sse_node: Node) -> None:
    node = sse_node
    token_a = node.create_company("a")
    node.create_company("b")
    stream = SseClient(node.base_url, "/api/whatsapp/sessions/a/events", token_a)
    assert stream.status == 200
    node.connect("b")
    node.connect("a")
    seen = stream.until(lambda e: e.event == "status" and e.data["state"] == "connected")
    assert {e.data["companyId"] for e in seen} == {"a"}
    assert [e.data["state"] for e in seen if e.event == "status"] == ["starting", "qr", "connected"]
    assert any(e.event == "qr" or (e.event == "status" and e.data["state"] == "qr") for e in seen)
    ids = [e.id for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # b's later events never reach a's stream: b crashes and comes back, then a gets a message;
    # events are published in order, so anything of b's would arrive before a's message.
    assert node.post("/api/sandbox/b/crash").status_code == 202
    wait_for(lambda: (s := node.status("b"))["status"] == "connected" and s["restarts"] == 1, what="b back")
    assert node.post("/api/sandbox/a/inbound", {"from": "5511977776666", "text": "hi"}).status_code == 202
    later = stream.until(lambda e: e.event == "message")
    assert {e.data["companyId"] for e in later} == {"a"}, later
    stream.close()


def test_another_company_cannot_open_the_stream(sse_node: Node) -> None:
    token_a = sse_node.create_company("a")
    sse_node.create_company("b")
    stream = SseClient(sse_node.base_url, "/api/whatsapp/sessions/b/events", token_a)
    assert stream.status == 403
    stream.close()
    fleet = SseClient(sse_node.base_url, "/api/whatsapp/events", token_a)
    assert fleet.status == 403
    fleet.close()


def test_last_event_id_replays_exactly_the_missed_events(sse_node: Node) -> None:
    node = sse_node
    token = node.create_company("a")
    first = SseClient(node.base_url, "/api/whatsapp/sessions/a/events", token)
    node.post("/api/whatsapp/sessions/a/initialize")
    got = first.until(lambda e: e.event == "status" and e.data["state"] == "qr")
    last_id = got[-1].id
    first.close()

    # while the client is away: scan, a crash and the comeback
    node.post("/api/sandbox/a/scan")
    node.wait_status("a", "connected")
    node.post("/api/sandbox/a/crash")
    wait_for(lambda: (s := node.status("a"))["restarts"] == 1 and s["status"] == "connected", what="a back")
    wanted = [e for e in _all_events(node) if e.id > last_id and e.data["companyId"] == "a"]

    again = SseClient(node.base_url, "/api/whatsapp/sessions/a/events", token, last_event_id=last_id)
    replayed = [again.next() for _ in wanted]
    assert [(e.id, e.event, e.data["state"]) for e in replayed] == [
        (e.id, e.event, e.data["state"]) for e in wanted
    ]
    assert [e.data["state"] for e in replayed if e.event == "status"] == [
        "connected",
        "reconnecting",
        "starting",
        "connected",
    ]
    # Nothing more, nothing twice: the next event on the stream is the next thing that happens.
    assert node.post("/api/sandbox/a/inbound", {"from": "5511977776666", "text": "hi"}).status_code == 202
    following = again.next()
    assert following.event == "message" and following.id > replayed[-1].id
    again.close()


def test_idle_streams_get_heartbeats_and_the_fleet_stream_sees_everyone(sse_node: Node) -> None:
    node = sse_node
    fleet = SseClient(node.base_url, "/api/whatsapp/events", ADMIN_TOKEN)
    assert fleet.comments.get(timeout=5) == ": keep-alive"
    for cid in ("a", "b"):
        node.create_company(cid)
        node.connect(cid)
    seen = set()
    while seen != {"a", "b"}:
        event = fleet.next()
        if event.event == "status" and event.data["state"] == "connected":
            seen.add(event.data["companyId"])
    fleet.close()


def test_bad_last_event_id_is_a_clear_400(sse_node: Node) -> None:
    token = sse_node.create_company("a")
    r = sse_node.client.get(
        "/api/whatsapp/sessions/a/events",
        headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "abc"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_last_event_id"


def _all_events(node: Node) -> list:
    stream = SseClient(node.base_url, "/api/whatsapp/events", ADMIN_TOKEN, last_event_id=0)
    events = []
    while True:
        try:
            events.append(stream.next(timeout=0.5))
        except queue.Empty:
            break
    stream.close()
    return events


def test_a_client_that_hangs_up_is_let_go_at_once_not_at_the_next_heartbeat(node_factory) -> None:
    node: Node = node_factory().start()  # the default heartbeat: 15 s
    token = node.create_company("a")

    def streams() -> int:
        return node.client.get("/api/whatsapp/metrics", headers=node.admin()).json()["streams"]

    clients = []
    for _ in range(3):  # raw sockets: the test decides exactly when the connection closes
        sock = socket.create_connection(("127.0.0.1", node.port))
        sock.sendall(
            f"GET /api/whatsapp/sessions/a/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        clients.append(sock)
    wait_for(lambda: streams() == 3, what="3 open streams")
    for sock in clients:
        sock.close()
    wait_for(lambda: streams() == 0, timeout=3, what="the server to let the streams go")
    node.connect("a")  # and events still flow to a new listener
    again = SseClient(node.base_url, "/api/whatsapp/sessions/a/events", token, last_event_id=0)
    again.until(lambda e: e.event == "status" and e.data["state"] == "connected")
    again.close()
