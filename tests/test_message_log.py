"""Receipts from WhatsApp Web move our messages' status forward, never back."""

from __future__ import annotations

from pathlib import Path

from wafleet.actors.journal import Journal
from wafleet.actors.message_log import MessageLog
from wafleet.actors.metrics import Metrics
from wafleet.storage import messages
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


def test_receipts_apply_in_order_and_ignore_noise(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/m.db")
    migrate(db)
    log = MessageLog(Journal(db, Metrics(None)))
    messages.store_outbound(db, "c", "5511900000000", "hi", "3EB0AAA", "sent")
    log.receipt("c", {"type": "READ", "ids": ["3EB0AAA"], "at": 1_795_000_000})
    log.receipt("c", {"type": "DELIVERED", "ids": ["3EB0AAA"], "at": 1_795_000_001})  # late: ignored
    log.receipt("c", {"type": "SENDER", "ids": ["3EB0AAA"]})  # says nothing about the customer
    row = messages.get(db, "c", "3EB0AAA")
    assert row is not None and row["status"] == "read"
