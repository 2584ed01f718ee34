"""The conversations supervisor: its children are temporary. A conversation that crashes is not
restarted; the next message of that chat starts a new one from the persisted state, which answers
what the crash left unanswered. In-process: message log, assistant, supervisor, SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peewee
import pytest

from tests.assistant_helpers import assistant_in_process, wait_in_hub
from wafleet.actors.assistant import conversations
from wafleet.actors.assistant.protocol import Active
from wafleet.storage import assistant as store
from wafleet.storage.models import Outbox

PEER = "15550000042"


def test_a_crashed_conversation_is_not_restarted_and_the_next_message_goes_on_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    understand = conversations.understand
    calls: list[str] = []

    def database_away_once(text: str, *args: Any) -> Any:
        calls.append(text)
        if len(calls) == 1:
            raise peewee.OperationalError("database is away")  # the conversation ends (crash)
        return understand(text, *args)

    monkeypatch.setattr(conversations, "understand", database_away_once)
    with assistant_in_process(tmp_path) as rosa:
        db, log, supervisor = rosa.db, rosa.log, rosa.supervisor
        log.inbound(
            "rosa", {"peer": PEER, "type": "text", "text": "I'd like a haircut please", "wa_id": "W1"}
        )
        wait_in_hub(lambda: calls, what="the first turn")
        # the crashed child is gone and nothing starts it again by itself
        wait_in_hub(lambda: supervisor.ask(Active("rosa")) == [], what="the crashed conversation removed")
        assert store.turns(db, "rosa", PEER, 10) == []
        with db.work():
            assert Outbox.select().count() == 0

        log.inbound("rosa", {"peer": PEER, "type": "text", "text": "tomorrow", "wa_id": "W2"})
        turns = wait_in_hub(lambda: store.turns(db, "rosa", PEER, 10), what="the answer after the crash")
        assert supervisor.ask(Active("rosa")) == [PEER]
        assert calls[1] == "I'd like a haircut please\ntomorrow"  # nothing accepted was lost
        [turn] = turns
        assert turn["messages"] == 2 and turn["reply"].startswith("What time?"), turn
    assert not supervisor.is_alive()
