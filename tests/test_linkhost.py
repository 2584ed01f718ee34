"""Link hosts: the real neonize worker on this offline machine, and the event mapping at the
JSON-lines boundary with a scripted host. In-process with gevent (not monkey-patched): the test
blocks on gevent queues, which runs the hub."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.queue
import pytest

from wafleet.actors.linkhost import HostPids, LinkHostPool
from wafleet.actors.linkhost_worker import Host, Tenant, ban_until_ms
from wafleet.actors.links.base import HOST_EVENT
from wafleet.actors.links.web import WebLink, store_path
from wafleet.actors.restart import RestartPolicy

FAST = RestartPolicy(base=0.05, max_delay=0.2, max_restarts=5, window=60.0, reset_after=60.0)
SCRIPTED = [sys.executable, str(Path(__file__).with_name("scripted_linkhost.py"))]


class Events:
    """A link's emit(), and a way to wait for the next event of a kind. Like the session, it
    gives a link host's raw events back to the link (``host_event``) in its own greenlet."""

    def __init__(self) -> None:
        self.queue: gevent.queue.Queue = gevent.queue.Queue()
        self.link: WebLink | None = None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == HOST_EVENT:
            assert self.link is not None, "bind the link first"
            self.link.host_event(data)  # in order, as the session's inbox would
            return
        self.queue.put((kind, data))

    def bind(self, link: WebLink) -> WebLink:
        self.link = link
        return link

    def next(self, kind: str | None = None, timeout: float = 20.0) -> tuple[str, dict[str, Any]]:
        with gevent.Timeout(timeout, AssertionError(f"no {kind or 'event'} within {timeout}s")):
            while True:
                item = self.queue.get()
                if kind is None or item[0] == kind:
                    return item


def pool_observer() -> tuple[gevent.queue.Queue, Any]:
    seen: gevent.queue.Queue = gevent.queue.Queue()

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind != "worker_event":
            seen.put((kind, data))

    return seen, on_event


def wait_for(queue: gevent.queue.Queue, kind: str, timeout: float = 20.0) -> dict[str, Any]:
    with gevent.Timeout(timeout, AssertionError(f"no {kind} within {timeout}s")):
        while True:
            got, data = queue.get()
            if got == kind:
                return data


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def pools():
    started: list[Any] = []
    yield started
    for ref in started:
        if ref.is_alive():
            ref.stop()


# -- the real worker (neonize) -------------------------------------------------------------------
def test_offline_web_session_closes_transient(tmp_path: Path, pools: list) -> None:
    pool = LinkHostPool.start(2, policy=FAST)
    pools.append(pool)
    events = Events()
    link = events.bind(WebLink("c1", events, pool, tmp_path))
    link.start(None)
    kind, data = events.next("closed")
    assert data["reason"] == "transient"
    assert "connection failed" in data["message"]
    assert store_path(tmp_path, "c1").parent.is_dir()
    link.stop()


