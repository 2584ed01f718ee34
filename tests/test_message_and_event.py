"""A message and its ``message`` event (which feeds the company's webhooks and the live streams)
are stored together or not at all: a crash between the two must not leave a message in the
history that no webhook and no stream ever hears of. In-process, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wafleet.actors.journal import Journal
from wafleet.actors.message_log import MessageLog
from wafleet.actors.metrics import Metrics
from wafleet.storage import deliveries, events, messages
from wafleet.storage.database import Database
from wafleet.storage.outbox import OutboxRow
from wafleet.storage.schema import migrate

PEER = "5511977776666"


class Crash(Exception):
    """The node dies here (in a real crash nothing after this point runs)."""


@pytest.fixture
def log(database_url: str) -> Iterator[MessageLog]:
    db = Database(database_url)
    migrate(db)
    yield MessageLog(Journal(db, Metrics(None)))
    db.close()


def crash_while_writing_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event's write (with the webhook deliveries it causes) dies once."""
    real = deliveries.fan_out
    calls = []

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise Crash("killed between the message and its event")
        return real(*args, **kwargs)

    monkeypatch.setattr(deliveries, "fan_out", dying)


def told(db: Database, company: str) -> list[tuple[int, str]]:
    """The history's messages, and the message events stored for the company: (id, direction)."""
    history = [(m["id"], m["direction"]) for m in messages.page(db, company, 50, None)[0]]
    said = [
        (e.data["messageId"], e.data["direction"])
        for e in events.after(db, company, 0)
        if e.kind == "message"
    ]
    return sorted(history), sorted(said)


@pytest.mark.parametrize(
    "report",
    [
        lambda log: log.inbound("rosa", {"peer": PEER, "type": "text", "text": "olá", "wa_id": "W1"}),
        lambda log: log.inbound("rosa", {"from_me": True, "peer": PEER, "text": "sou a Rosa", "wa_id": "W2"}),
        lambda log: log.sent(OutboxRow(7, "rosa", PEER, "até já", "sent", 1, 0, None, None, 0), "W3"),
    ],
    ids=["inbound", "from-phone", "sent"],
)
def test_a_crash_between_a_message_and_its_event_leaves_neither(
    log: MessageLog, monkeypatch: pytest.MonkeyPatch, report: Callable[[MessageLog], None]
) -> None:
    crash_while_writing_the_event(monkeypatch)
    with pytest.raises(Crash):
        report(log)
    history, said = told(log.db, "rosa")
    assert history == said == []
    report(log)  # the link reports it again (or the deliverer retries its row)
    history, said = told(log.db, "rosa")
    assert len(history) == 1 and history == said
