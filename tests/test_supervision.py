"""The actor base and the tree, in-process: every exit seen, faults contained, escalation."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pykka
import pytest

from wafleet.actors import messages as m
from wafleet.actors.directory import Directory
from wafleet.actors.fleet import FleetConfig
from wafleet.actors.gevent_actor import ActorInterrupted, Exit, SupervisedActor
from wafleet.actors.journal import Journal
from wafleet.actors.links.factory import LinkFactory
from wafleet.actors.links.sandbox import SandboxTiming
from wafleet.actors.metrics import Metrics
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.session import SessionDeps
from wafleet.actors.tree import Tree, Unavailable
from wafleet.storage import events
from wafleet.storage.authstate import AuthStore
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


class Probe(SupervisedActor):
    def __init__(self, on_exit: Any, fail_on_start: bool = False) -> None:
        super().__init__(on_exit)
        self.fail_on_start = fail_on_start

    def on_start(self) -> None:
        if self.fail_on_start:
            raise RuntimeError("boom at start")

    def on_receive(self, message: Any) -> Any:
        if message == "raise":
            raise ValueError("bad message")
        if message == "timeout":
            with gevent.Timeout(0.01):
                gevent.sleep(1)
        if message == "leave":
            self.exit("logged_out", "device removed")
        return "pong"


def start_probe(**kwargs: Any) -> tuple[pykka.ActorRef[Any], gevent.event.AsyncResult]:
    exited = gevent.event.AsyncResult()
    return Probe.start(exited.set, **kwargs), exited


def test_failure_in_on_start_is_reported_as_a_crash() -> None:
    _, exited = start_probe(fail_on_start=True)
    exit_: Exit = exited.get(timeout=2)
    assert exit_.reason == "crash" and "boom at start" in exit_.message


def test_failed_tell_kills_the_actor_and_reports_why() -> None:
    ref, exited = start_probe()
    ref.tell("raise")
    exit_ = exited.get(timeout=2)
    assert exit_.reason == "crash" and "ValueError: bad message" in exit_.message
    assert not ref.is_alive()


def test_failed_ask_goes_back_to_the_caller_and_the_actor_lives() -> None:
    ref, exited = start_probe()
    with pytest.raises(ValueError):
        ref.ask("raise", timeout=2)
    assert ref.ask("ping", timeout=2) == "pong"
    ref.stop()
    assert exited.get(timeout=2).reason == "normal"


def test_a_timeout_in_one_actor_stops_only_that_actor() -> None:
    victim, victim_exit = start_probe()
    bystander, _ = start_probe()
    with pytest.raises(ActorInterrupted):
        victim.ask("timeout", timeout=2)  # asked: the caller gets it, the actor lives
    victim.tell("timeout")  # told: the victim fails like any crash
    assert victim_exit.get(timeout=2).reason == "crash"
    assert bystander.ask("ping", timeout=2) == "pong"  # pykka would have stopped every actor


def test_exit_carries_the_actors_own_reason() -> None:
    ref, exited = start_probe()
    ref.tell("leave")
    exit_ = exited.get(timeout=2)
    assert (exit_.reason, exit_.message) == ("logged_out", "device removed")


# -- the tree ------------------------------------------------------------------------------------
def build_tree(tmp_path: Path, give_up: Any, root_restarts: int = 3) -> tuple[Tree, Database, Directory]:
    db = Database(f"sqlite:///{tmp_path}/tree.db")
    migrate(db)
    directory = Directory()
    deps = SessionDeps(
        journal=Journal(db, Metrics(None)),
        auth=AuthStore(str(tmp_path / "sessions")),
        links=LinkFactory(sandbox=True, sandbox_timing=SandboxTiming(reconnect=0.001)),
        metrics=Metrics(None),
    )
    tree = Tree(
        db=db,
        directory=directory,
        deps=deps,
        fleet_config=FleetConfig(
            policy=RestartPolicy(base=0.05, max_delay=0.2),
            max_sessions=100,
            boot_rate=10_000,
            escalate_after=10,
            escalate_period=5,
        ),
        root_policy=RestartPolicy(base=0.01, max_delay=0.05, max_restarts=root_restarts, window=60),
        on_give_up=give_up,
        rng=random.Random(3),
    )
    return tree, db, directory


def wait(predicate: Any, timeout: float = 10) -> None:
    with gevent.Timeout(timeout, AssertionError("condition not reached")):
        while not predicate():
            gevent.sleep(0.01)


def connect_all(tree: Tree, directory: Directory, ids: list[str]) -> None:
    for cid in ids:
        tree.call(m.CreateCompany(cid, cid, None, "sandbox"))
        tree.call(m.Initialize(cid))
    wait(lambda: all(directory.get(c).status == "qr" for c in ids))
    for cid in ids:
        tree.call(m.Sandbox(cid, "scan"))
    wait(lambda: all(directory.get(c).status == "connected" for c in ids))


def test_many_sessions_crashing_together_escalate_and_the_fleet_comes_back(tmp_path: Path) -> None:
    gave_up: list[str] = []
    tree, db, directory = build_tree(tmp_path, gave_up.append)
    ids = [f"c{i}" for i in range(24)]
    connect_all(tree, directory, ids)
    first_fleet = tree.fleet()
    crash_all(tree, ids)
    # The Fleet trips its intensity, stops its children and exits; the Root starts a new Fleet,
    # which restores every session from the database.
    wait(lambda: (f := _fleet_or_none(tree)) is not None and f != first_fleet)
    wait(lambda: all_connected(directory, ids))  # the new Fleet reloads every record first
    alerts = [e for e in events.after(db, None, 0, 10_000) if e.kind == "alert"]
    assert [a.reason for a in alerts] == ["fleet_escalated"]
    assert gave_up == []
    tree.shutdown()


def test_root_gives_up_when_the_fleet_keeps_escalating(tmp_path: Path) -> None:
    gave_up: list[str] = []
    tree, _, directory = build_tree(tmp_path, gave_up.append, root_restarts=1)
    ids = [f"c{i}" for i in range(12)]
    connect_all(tree, directory, ids)
    for round_ in range(2):
        fleet = tree.fleet()
        crash_all(tree, ids)
        if round_ == 0:
            wait(lambda f=fleet: (n := _fleet_or_none(tree)) is not None and n != f)
            wait(lambda: all_connected(directory, ids))
    wait(lambda: bool(gave_up))
    assert "fleet failed 2 times" in gave_up[0]
    tree.shutdown()


def test_one_flaky_company_never_takes_its_neighbours_down(tmp_path: Path) -> None:
    tree, _, directory = build_tree(tmp_path, lambda reason: None)
    ids = ["flaky", "n1", "n2"]
    connect_all(tree, directory, ids)
    seen: set[str] = set()
    flaky = directory.get("flaky")
    for crash in range(1, 12):
        wait(lambda: flaky.status == "connected")
        tree.call(m.Sandbox("flaky", "crash"))
        wait(lambda n=crash: flaky.restarts == n or flaky.status == "failed")
        seen |= {directory.get(c).status for c in ("n1", "n2")}
    wait(lambda: directory.get("flaky").status == "failed")
    assert seen == {"connected"}
    assert directory.get("flaky").last_error["reason"] == "too_many_restarts"
    tree.shutdown()


def crash_all(tree: Tree, ids: list[str]) -> None:
    """Crash every session; once the Fleet escalates, the rest find it gone (503 over HTTP)."""
    for cid in ids:
        try:
            tree.call(m.Sandbox(cid, "crash"))
        except Unavailable:
            pass


def all_connected(directory: Directory, ids: list[str]) -> bool:
    return all((r := directory.get(c)) is not None and r.status == "connected" for c in ids)


def _fleet_or_none(tree: Tree) -> Any:
    try:
        return tree.fleet()
    except Exception:
        return None


def test_a_close_message_with_bad_bytes_is_recorded_not_fatal(tmp_path: Path) -> None:
    """A link may report any text; NUL and lone surrogates must not fail the fleet's write."""
    tree, db, directory = build_tree(tmp_path, lambda reason: None)
    connect_all(tree, directory, ["odd"])
    fleet = tree.fleet()
    tree.call(m.Sandbox("odd", "disconnect", {"reason": "transient", "message": "bad\x00\ud800bytes"}))
    wait(lambda: directory.get("odd").status == "reconnecting" or directory.get("odd").restarts == 1)
    wait(lambda: directory.get("odd").status == "connected")
    assert tree.fleet() == fleet  # the fleet never restarted
    assert directory.get("odd").last_error["message"] == "bad?bytes"
    tree.shutdown()
