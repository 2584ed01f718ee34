"""A company's history and conversations page newest first; the cursor walks to the end once."""

from __future__ import annotations

from wafleet.storage import assistant, messages
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


def test_messages_and_conversations_page_newest_first_to_the_end(database_url: str) -> None:
    db = Database(database_url)
    migrate(db)
    try:
        for i in range(5):
            messages.store_inbound(db, "a", "1555", "text", f"m{i}", None, f"W{i}", i)
            messages.store_inbound(db, "b", "1555", "text", f"other {i}", None, f"W{i}", i)
            row = assistant.ConversationRow("a", f"155500{i}", {"language": "en"}, 0, None, i, i)
            assistant.save_conversation(db, row)
        texts, cursor, pages = [], None, 0
        while True:
            page, cursor = messages.page(db, "a", 2, cursor)
            texts += [m["text"] for m in page]
            pages += 1
            if cursor is None:
                break
        assert (texts, pages) == (["m4", "m3", "m2", "m1", "m0"], 3)
        first, cursor = assistant.conversations_page(db, "a", 3, None)
        rest, end = assistant.conversations_page(db, "a", 3, cursor)
        assert [c.peer for c in first + rest] == [f"155500{i}" for i in (4, 3, 2, 1, 0)] and end is None
        assert assistant.conversations_page(db, "b", 3, None) == ([], None)
    finally:
        db.close()
