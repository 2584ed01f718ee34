"""The conversations supervisor: its children are temporary. A conversation that crashes is not
restarted; the next message of that chat starts a new one from the persisted state, which answers
what the crash left unanswered. In-process: message log, assistant, supervisor, SQLite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
import peewee
import pytest

from tests.assistant_helpers import salon
from wafleet.actors.assistant import conversations
from wafleet.actors.assistant.conversations import Conversations
from wafleet.actors.assistant.protocol import Active
from wafleet.actors.assistant.service import Assistant, AssistantSettings
from wafleet.actors.journal import Journal
from wafleet.actors.message_log import MessageLog
from wafleet.actors.messages import Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.storage import assistant as store
from wafleet.storage.database import Database
from wafleet.storage.models import Outbox
from wafleet.storage.phone_vault import vault_for
from wafleet.storage.schema import migrate

PEER = "15550000042"


def wait(predicate, timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(0.01)  # lets the actors run (no monkey patching in the test process)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def test_a_crashed_conversation_is_not_restarted_and_the_next_message_goes_on_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path}/a.db")
    migrate(db)
    journal = Journal(db, Metrics(None))
    assistant = Assistant(journal, vault_for(None, str(tmp_path)), AssistantSettings(batch_window_ms=0))
    assistant.put_config("rosa", salon())
    supervisor = Conversations.start(assistant)
    assistant.conversations = lambda: supervisor
    log = MessageLog(journal, on_stored=assistant.customer_message)
    understand = conversations.understand
    calls: list[str] = []

    def database_away_once(text: str, *args: Any) -> Any:
        calls.append(text)
        if len(calls) == 1:
            raise peewee.OperationalError("database is away")  # the conversation ends (crash)
        return understand(text, *args)

    monkeypatch.setattr(conversations, "understand", database_away_once)
    try:
        log.inbound(
            "rosa", {"peer": PEER, "type": "text", "text": "I'd like a haircut please", "wa_id": "W1"}
        )
        wait(lambda: calls, what="the first turn")
        # the crashed child is gone and nothing starts it again by itself
        wait(lambda: supervisor.ask(Active("rosa")) == [], what="the crashed conversation removed")
        assert store.turns(db, "rosa", PEER, 10) == []
        with db.work():
            assert Outbox.select().count() == 0

        log.inbound("rosa", {"peer": PEER, "type": "text", "text": "tomorrow", "wa_id": "W2"})
        turns = wait(lambda: store.turns(db, "rosa", PEER, 10), what="the answer after the crash")
        assert supervisor.ask(Active("rosa")) == [PEER]
        assert calls[1] == "I'd like a haircut please\ntomorrow"  # nothing accepted was lost
        [turn] = turns
        assert turn["messages"] == 2 and turn["reply"].startswith("What time?"), turn
    finally:
        supervisor.ask(Shutdown(), timeout=10)
        db.close()
    assert not supervisor.is_alive()