def test_stop_is_clean(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    pool = LinkHostPool.start(1, policy=FAST)
    links = [(e := Events()).bind(WebLink(f"c{i}", e, pool, tmp_path)) for i in range(3)]  # 3 hosts
    for link in links:
        link.start(None)
    for link in links:
        assert link.emit.next("closed")[1]["reason"] == "transient"
    pids = list(pool.ask(HostPids()).values())
    assert len(pids) == 3 and all(pids)
    pool.stop()
    assert all(pid_gone(pid) for pid in pids)
    assert set(threading.enumerate()) == before


def test_killed_worker_is_restarted_and_sessions_start_again(tmp_path: Path, pools: list) -> None:
    seen, on_event = pool_observer()
    pool = LinkHostPool.start(5, policy=FAST, on_event=on_event)
    pools.append(pool)
    events = Events()
    link = events.bind(WebLink("c1", events, pool, tmp_path))
    link.start(None)
    first_pid = wait_for(seen, "host_started")["pid"]
    assert events.next("closed")[1]["reason"] == "transient"
    link.stop()

    os.kill(first_pid, signal.SIGKILL)
    exited = wait_for(seen, "host_exited")
    assert exited["reason"] == "crash" and exited["delay"] is not None
    second_pid = wait_for(seen, "host_started")["pid"]
    assert second_pid != first_pid and pid_gone(first_pid)

    link.start(None)  # the new worker serves it: a real (offline) connection attempt again
    kind, data = events.next("closed")
    assert data["reason"] == "transient" and "connection failed" in data["message"]
    link.stop()
    pool.stop()
    assert pid_gone(second_pid)


# -- the event mapping, through a scripted host -------------------------------------------------
SCRIPT = {
    "company_qr": [
        {"event": "qr", "code": "2@one", "ttl": 60, "round": 1},
        {"event": "qr", "code": "2@two", "ttl": 20, "round": 2},
    ],
    "company_ok": [{"event": "connected", "phone": "15550001", "creds": {"phone": "15550001", "jid": "j"}}],
    "company_lo": [{"event": "closed", "reason": "logged_out", "message": "device removed"}],
    "company_rep": [{"event": "closed", "reason": "replaced", "message": "stream replaced"}],
    "company_ban": [{"event": "closed", "reason": "banned", "message": "banned", "until": 1900000000000}],
    "company_old": [
        {"event": "closed", "reason": "auth", "message": "outdated", "detail": "client_outdated"}
    ],
    "company_in": [
        {"event": "connected", "phone": "1", "creds": {}},
        {"event": "message", "peer": "15559", "type": "text", "text": "hi", "wa_id": "W1", "at": 1},
        {"event": "receipt", "peer": "15559", "ids": ["W0"], "type": "READ", "at": 2},
        {"event": "closed", "reason": "transient", "message": "x", "attempt": "an-old-attempt"},
    ],
}


@pytest.fixture
def scripted(pools: list):
    seen, on_event = pool_observer()
    env = dict(os.environ, WAFLEET_SCRIPT=json.dumps(SCRIPT))
    pool = LinkHostPool.start(10, policy=FAST, command=SCRIPTED, env=env, on_event=on_event)
    pools.append(pool)
    return pool, seen


def test_qr_pairing_and_send(scripted, tmp_path: Path) -> None:
    pool, _ = scripted
    events = Events()
    link = events.bind(WebLink("qr", events, pool, tmp_path))
    link.start(None)
    assert events.next() == ("qr", {"code": "2@one", "ttl": 60, "round": 1})
    assert events.next() == ("qr", {"code": "2@two", "ttl": 20, "round": 2})
    link.pair("+1 555-0100")
    assert events.next() == ("pairing_code", {"code": "ABCD-EFGH", "ttl": 60})
    assert link.send("15550100", "hello") == "3EB0SCRIPTED"
    from wafleet.actors.links.base import SendError

    with pytest.raises(SendError):
        link.send("fail", "hello")
    link.stop()


@pytest.mark.parametrize(
    ("company", "kind", "expected"),
    [
        ("ok", "connected", {"phone": "15550001", "creds": {"phone": "15550001", "jid": "j"}}),
        ("lo", "closed", {"reason": "logged_out", "message": "device removed"}),
        ("rep", "closed", {"reason": "replaced", "message": "stream replaced"}),
        ("ban", "closed", {"reason": "banned", "message": "banned", "until": 1900000000000}),
        ("old", "closed", {"reason": "auth", "message": "outdated", "detail": "client_outdated"}),
    ],
)
def test_event_mapping(scripted, tmp_path: Path, company: str, kind: str, expected: dict) -> None:
    pool, _ = scripted
    events = Events()
    link = events.bind(WebLink(company, events, pool, tmp_path))
    link.start(None)
    assert events.next() == (kind, expected)
    link.stop()


def test_inbound_and_late_events_of_old_attempts(scripted, tmp_path: Path) -> None:
    pool, _ = scripted
    events = Events()
    link = events.bind(WebLink("in", events, pool, tmp_path))
    link.start(None)
    assert events.next()[0] == "connected"
    assert events.next() == (
        "message",
        {"peer": "15559", "type": "text", "text": "hi", "wa_id": "W1", "at": 1},
    )
    assert events.next()[0] == "receipt"
    link.stop()
    assert events.queue.empty()  # the closed of another attempt was dropped


def test_killed_scripted_host_closes_its_sessions(scripted, tmp_path: Path) -> None:
    pool, seen = scripted
    links = {name: (e := Events()).bind(WebLink(name, e, pool, tmp_path)) for name in ("qr", "ok")}
    for link in links.values():
        link.start(None)
    pid = wait_for(seen, "host_started")["pid"]
    assert links["qr"].emit.next("qr")[1]["round"] == 1
    assert links["ok"].emit.next("connected")
    os.kill(pid, signal.SIGKILL)
    for link in links.values():
        kind, data = link.emit.next("closed")
        assert data["reason"] == "transient" and "exited" in data["message"]
        link.stop()  # what the session does on a close
    assert wait_for(seen, "host_started")["pid"] != pid
    links["qr"].start(None)
    assert links["qr"].emit.next("qr")[1]["round"] == 1


# -- the worker's neonize mapping, without Go ---------------------------------------------------
class Captured:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, obj: dict[str, Any]) -> None:
        self.events.append(obj)


