"""The assistant with the limits on: it reads texts sealed at rest in clear, and never answers
a number the company blocked, neither live nor when it catches up after a restart."""

from __future__ import annotations

from tests.assistant_helpers import Chat, setup_salon
from tests.harness import Node
from wafleet.storage.crypto import generate_key

SPAMMER = "15550000666"


def test_sealed_texts_are_understood_and_blocked_numbers_never_answered(node_factory) -> None:
    node: Node = node_factory(
        WAFLEET_BATCH_WINDOW="0", WAFLEET_ENCRYPTION_KEY=generate_key(), WHATSAPP_ENCRYPT_MESSAGES="true"
    ).start()
    setup_salon(node)
    r = node.client.put("/api/whatsapp/blocklist/salon", json={"numbers": [SPAMMER]}, headers=node.admin())
    assert r.status_code == 200
    spam, tom = Chat(node, "salon", SPAMMER), Chat(node, "salon", "15550000004")
    spam.send("where are you?")
    assert tom.say("where are you?") == "Rua Augusta 100, Lisboa."  # sealed at rest, read in clear
    assert spam.replies() == []  # its message came first; the customer after it got the answer
    # After a restart the assistant catches up with unanswered messages: not the blocked one.
    node.terminate()
    node.start()
    node.wait_status("salon", "connected", timeout=30)
    assert tom.say("where are you?") == "Rua Augusta 100, Lisboa."
    assert spam.replies() == []
