"""The assistant's records: company configs, conversation state, and the turns log (stats)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import peewee

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.messages import BLOCKED
from wafleet.storage.models import AssistantConfig, AssistantTurn, Conversation, Message, Outbox
from wafleet.storage.paging import newest_first
from wafleet.storage.sql import Insert, Statement, table

# Pre-built statements for what every turn runs (query building cost as much as SQLite's work).
_CONFIG_VERSION = Statement(f"SELECT updated_at FROM {table(AssistantConfig)} WHERE company = ?")
_CONVERSATION_COLUMNS = (
    "company", "peer", "state", "answered_through", "paused_until", "started_at", "updated_at"
)  # fmt: skip
_LOAD_CONVERSATION = Statement(
    f"SELECT {', '.join(_CONVERSATION_COLUMNS)} FROM {table(Conversation)} WHERE company = ? AND peer = ?"
)
_SAVE_CONVERSATION = Statement(
    f"INSERT INTO {table(Conversation)} ({', '.join(_CONVERSATION_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (company, peer) DO UPDATE SET state = excluded.state, "
    "answered_through = excluded.answered_through, paused_until = excluded.paused_until, "
    "updated_at = excluded.updated_at"
)
_UNANSWERED = Statement(
    f'SELECT id, "text" FROM {table(Message)}'
    f" WHERE company = ? AND id > ? AND peer = ? "
    'AND direction = \'in\' AND "at" >= ? AND "text" IS NOT NULL '
    "AND (status IS NULL OR status != ?) ORDER BY id"
)
_TURN_COLUMNS = (
    "company", "peer", "at", "text", "messages", "reply", "intent", "language", "source", "model",
    "prompt_tokens", "completion_tokens", "cost", "ai_latency_ms", "fallback_reason", "response_ms",
    "outcome",
)  # fmt: skip
_TURN_DEFAULTS: dict[str, Any] = {
    "messages": 1, "reply": None, "model": None, "prompt_tokens": 0, "completion_tokens": 0,
    "cost": 0.0, "ai_latency_ms": None, "fallback_reason": None, "outcome": None,
}  # fmt: skip
_ADD_TURN = Insert(AssistantTurn, _TURN_COLUMNS)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- configs ------------------------------------------------------------------------------------
def get_config(db: Database, company_id: str) -> dict[str, Any] | None:
    with db.work():
        row = AssistantConfig.get_or_none(AssistantConfig.company == company_id)
    return json.loads(row.config) if row else None


def config_version(db: Database, company_id: str) -> int | None:
    """When the company's config was last written (its version), or None when it has none."""
    with db.work():
        row = _CONFIG_VERSION.one(db, (company_id,))
    return row[0] if row else None


def put_config(db: Database, company_id: str, config: dict[str, Any]) -> int:
    """Store the config; returns its version (a write time, made to grow on every write)."""
    with db.work(), db.atomic():
        previous = config_version(db, company_id) or 0
        version = max(now_ms(), previous + 1)
        AssistantConfig.insert(company=company_id, config=_dumps(config), updated_at=version).on_conflict(
            conflict_target=[AssistantConfig.company],
            update={AssistantConfig.config: _dumps(config), AssistantConfig.updated_at: version},
        ).execute()
    return version


# -- conversations ------------------------------------------------------------------------------
@dataclass
class ConversationRow:
    company_id: str
    peer: str
    state: dict[str, Any]
    answered_through: int
    paused_until: int | None
    started_at: int
    updated_at: int


def _state(db: Database, company_id: str, stored: str) -> dict[str, Any]:
    """The state as saved: sealed like message texts when they are (its last turns hold the
    customer's words). One whose key is gone reads as a fresh start, never as a crash."""
    opened = db.text_seal.open(company_id, stored)
    return json.loads(opened) if opened else {}


def _conversation(db: Database, row: Conversation) -> ConversationRow:
    return ConversationRow(
        company_id=row.company,
        peer=row.peer,
        state=_state(db, row.company, row.state),
        answered_through=row.answered_through,
        paused_until=row.paused_until,
        started_at=row.started_at,
        updated_at=row.updated_at,
    )


def load_conversation(db: Database, company_id: str, peer: str) -> ConversationRow | None:
    with db.work():
        row = _LOAD_CONVERSATION.one(db, (company_id, peer))
    if row is None:
        return None
    company, peer, state, answered_through, paused_until, started_at, updated_at = row
    return ConversationRow(
        company, peer, _state(db, company, state), answered_through, paused_until, started_at, updated_at
    )


def save_conversation(db: Database, conv: ConversationRow) -> None:
    """Upsert the whole row (the conversation's actor is its only writer)."""
    conv.updated_at = now_ms()
    with db.work():
        _SAVE_CONVERSATION.run(
            db,
            (
                conv.company_id,
                conv.peer,
                db.text_seal.seal(conv.company_id, _dumps(conv.state)),
                conv.answered_through,
                conv.paused_until,
                conv.started_at,
                conv.updated_at,
            ),
        )


# What a number the company blocked wrote is kept, never answered (storage/blocklist.py).
NOT_BLOCKED = Message.status.is_null() | (Message.status != BLOCKED)


