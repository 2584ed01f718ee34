"""What a customer's message means: the types the conversation and the booking engine work with.

The understanding side only extracts (intent, service, date, time, code…); availability and
conflicts are decided by the booking engine. This module is the contract between the two: it
changes only by adding optional fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wafleet.actors.assistant.model import ModelUnderstander


class Intent(StrEnum):
    GREETING = "greeting"
    BOOKING = "booking"
    AVAILABILITY = "availability"
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"
    FAQ = "faq"
    OTHER = "other"


class Slot(StrEnum):
    """What the conversation asked for last (the pending question); a bare answer fills it."""

    SERVICE = "service"
    DATE = "date"
    TIME = "time"
    CODE = "code"
    CHOICE = "choice"  # picking one of the offered alternatives ("the second one", "15:30")


@dataclass(frozen=True)
class ServiceInfo:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    duration_min: int = 30


@dataclass(frozen=True)
class ResourceInfo:
    id: str
    name: str
    services: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # other names customers use ("Маша", "Mari", "Mary" for Maria)


@dataclass(frozen=True)
class Turn:
    role: str  # "customer" | "assistant"
    text: str


@dataclass(frozen=True)
class TurnContext:
    now: dt.datetime  # aware, in the company's timezone
    timezone: str  # IANA name
    languages: tuple[str, ...]  # first is the company's default: "ru" | "pt" | "en"
    business_name: str
    services: tuple[ServiceInfo, ...]
    resources: tuple[ResourceInfo, ...]
    hours_text: str = ""  # opening hours, human-readable, for the model's prompt
    faq: tuple[tuple[str, str], ...] = ()
    recent: tuple[Turn, ...] = ()  # last turns, oldest first
    pending: Slot | None = None
    language: str | None = None  # the conversation's language so far
    offered: tuple[dt.datetime, ...] = ()  # alternatives offered last turn (aware), for CHOICE
    intent: Intent | None = None  # the conversation's intent so far: a bare answer continues it
    ai_model: str | None = None  # the company's model (its config's ai.model); None: the node's default


@dataclass(frozen=True)
class Usage:
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float  # in the price table's currency (USD)
    latency_ms: float


@dataclass(frozen=True)
class Understanding:
    intent: Intent
    language: str  # "ru" | "pt" | "en": the customer's language this turn
    service: str | None = None  # a ServiceInfo.id
    date: dt.date | None = None  # in the company's timezone
    time: dt.time | None = None
    resource: str | None = None  # a ResourceInfo.id
    code: str | None = None  # booking code, upper-case
    choice: dt.datetime | None = None  # one of ctx.offered when the customer picked one
    confidence: float = 1.0
    reply: str | None = None  # the model's short reply for greeting/faq/other
    source: str = "rules"  # "model" | "rules"
    fallback_reason: str | None = None  # why the model's answer was not used: a model.Fallback value
    usage: Usage | None = None  # the model call's tokens, cost and time; None when no call was made


def understand(text: str, ctx: TurnContext, model: ModelUnderstander | None = None) -> Understanding:
    """The one call a conversation makes per turn.

    With a model configured the model answers (it falls back to the rules itself on any failure
    and says why); without one the rule-based parser answers, so the assistant works offline.
    """
    if model is not None:
        return model.understand(text, ctx)
    from wafleet.actors.assistant.rules import understand_rules  # rules import these types

    return understand_rules(text, ctx)