@pytest.mark.parametrize(
    ("handler", "event", "reason"),
    [
        ("_on_logged_out", SimpleNamespace(OnConnect=True, Reason=2), "logged_out"),
        ("_on_replaced", None, "replaced"),
        ("_on_ban", SimpleNamespace(Expire=3600, Code=1), "banned"),
        ("_on_outdated", None, "auth"),
    ],
)
def test_worker_maps_neonize_events(tmp_path: Path, handler: str, event: Any, reason: str) -> None:
    out = Captured()
    host = Host(out)  # type: ignore[arg-type]
    tenant = Tenant(host, {"session": "s", "attempt": "a", "store": str(tmp_path / "x" / "n.db")}, None)
    getattr(tenant, handler)(None, event)
    getattr(tenant, handler)(None, event)  # a second close is not reported
    host.pool.shutdown(wait=True)
    assert [e["reason"] for e in out.events] == [reason]
    closed = out.events[0]
    assert closed["session"] == "s" and closed["attempt"] == "a" and closed["message"]
    if reason == "banned":
        assert closed["until"] > 0
    if reason == "auth":
        assert closed["detail"] == "client_outdated"


def test_worker_qr_rounds_and_pending_pair(tmp_path: Path) -> None:
    out = Captured()
    host = Host(out)  # type: ignore[arg-type]
    tenant = Tenant(host, {"session": "s", "store": str(tmp_path / "n.db")}, None)
    paired: list[str] = []
    tenant._pair = paired.append  # type: ignore[method-assign]
    tenant.pair("15550100")  # before the first QR: remembered
    assert paired == []
    tenant._on_qr(None, b"2@a")
    tenant._on_qr(None, b"2@b")
    host.pool.shutdown(wait=True)
    assert [(e["ttl"], e["round"]) for e in out.events] == [(60, 1), (20, 2)]
    assert paired == ["15550100"]


def test_ban_until() -> None:
    assert ban_until_ms(3600, now=1000.0) == 4_600_000
    assert ban_until_ms(1_900_000_000, now=1000.0) == 1_900_000_000_000
    assert ban_until_ms(3600 * 10**9, now=1000.0) == 4_600_000


# -- the health monitor's ping ------------------------------------------------------------------
def test_ping_through_the_link_host(pools: list, tmp_path: Path) -> None:
    """A connected client answers; a worker that went silent for a session never does (the
    monitor's probe timeout then calls it a zombie)."""
    script = {**SCRIPT, "company_mute": SCRIPT["company_ok"]}
    env = dict(os.environ, WAFLEET_SCRIPT=json.dumps(script), WAFLEET_SCRIPT_SILENT='["company_mute"]')
    pool = LinkHostPool.start(10, policy=FAST, command=SCRIPTED, env=env)
    pools.append(pool)
    links = {name: (e := Events()).bind(WebLink(name, e, pool, tmp_path)) for name in ("ok", "mute")}
    for link in links.values():
        link.start(None)
        assert link.emit.next()[0] == "connected"
    assert links["ok"].ping().get(timeout=10) is True
    silent = links["mute"].ping()
    with pytest.raises(gevent.Timeout):
        silent.get(timeout=1.0)  # the probe timeout a test may choose
    for link in links.values():
        link.stop()
    assert links["ok"].ping().get(timeout=1) is False  # a stopped link answers for itself


def test_worker_answers_ping_with_its_clients_state(tmp_path: Path) -> None:
    out = Captured()
    host = Host(out)  # type: ignore[arg-type]
    host.handle({"cmd": "ping", "session": "nobody", "ref": "r0"})
    tenant = Tenant(host, {"session": "s", "attempt": "a", "store": str(tmp_path / "n.db")}, None)
    host.tenants["s"] = tenant
    host.handle({"cmd": "ping", "session": "s", "ref": "r1"})  # not launched yet: not connected
    host.pool.shutdown(wait=True)  # the command's answer comes from the FFI pool
    tenant.launched = True
    tenant.client = SimpleNamespace(is_connected=True)
    tenant.ping("r2")
    tenant.client = SimpleNamespace(is_connected=False)  # whatsmeow lost its connection
    tenant.ping("r3")
    assert [(e["ref"], e["alive"]) for e in out.events] == [
        ("r0", False),
        ("r1", False),
        ("r2", True),
        ("r3", False),
    ]
