"""What goes to the model and what comes back: the strict schema, the system prompt, and the
checks its answer must pass before the conversation may use it."""

from __future__ import annotations

import datetime as dt
import json
import re
from enum import StrEnum
from zoneinfo import ZoneInfo

from wafleet.actors.assistant.language import detect
from wafleet.actors.assistant.understanding import Intent, TurnContext, Understanding
from wafleet.storage.bookings import CODE_ALPHABET

_CODE = re.compile(f"^[{CODE_ALPHABET}]{{6}}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Fallback(StrEnum):
    """Why a turn was understood by the rules although a model is configured."""

    BUSY = "busy"  # every concurrent-call slot stayed taken for the whole timeout
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"  # 429
    QUOTA_EXCEEDED = "quota_exceeded"  # 429 insufficient_quota: the account's billing, not a burst
    SERVER_ERROR = "server_error"  # 5xx
    API_ERROR = "api_error"  # any other refusal of the request (401, 404 model, 400)
    REFUSAL = "refusal"
    INVALID_OUTPUT = "invalid_output"
    LOW_CONFIDENCE = "low_confidence"
    CIRCUIT_OPEN = "circuit_open"  # the model kept failing: not called until the cool-off ends


# Failures that say the model's server is down or overloaded: enough in a row open the circuit.
OUTAGES = frozenset(
    {
        Fallback.CONNECTION,
        Fallback.TIMEOUT,
        Fallback.SERVER_ERROR,
        Fallback.RATE_LIMITED,
        Fallback.QUOTA_EXCEEDED,
    }
)


class Rejected(Exception):
    """The model cannot answer this turn (every slot taken) or its answer cannot be used."""

    def __init__(self, reason: Fallback, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def response_schema(ctx: TurnContext) -> dict:
    """The strict JSON schema of the model's answer; ids are enums of this company's own."""

    def one_of(values: list[str]) -> dict:
        if not values:
            return {"type": "null"}
        return {"anyOf": [{"type": "string", "enum": values}, {"type": "null"}]}

    def nullable(kind: str, description: str) -> dict:
        return {"type": [kind, "null"], "description": description}

    properties = {
        "intent": {"type": "string", "enum": [str(i) for i in Intent]},
        "language": {"type": "string", "enum": list(ctx.languages)},
        "service": one_of([s.id for s in ctx.services]),
        "date": nullable("string", "YYYY-MM-DD in the company's timezone"),
        "time": nullable("string", "HH:MM, 24-hour"),
        "resource": one_of([r.id for r in ctx.resources]),
        "code": nullable("string", "booking code, 6 characters"),
        "choice": nullable("integer", "number of the offered alternative the customer picked"),
        "confidence": {"type": "number", "description": "0 to 1"},
        "reply": nullable("string", "short answer for greeting, faq and other"),
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def system_prompt(ctx: TurnContext) -> str:
    """What the model must know: today in the company's timezone, its catalogue, hours and FAQ."""
    now = ctx.now.astimezone(ZoneInfo(ctx.timezone))
    lines = [
        f"You read WhatsApp messages that customers send to {ctx.business_name} and extract what they want.",
        "You never book or promise anything: a booking engine checks availability and answers.",
        f"Today is {now:%A} {now:%Y-%m-%d}, the time is {now:%H:%M}, timezone {ctx.timezone}.",
        "Services (id: name; other names; minutes):",
        *(f"- {s.id}: {s.name}; {', '.join(s.aliases) or '-'}; {s.duration_min}" for s in ctx.services),
        "Staff (id: name; other names; service ids):",
        *(
            f"- {r.id}: {r.name}; {', '.join(r.aliases) or '-'}; {', '.join(r.services) or '-'}"
            for r in ctx.resources
        ),
    ]
    if ctx.hours_text:
        lines.append(f"Opening hours: {ctx.hours_text}")
    if ctx.faq:
        lines.append("FAQ:")
        lines += [f"Q: {q}\nA: {a}" for q, a in ctx.faq]
    lines.append(f"Languages: {', '.join(ctx.languages)} (default {ctx.languages[0]}).")
    if ctx.language:
        lines.append(f"The conversation so far is in {ctx.language}.")
    if ctx.intent:
        lines.append(f"The conversation so far is about: {ctx.intent}.")
    if ctx.pending:
        lines.append(f"The assistant last asked the customer for: {ctx.pending}. A bare answer fills it.")
    if ctx.offered:
        zone = ZoneInfo(ctx.timezone)
        offered = ", ".join(f"{n}) {o.astimezone(zone):%Y-%m-%d %H:%M}" for n, o in enumerate(ctx.offered, 1))
        lines.append(
            f"Times offered last turn: {offered}. If the customer picks one, give its number as choice."
        )
    lines += [
        "Fill every field: intent; language the customer wrote in; service and resource as ids from the",
        "lists above or null; date YYYY-MM-DD resolving words like tomorrow or friday from today; time HH:MM",
        "(a bare hour from 1 to 7 without am/pm is in the afternoon); code when the customer gives a",
        "booking code; choice; confidence from 0 to 1; reply: for greeting, faq and other only, one or two",
        "short sentences in the customer's language from the FAQ and hours above, else null.",
    ]
    return "\n".join(lines)


def messages(text: str, ctx: TurnContext) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt(ctx)}]
    for turn in ctx.recent:
        messages.append({"role": "user" if turn.role == "customer" else "assistant", "content": turn.text})
    messages.append({"role": "user", "content": text})
    return messages


def parse(content: str, text: str, ctx: TurnContext, min_confidence: float) -> Understanding:
    """The model's JSON as an Understanding, checked against this company's ids and sane values."""
    try:
        data = json.loads(content)
    except (TypeError, ValueError):
        raise Rejected(Fallback.INVALID_OUTPUT, "not JSON") from None
    if not isinstance(data, dict):
        raise Rejected(Fallback.INVALID_OUTPUT, "not a JSON object")

    def field_value(name: str, kind: type | tuple[type, ...]) -> object:
        value = data.get(name)
        if value is not None and not isinstance(value, kind):
            raise Rejected(Fallback.INVALID_OUTPUT, f"{name} has the wrong type")
        return value

    try:
        intent = Intent(data.get("intent"))
    except ValueError:
        raise Rejected(Fallback.INVALID_OUTPUT, "unknown intent") from None
    confidence = field_value("confidence", (int, float))
    if confidence is None or isinstance(confidence, bool) or not 0 <= confidence <= 1:
        raise Rejected(Fallback.INVALID_OUTPUT, "confidence missing or outside 0..1")
    service = field_value("service", str)
    if service is not None and service not in {s.id for s in ctx.services}:
        raise Rejected(Fallback.INVALID_OUTPUT, "unknown service id")
    resource = field_value("resource", str)
    if resource is not None and resource not in {r.id for r in ctx.resources}:
        raise Rejected(Fallback.INVALID_OUTPUT, "unknown resource id")
    date = field_value("date", str)
    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        raise Rejected(Fallback.INVALID_OUTPUT, "date is not YYYY-MM-DD") from None
    clock = field_value("time", str)
    if clock and not _TIME.match(clock):
        raise Rejected(Fallback.INVALID_OUTPUT, "time is not HH:MM")
    code = field_value("code", str)
    code = code.strip().upper() if code else None
    if code and not _CODE.match(code):
        raise Rejected(Fallback.INVALID_OUTPUT, "code is not a booking code")
    number = field_value("choice", int)
    choice = None
    if number is not None and not isinstance(number, bool):
        if not 1 <= number <= len(ctx.offered):
            raise Rejected(Fallback.INVALID_OUTPUT, "choice is not one of the offered times")
        choice = ctx.offered[number - 1]
    language = field_value("language", str)
    if language not in ctx.languages:
        language = detect(text, ctx.languages, ctx.language)
    reply = field_value("reply", str)
    if confidence < min_confidence:
        raise Rejected(Fallback.LOW_CONFIDENCE, f"confidence {confidence}")
    when = dt.time.fromisoformat(clock) if clock else None
    if choice is not None:
        local = choice.astimezone(ZoneInfo(ctx.timezone))
        day, when = local.date(), local.time().replace(tzinfo=None)
    return Understanding(
        intent=intent,
        language=language,
        service=service,
        date=day,
        time=when,
        resource=resource,
        code=code or None,
        choice=choice,
        confidence=float(confidence),
        reply=(reply or "").strip() or None,
        source="model",
    )
