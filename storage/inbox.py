"""The webhook inbox: raw payloads committed before Meta gets its 200, processed after."""

from __future__ import annotations

import json
from dataclasses import dataclass

from wafleet.storage.database import Database
from wafleet.storage.models import WebhookInbox


@dataclass(frozen=True)
class InboxRow:
    id: int
    body: str
    received_at: int


def append(db: Database, body: str, received_at: int) -> int:
    """Store one raw payload; it is committed when this returns."""
    with db.work(), db.atomic():
        return WebhookInbox.insert(body=body, received_at=received_at).execute()


def unprocessed(db: Database, limit: int, after_id: int = 0) -> list[InboxRow]:
    """Rows not processed yet, oldest first."""
    with db.work():
        query = (
            WebhookInbox.select(WebhookInbox.id, WebhookInbox.body, WebhookInbox.received_at)
            .where(WebhookInbox.processed_at.is_null() & (WebhookInbox.id > after_id))
            .order_by(WebhookInbox.id)
            .limit(limit)
        )
        return [InboxRow(r.id, r.body, r.received_at) for r in query]


def mark(db: Database, id: int, processed_at: int, error: str | None, unrouted: list[str] | None) -> None:
    """Done with a row: when, what went wrong (if anything), phone_number_ids no company owns."""
    with db.work():
        WebhookInbox.update(
            processed_at=processed_at,
            error=error,
            unrouted=json.dumps(unrouted) if unrouted else None,
        ).where(WebhookInbox.id == id).execute()


def pending_count(db: Database) -> int:
    with db.work():
        return WebhookInbox.select().where(WebhookInbox.processed_at.is_null()).count()


def unrouted(db: Database, limit: int = 100) -> list[tuple[int, list[str]]]:
    """Kept payloads that named a number no company owned: (inbox id, phone_number_ids), newest first."""
    with db.work():
        query = (
            WebhookInbox.select(WebhookInbox.id, WebhookInbox.unrouted)
            .where(WebhookInbox.unrouted.is_null(False))
            .order_by(WebhookInbox.id.desc())
            .limit(limit)
        )
        return [(r.id, json.loads(r.unrouted)) for r in query]


def requeue_unrouted(db: Database, phone_number_id: str) -> int:
    """Once a company owns ``phone_number_id``, process its kept payloads again (messages are
    stored once, so a row that was partly routed is safe to redo). Returns the rows requeued."""
    ids = [row_id for row_id, pids in unrouted(db, limit=10_000) if phone_number_id in pids]
    if not ids:
        return 0
    with db.work():
        return WebhookInbox.update(processed_at=None, unrouted=None).where(WebhookInbox.id.in_(ids)).execute()
