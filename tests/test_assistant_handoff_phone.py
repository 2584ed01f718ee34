"""A message the company types on its own phone (WhatsApp Web reports it as from-me) hands the chat
to the person: the assistant stays quiet there. Our own sends coming back change nothing.

The link worker's side (neonize) cannot run here; the node's side runs for real from the event a
link reports: message log, assistant, conversations supervisor and conversation actors, SQLite.
"""

from __future__ import annotations

import time
from pathlib import Path

import gevent

from tests.assistant_helpers import salon
from wafleet.actors.assistant.conversations import Conversations
from wafleet.actors.assistant.service import Assistant, AssistantSettings
from wafleet.actors.journal import Journal
from wafleet.actors.message_log import MessageLog
from wafleet.actors.messages import Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.storage import assistant as store
from wafleet.storage import messages
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Outbox
from wafleet.storage.phone_vault import vault_for
from wafleet.storage.schema import migrate

PEER = "351910000099"


def wait(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(0.01)  # lets the actors run (no monkey patching in the test process)
    raise AssertionError(f"timed out waiting for {predicate}")


def test_a_message_from_the_companys_phone_silences_the_assistant(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/a.db")
    migrate(db)
    journal = Journal(db, Metrics(None))
    assistant = Assistant(journal, vault_for(None, str(tmp_path)), AssistantSettings(batch_window_ms=0))
    assistant.put_config("rosa", salon())
    supervisor = Conversations.start(assistant)
    assistant.conversations = lambda: supervisor
    log = MessageLog(journal, on_stored=assistant.customer_message)
    try:
        # our own reply, sent through the link, comes back as from-me: not a person at the phone
        messages.store_outbound(db, "rosa", PEER, "Olá!", "3EB0OURS", "sent")
        log.inbound(
            "rosa", {"from_me": True, "peer": PEER, "type": "text", "text": "Olá!", "wa_id": "3EB0OURS"}
        )
        gevent.sleep(0.05)
        assert store.load_conversation(db, "rosa", PEER) is None

        log.inbound(
            "rosa",
            {"from_me": True, "peer": PEER, "type": "text", "text": "Sou a Rosa", "wa_id": "3EB0PHONE"},
        )
        row = wait(lambda: store.load_conversation(db, "rosa", PEER))
        assert row.paused_until is not None and row.paused_until > now_ms() + 29 * 60_000
        stored = messages.get(db, "rosa", "3EB0PHONE")
        assert stored is not None and stored["direction"] == "out"

        log.inbound(
            "rosa",
            {"peer": PEER, "type": "text", "text": "quero marcar um corte amanhã às 10h", "wa_id": "W2"},
        )
        turns = wait(lambda: store.turns(db, "rosa", PEER, 10))
        assert [(t["outcome"], t["reply"]) for t in turns] == [("handoff", None)]
        with db.work():
            assert Outbox.select().count() == 0
    finally:
        supervisor.ask(Shutdown(), timeout=10)
        db.close()
