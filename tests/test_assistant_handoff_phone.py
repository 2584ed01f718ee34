"""A message the company types on its own phone (WhatsApp Web reports it as from-me) hands the chat
to the person: the assistant stays quiet there. Our own sends coming back change nothing.

The link worker's side (neonize) cannot run here; the node's side runs for real from the event a
link reports: message log, assistant, conversations supervisor and conversation actors, SQLite.
"""

from __future__ import annotations

from pathlib import Path

from tests.assistant_helpers import assistant_in_process, wait_in_hub
from wafleet.actors.assistant.protocol import Active
from wafleet.storage import assistant as store
from wafleet.storage import messages
from wafleet.storage.clock import now_ms
from wafleet.storage.models import Outbox

PEER = "351910000099"


def test_a_message_from_the_companys_phone_silences_the_assistant(tmp_path: Path) -> None:
    with assistant_in_process(tmp_path) as rosa:
        db, log = rosa.db, rosa.log
        # our own reply, sent through the link, comes back as from-me: not a person at the phone
        messages.store_outbound(db, "rosa", PEER, "Olá!", "3EB0OURS", "sent")
        log.inbound(
            "rosa", {"from_me": True, "peer": PEER, "type": "text", "text": "Olá!", "wa_id": "3EB0OURS"}
        )
        # the supervisor answers in order: had anything been told to it, this chat would be active
        assert rosa.supervisor.ask(Active("rosa")) == []
        assert store.load_conversation(db, "rosa", PEER) is None

        log.inbound(
            "rosa",
            {"from_me": True, "peer": PEER, "type": "text", "text": "Sou a Rosa", "wa_id": "3EB0PHONE"},
        )
        row = wait_in_hub(lambda: store.load_conversation(db, "rosa", PEER))
        assert row.paused_until is not None and row.paused_until > now_ms() + 29 * 60_000
        stored = messages.get(db, "rosa", "3EB0PHONE")
        assert stored is not None and stored["direction"] == "out"

        log.inbound(
            "rosa",
            {"peer": PEER, "type": "text", "text": "quero marcar um corte amanhã às 10h", "wa_id": "W2"},
        )
        turns = wait_in_hub(lambda: store.turns(db, "rosa", PEER, 10))
        assert [(t["outcome"], t["reply"]) for t in turns] == [("handoff", None)]
        with db.work():
            assert Outbox.select().count() == 0
