"""The one supervision mechanism (actors/supervisor.py) and the journal's state machine, in-process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pykka
import pytest

from wafleet.actors.directory import SessionRecord
from wafleet.actors.gevent_actor import SupervisedActor
from wafleet.actors.journal import Journal
from wafleet.actors.messages import ChildExited, Shutdown, StartChild
from wafleet.actors.metrics import Metrics
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.status import IllegalTransition
from wafleet.actors.supervisor import Children, ChildSpec
from wafleet.storage import companies, events
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


class Child(SupervisedActor):
    """Stops when asked, or -- when ``stuck`` -- takes ``stuck`` seconds to get to it."""

    def __init__(self, on_exit: Any, stuck: float = 0.0) -> None:
        super().__init__(on_exit)
        self.stuck = stuck

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Shutdown):
            if self.stuck:
                gevent.sleep(self.stuck)  # a child that overruns its budget
            self.exit("normal", "shutdown")
        return None


class Owner(SupervisedActor):
    """A minimal supervisor: it records what the mechanism lets through."""

    def __init__(self, seen: gevent.queue.Queue) -> None:
        super().__init__(None)
        self.children = Children(lambda: self.actor_ref, RestartPolicy(base=0.01, max_delay=0.02))
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        match message:
            case ("add", spec):
                self.children.add(spec)
                return self.children.start(spec.id).generation
            case ("live", child_id):
                return self.children.ref(child_id)
            case ("stop", child_id):
                self.children.stop(child_id)
                return None
            case ("stop_all",):
                started = time.monotonic()
                self.children.stop_all()
                return time.monotonic() - started
            case ("restart_later", child_id):
                slot = self.children.get(child_id)
                assert slot is not None
                self.children.restart_later(slot, 0.01)
                return None
            case ChildExited():
                self.seen.put(
                    ("exit", message.id, message.generation, self.children.exited(message) is not None)
                )
            case StartChild():
                self.seen.put(("start", message.id, self.children.due(message) is not None))
        return None


def child_spec(child_id: str, stuck: float = 0.0, shutdown: float = 2.0) -> ChildSpec:
    return ChildSpec(child_id, lambda on_exit: Child.start(on_exit, stuck), shutdown=shutdown)


@pytest.fixture
def owner() -> tuple[pykka.ActorRef[Any], gevent.queue.Queue]:
    seen: gevent.queue.Queue = gevent.queue.Queue()
    ref = Owner.start(seen)
    yield ref, seen
    ref.stop()


def test_the_late_exit_of_a_replaced_child_never_counts_for_its_successor(owner) -> None:
    ref, seen = owner
    first = ref.ask(("add", child_spec("c")))
    ref.ask(("stop", "c"))  # stopped on purpose: its exit is expected ...
    second = ref.ask(("add", child_spec("c")))  # ... and a new child takes the slot at once
    assert second != first
    assert seen.get(timeout=2) == ("exit", "c", first, False)  # stale: the successor lives on
    ref.ask(("restart_later", "c"))  # a timer of the live generation ...
    assert seen.get(timeout=2) == ("start", "c", False)  # ... does not start a second child


def test_starting_over_a_live_child_stops_it_first(owner) -> None:
    ref, seen = owner
    first = ref.ask(("add", child_spec("c")))
    old = ref.ask(("live", "c"))
    second = ref.ask(("add", child_spec("c")))
    assert not old.is_alive() and ref.ask(("live", "c")).is_alive()
    assert seen.get(timeout=2) == ("exit", "c", first, False)
    assert second != first


def test_generations_are_unique_across_supervisors(owner) -> None:
    ref, _ = owner
    other = Owner.start(gevent.queue.Queue())
    try:
        mine = {ref.ask(("add", child_spec(f"c{i}"))) for i in range(5)}
        theirs = {other.ask(("add", child_spec(f"c{i}"))) for i in range(5)}
        assert len(mine | theirs) == 10
    finally:
        other.stop()


def test_stop_all_gives_each_child_its_own_budget_then_stops_it_hard(owner, caplog) -> None:
    ref, _ = owner
    ref.ask(("add", child_spec("quick", shutdown=30.0)))
    ref.ask(("add", child_spec("slow", stuck=30.0, shutdown=0.3)))
    took = ref.ask(("stop_all",), timeout=20)
    assert took < 30.0  # the stuck child was not waited for, nor given its sibling's budget
    assert "did not stop within 0.3s: stopping it hard" in caplog.text


def journal_and_record(tmp_path: Path, strict: bool) -> tuple[Journal, SessionRecord, Database]:
    db = Database(f"sqlite:///{tmp_path}/j.db")
    migrate(db)
    companies.create(db, id="c", name="C", phone=None, link="sandbox", token_hash="h" * 64)
    record = SessionRecord(
        company_id="c", name="C", link="sandbox", company_phone=None, token_hash="h", created_at=0
    )
    return Journal(db, Metrics(None), strict=strict), record, db


def test_an_illegal_edge_raises_in_strict_mode(tmp_path: Path) -> None:
    journal, record, db = journal_and_record(tmp_path, strict=True)
    with pytest.raises(IllegalTransition, match="stopped -> connected"):
        journal.transition(record, "connected", reason="linked")
    assert record.status == "stopped" and not list(events.recent(db, "c", "status", 10))


def test_an_illegal_edge_is_logged_and_refused_in_production(tmp_path: Path, caplog) -> None:
    journal, record, db = journal_and_record(tmp_path, strict=False)
    assert journal.transition(record, "connected", reason="linked") is False
    assert record.status == "stopped" and not list(events.recent(db, "c", "status", 10))
    assert "stopped -> connected is not a legal transition" in caplog.text
    assert journal.transition(record, "starting", reason="qr") is True  # a legal one goes through
    assert [e.state for e in events.recent(db, "c", "status", 10)] == ["starting"]
