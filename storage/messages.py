"""Messages in and out, from any link: stored once (unique WhatsApp id), statuses only forward.

Every function takes the connection itself (``db.work()`` is re-entrant) and is safe inside a
caller's transaction: a duplicate insert is absorbed in a savepoint, so on PostgreSQL it does not
abort the surrounding transaction.
"""

from __future__ import annotations

import json
from typing import Any

import peewee

from wafleet.storage import events
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Message

# Delivery statuses of our messages, in the only order they may move. ``failed`` is final.
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}
FINAL = "failed"


def _dumps(value: Any) -> str | None:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else None


def _clip(value: str | None, size: int) -> str | None:
    return value if value is None or len(value) <= size else value[:size]


def _insert(db: Database, fields: dict[str, Any]) -> tuple[int, bool]:
    wa_id = fields.get("wa_id")
    with db.work():
        if wa_id is not None:
            existing = Message.select(Message.id).where(Message.wa_id == wa_id).first()
            if existing is not None:
                return existing.id, False
        try:
            with db.atomic():  # a savepoint inside a caller's transaction
                return Message.insert(**fields).execute(), True
        except peewee.IntegrityError:
            # Another writer stored the same WhatsApp id between our look and our insert.
            existing = Message.select(Message.id).where(Message.wa_id == wa_id).first()
            if wa_id is None or existing is None:
                raise
            return existing.id, False


def store_inbound(
    db: Database,
    company_id: str,
    peer: str,
    type: str,
    text: str | None,
    media: dict[str, Any] | None,
    wa_id: str | None,
    at: int,
) -> tuple[int, bool]:
    """Insert an inbound message once: ``(id, True)``; a known ``wa_id`` gives ``(its id, False)``."""
    return _insert(
        db,
        {
            "company": company_id,
            "direction": "in",
            "peer": _clip(peer, 64) or "",
            "type": _clip(type, 32) or "unknown",
            "text": text,
            "media": _dumps(media),
            "wa_id": wa_id,
            "status": None,
            "error": None,
            "at": at,
        },
    )


def store_outbound(
    db: Database, company_id: str, peer: str, text: str, wa_id: str | None, status: str, at: int | None = None
) -> int:
    """Record a message we sent (or queued); a known ``wa_id`` returns the row it already has."""
    row_id, _ = _insert(
        db,
        {
            "company": company_id,
            "direction": "out",
            "peer": _clip(peer, 64) or "",
            "type": "text",
            "text": text,
            "media": None,
            "wa_id": wa_id,
            "status": status,
            "error": None,
            "at": at if at is not None else now_ms(),
        },
    )
    return row_id


def store_from_phone(
    db: Database, company_id: str, peer: str, text: str | None, wa_id: str | None, at: int
) -> tuple[int, bool]:
    """A message the company sent from its own phone (not through us): stored once as ``out``;
    ``(id, False)`` when its WhatsApp id is known already (our own send coming back)."""
    return _insert(
        db,
        {
            "company": company_id,
            "direction": "out",
            "peer": _clip(peer, 64) or "",
            "type": "text",
            "text": text,
            "media": None,
            "wa_id": wa_id,
            "status": "sent",
            "error": None,
            "at": at,
        },
    )


def apply_status(db: Database, wa_id: str, status: str, error: dict[str, Any] | None, at: int) -> bool:
    """Move a message's status forward; True when it changed.

    sent < delivered < read < played; ``failed`` is final and keeps Meta's error. A status that
    would move backwards (Meta's are not ordered), a repeat, an unknown status or an unknown
    ``wa_id`` change nothing and give False. One conditional UPDATE: no read-modify-write race.
    ``at`` (the status time) is not stored on the message: the table keeps the message's own
    time; the ``message_status`` event it records is stamped now.
    """
    del at
    if status == FINAL:
        fields: dict[str, Any] = {"status": FINAL, "error": _dumps(error)}
        allowed = list(STATUS_RANK)
    elif status in STATUS_RANK:
        fields = {"status": status}
        allowed = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    else:
        return False
    with db.work(), db.atomic():
        changed = (
            Message.update(**fields)
            .where(
                (Message.wa_id == wa_id)
                & (Message.direction == "out")
                & (Message.status.is_null() | Message.status.in_(allowed))
            )
            .execute()
        )
        if changed:
            # Recorded as an event (audit, and the company's ``message.status`` webhooks).
            row = Message.get(Message.wa_id == wa_id)
            data = {"messageId": row.id, "waId": wa_id, "peer": row.peer}
            if status == FINAL and error:
                data["error"] = error
            events.append(row.company, "message_status", state=status, reason=None, data=data, at=now_ms())
    return changed > 0


def as_dict(row: Message) -> dict[str, Any]:
    return {
        "id": row.id,
        "companyId": row.company,
        "direction": row.direction,
        "peer": row.peer,
        "type": row.type,
        "text": row.text,
        "media": json.loads(row.media) if row.media else None,
        "waId": row.wa_id,
        "status": row.status,
        "error": json.loads(row.error) if row.error else None,
        "at": row.at,
    }


def get(db: Database, wa_id: str) -> dict[str, Any] | None:
    with db.work():
        row = Message.get_or_none(Message.wa_id == wa_id)
    return as_dict(row) if row else None


def page(
    db: Database, company_id: str, limit: int, before_id: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """A company's messages, newest first, ``limit`` at a time; the cursor is the last id given
    (pass it back as ``before_id``), None when there is nothing older."""
    with db.work():
        query = Message.select().where(Message.company == company_id)
        if before_id is not None:
            query = query.where(Message.id < before_id)
        rows = list(query.order_by(Message.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return [as_dict(r) for r in rows], (rows[-1].id if more and rows else None)
