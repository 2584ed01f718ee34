"""The deliverer in-process: however it ends, nothing it started keeps sending."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import peewee

from wafleet.actors.messages import Send
from wafleet.actors.metrics import Metrics
from wafleet.actors.outbox import Deliverer, DelivererConfig
from wafleet.storage import outbox
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


class FakeFleet:
    """Answers ``Send`` like the Fleet; company a's first send hangs until ``release``; company b's
    fails like a database that went away, once a's is under way."""

    def __init__(self) -> None:
        self.sends: Counter[str] = Counter()
        self.release = gevent.event.Event()
        self.a_in_flight = gevent.event.Event()
        self.fail_b = True

    def __call__(self) -> FakeFleet:
        return self

    def ask(self, message: Any, timeout: float | None = None) -> str:
        assert isinstance(message, Send)
        self.sends[message.text] += 1
        if message.id == "a":
            self.a_in_flight.set()
            self.release.wait()
        elif self.fail_b:
            self.a_in_flight.wait()
            raise peewee.OperationalError("server closed the connection unexpectedly")
        return f"wamid.{message.text}.{self.sends[message.text]}"


def _start(db: Database, fleet: FakeFleet) -> gevent.event.AsyncResult:
    exited = gevent.event.AsyncResult()
    Deliverer.start(
        db=db, metrics=Metrics(None), fleet=fleet, on_sent=lambda row, wa_id: None, on_exit=exited.set
    )
    return exited


def test_a_crashed_deliverer_sends_nothing_more(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/wafleet.db")
    migrate(db)
    rows = {
        text: outbox.enqueue(db, company, "5511977776666", text).id
        for company, text in [("a", "a1"), ("a", "a2"), ("b", "b1")]
    }
    fleet = FakeFleet()

    try:  # the failure ends the deliverer at once, though company a's send is still under way
        crashed = _start(db, fleet).get(timeout=5)
    except gevent.Timeout:
        raise AssertionError("the database failure was not reported while another send hung") from None
    assert crashed.reason == "crash" and "server closed the connection" in crashed.message
    assert fleet.sends["a1"] == 1  # was under way when the deliverer crashed

    # The Root starts a new deliverer; a1 is sent again (it may not have reached WhatsApp), and
    # every other message exactly once: the crashed one's sends in flight must not go on.
    fleet.fail_b = False
    fleet.release.set()
    exited = _start(db, fleet)
    try:
        with gevent.Timeout(5):
            while any(outbox.get(db, row_id).state != "sent" for row_id in rows.values()):
                gevent.sleep(0.01)
    except gevent.Timeout:
        raise AssertionError(
            f"not all sent: {[outbox.get(db, i) for i in rows.values()]}; {fleet.sends}"
        ) from None
    assert not exited.ready()
    assert fleet.sends == {"a1": 2, "a2": 1, "b1": 2}


class RecordingFleet:
    """Answers every ``Send`` at once and remembers the order."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def __call__(self) -> RecordingFleet:
        return self

    def ask(self, message: Any, timeout: float | None = None) -> str:
        self.order.append(message.id)
        gevent.sleep(0)  # a real send yields while it waits for the network
        return f"wamid.{len(self.order)}"


def test_companies_take_turns_when_more_are_waiting_than_may_send_at_once(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/wafleet.db")
    migrate(db)
    for i in range(40):
        outbox.enqueue(db, "bulk", f"55118{i:08d}", f"bulk {i}")
    outbox.enqueue(db, "quick", "5511977776666", "quick")
    fleet = RecordingFleet()
    Deliverer.start(
        db=db,
        metrics=Metrics(None),
        fleet=fleet,
        on_sent=lambda row, wa_id: None,
        on_exit=lambda exit_: None,
        config=DelivererConfig(concurrency=1, quantum=5),
    )
    with gevent.Timeout(10):
        while len(fleet.order) < 41:
            gevent.sleep(0.01)
    # one lane for two companies: bulk (the older rows) yields its turn after 5 messages
    assert fleet.order.index("quick") <= 5, fleet.order