def unanswered(
    db: Database, company_id: str, peer: str, after_id: int, since_ms: int
) -> list[tuple[int, str]]:
    """A customer's text messages after ``after_id`` received since ``since_ms``: (id, text)."""
    with db.work():
        rows = _UNANSWERED.all(db, (company_id, after_id, peer, since_ms, BLOCKED))
    texts = [(row_id, db.text_seal.open(company_id, text)) for row_id, text in rows]  # sealed at rest?
    return [(row_id, text) for row_id, text in texts if text and text.strip()]


def chats_waiting(db: Database, since_ms: int) -> list[tuple[str, str]]:
    """(company, customer) of chats of configured companies holding text messages received since
    ``since_ms`` that their conversation has not answered (a crash or a kill came first)."""
    with db.work():
        companies = [c.company for c in AssistantConfig.select(AssistantConfig.company)]
        waiting = []
        for company in companies:
            latest = (
                Message.select(Message.peer, peewee.fn.MAX(Message.id).alias("last"))
                .where(
                    (Message.company == company)
                    & (Message.direction == "in")
                    & (Message.at >= since_ms)
                    & Message.text.is_null(False)
                    & NOT_BLOCKED
                )
                .group_by(Message.peer)
            )
            answered = {
                c.peer: c.answered_through
                for c in Conversation.select(Conversation.peer, Conversation.answered_through).where(
                    Conversation.company == company
                )
            }
            waiting.extend((company, m.peer) for m in latest if m.last > answered.get(m.peer, 0))
        return waiting


def conversations_page(
    db: Database, company_id: str, limit: int, before: int | None
) -> tuple[list[ConversationRow], int | None]:
    """Newest first (by when the chat began); the cursor is the id of the last one given."""
    rows, cursor = newest_first(db, Conversation, company_id, limit, before)
    return [_conversation(db, r) for r in rows], cursor


# -- turns --------------------------------------------------------------------------------------
def add_turn(db: Database, **fields: Any) -> int:
    """Log one turn; ``fields`` are AssistantTurn's columns (unnamed ones take their default)."""
    unknown = fields.keys() - set(_TURN_COLUMNS)
    if unknown:
        raise TypeError(f"unknown turn fields: {sorted(unknown)}")
    values = _TURN_DEFAULTS | fields
    for column in ("text", "reply"):  # the customer's words and ours: sealed like message texts
        values[column] = db.text_seal.seal(values["company"], values[column])
    with db.work():
        return _ADD_TURN.run(db, [values[c] for c in _TURN_COLUMNS])


def turns(db: Database, company_id: str, peer: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` turns of one chat, oldest first."""
    with db.work():
        rows = list(
            AssistantTurn.select()
            .where((AssistantTurn.company == company_id) & (AssistantTurn.peer == peer))
            .order_by(AssistantTurn.id.desc())
            .limit(limit)
        )
    return [
        {
            "at": r.at,
            "text": db.text_seal.open(r.company, r.text),
            "messages": r.messages,
            "reply": db.text_seal.open(r.company, r.reply),
            "intent": r.intent,
            "language": r.language,
            "source": r.source,
            "model": r.model,
            "promptTokens": r.prompt_tokens,
            "completionTokens": r.completion_tokens,
            "cost": r.cost,
            "aiLatencyMs": r.ai_latency_ms,
            "fallbackReason": r.fallback_reason,
            "responseMs": r.response_ms,
            "outcome": r.outcome,
        }
        for r in reversed(rows)
    ]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return round(values[index], 1)


def turn_stats(db: Database, company_id: str, from_ms: int, to_ms: int) -> dict[str, Any]:
    in_range = (
        (AssistantTurn.company == company_id) & (AssistantTurn.at >= from_ms) & (AssistantTurn.at < to_ms)
    )
    with db.work():
        rows = list(
            AssistantTurn.select(
                AssistantTurn.peer,
                AssistantTurn.model,
                AssistantTurn.source,
                AssistantTurn.prompt_tokens,
                AssistantTurn.completion_tokens,
                AssistantTurn.cost,
                AssistantTurn.fallback_reason,
                AssistantTurn.response_ms,
            ).where(in_range)
        )
        messages_in = (
            Message.select()
            .where(
                (Message.company == company_id)
                & (Message.direction == "in")
                & (Message.at >= from_ms)
                & (Message.at < to_ms)
            )
            .count()
        )
        messages_out = (
            Outbox.select()
            .where(
                (Outbox.company == company_id) & (Outbox.created_at >= from_ms) & (Outbox.created_at < to_ms)
            )
            .count()
        )
    ai = [r for r in rows if r.model is not None]
    fallbacks = [r for r in ai if r.source != "model"]
    return {
        "turns": len(rows),
        "messagesIn": messages_in,
        "messagesOut": messages_out,
        "conversations": len({r.peer for r in rows}),
        "aiCalls": len(ai),
        "promptTokens": sum(r.prompt_tokens for r in ai),
        "completionTokens": sum(r.completion_tokens for r in ai),
        "cost": round(sum(r.cost for r in ai), 6),
        "fallbackRate": round(len(fallbacks) / len(ai), 4) if ai else 0.0,
        "responseMs": {
            "p50": _percentile([r.response_ms for r in rows], 0.50),
            "p95": _percentile([r.response_ms for r in rows], 0.95),
        },
    }


def delete_company(db: Database, company_id: str) -> None:
    with db.work():
        for model in (AssistantConfig, Conversation, AssistantTurn):
            model.delete().where(model.company == company_id).execute()
