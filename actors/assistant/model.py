"""Understanding with an OpenAI(-compatible) model: one Chat Completions call per turn.

The model only extracts (intent, service, date, time, staff, code, which offered time, confidence,
a short reply for greetings and questions); the booking engine decides. The call is made with a
strict JSON-schema response format, under a per-node concurrency cap and a timeout. Whenever the
model cannot be used — connection error, timeout, 429, 5xx, a refusal, output that does not
validate, confidence below the threshold, every slot taken — the turn is understood by the rules
instead and `fallback_reason` says why: the customer always gets an answer.

Under gevent (the node monkey-patches the standard library) the synchronous `openai` client's
sockets are cooperative: a call blocks only the greenlet that makes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo

import gevent
import gevent.lock
import openai

from wafleet.actors.assistant.language import detect
from wafleet.actors.assistant.rules import CODE_ALPHABET, understand_rules
from wafleet.actors.assistant.understanding import Intent, TurnContext, Understanding, Usage

log = logging.getLogger(__name__)

# USD per million tokens (input, output), from OpenAI's price list; WAFLEET_AI_PRICES adds or overrides.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}
# Reasoning models refuse a temperature other than the default (400 "Unsupported value").
FIXED_TEMPERATURE_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_CODE = re.compile(f"^[{CODE_ALPHABET}]{{6}}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Fallback(StrEnum):
    """Why a turn was understood by the rules although a model is configured."""

    BUSY = "busy"  # every concurrent-call slot stayed taken for the whole timeout
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx
    API_ERROR = "api_error"  # any other refusal of the request (401, 404 model, 400)
    REFUSAL = "refusal"
    INVALID_OUTPUT = "invalid_output"
    LOW_CONFIDENCE = "low_confidence"


class ModelSettingsError(ValueError):
    """A model setting in the environment is wrong; the message names the variable."""


@dataclass(frozen=True)
class ModelSettings:
    api_key: str
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_ms: int = 10_000
    max_concurrency: int = 20
    min_confidence: float = 0.5
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    max_output_tokens: int = 400

    def __repr__(self) -> str:  # the key never reaches a log line
        return (
            f"ModelSettings(model={self.model!r}, base_url={self.base_url!r}, timeout_ms={self.timeout_ms})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelSettings | None:
        """The node's model settings, or None when OPENAI_API_KEY is unset (the rules answer alone)."""
        api_key = env.get("OPENAI_API_KEY", "").strip()
        if not api_key:
            return None
        base_url = env.get("OPENAI_BASE_URL", "").strip() or None
        if base_url is not None and not re.match(r"^https?://[^\s/]+", base_url):
            raise ModelSettingsError(f"OPENAI_BASE_URL must be an http(s) URL, got {base_url!r}")
        return cls(
            api_key=api_key,
            base_url=base_url,
            model=env.get("WAFLEET_AI_MODEL", "").strip() or cls.model,
            timeout_ms=_int(env, "WAFLEET_AI_TIMEOUT", cls.timeout_ms, 100),
            max_concurrency=_int(env, "WAFLEET_AI_CONCURRENCY", cls.max_concurrency, 1),
            min_confidence=_confidence(env),
            prices={**DEFAULT_PRICES, **parse_prices(env.get("WAFLEET_AI_PRICES", ""))},
            max_output_tokens=_int(env, "WAFLEET_AI_MAX_OUTPUT_TOKENS", cls.max_output_tokens, 16),
        )

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one call; 0 for a model missing from the price table (a local server)."""
        price_in, price_out = self.prices.get(model, (0.0, 0.0))
        return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ModelSettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ModelSettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _confidence(env: Mapping[str, str]) -> float:
    raw = env.get("WAFLEET_AI_MIN_CONFIDENCE", "").strip()
    if not raw:
        return ModelSettings.min_confidence
    try:
        value = float(raw)
    except ValueError:
        raise ModelSettingsError(f"WAFLEET_AI_MIN_CONFIDENCE must be a number, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ModelSettingsError(f"WAFLEET_AI_MIN_CONFIDENCE must be between 0 and 1, got {value}")
    return value


def parse_prices(raw: str) -> dict[str, tuple[float, float]]:
    """WAFLEET_AI_PRICES: "model=input/output,…" in USD per million tokens ("gpt-4o-mini=0.15/0.60")."""
    prices: dict[str, tuple[float, float]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, pair = item.partition("=")
        price_in, _, price_out = pair.partition("/")
        try:
            values = (float(price_in), float(price_out))
        except ValueError:
            raise ModelSettingsError(
                f"WAFLEET_AI_PRICES entry {item!r} must be model=input/output (USD per million tokens)"
            ) from None
        if not name.strip() or min(values) < 0:
            raise ModelSettingsError(f"WAFLEET_AI_PRICES entry {item!r} needs a model name and prices >= 0")
        prices[name.strip()] = values
    return prices


class _Timeout(Exception):
    """The whole call (waiting for a slot included) outlived WAFLEET_AI_TIMEOUT.

    An Exception, not gevent.Timeout (a BaseException), which would tear down every actor.
    """


class _Rejected(Exception):
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


def _messages(text: str, ctx: TurnContext) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt(ctx)}]
    for turn in ctx.recent:
        messages.append({"role": "user" if turn.role == "customer" else "assistant", "content": turn.text})
    messages.append({"role": "user", "content": text})
    return messages


def _parse(content: str, text: str, ctx: TurnContext, min_confidence: float) -> Understanding:
    """The model's JSON as an Understanding, checked against this company's ids and sane values."""
    try:
        data = json.loads(content)
    except (TypeError, ValueError):
        raise _Rejected(Fallback.INVALID_OUTPUT, "not JSON") from None
    if not isinstance(data, dict):
        raise _Rejected(Fallback.INVALID_OUTPUT, "not a JSON object")

    def field_value(name: str, kind: type | tuple[type, ...]) -> object:
        value = data.get(name)
        if value is not None and not isinstance(value, kind):
            raise _Rejected(Fallback.INVALID_OUTPUT, f"{name} has the wrong type")
        return value

    try:
        intent = Intent(data.get("intent"))
    except ValueError:
        raise _Rejected(Fallback.INVALID_OUTPUT, "unknown intent") from None
    confidence = field_value("confidence", (int, float))
    if confidence is None or isinstance(confidence, bool) or not 0 <= confidence <= 1:
        raise _Rejected(Fallback.INVALID_OUTPUT, "confidence missing or outside 0..1")
    service = field_value("service", str)
    if service is not None and service not in {s.id for s in ctx.services}:
        raise _Rejected(Fallback.INVALID_OUTPUT, "unknown service id")
    resource = field_value("resource", str)
    if resource is not None and resource not in {r.id for r in ctx.resources}:
        raise _Rejected(Fallback.INVALID_OUTPUT, "unknown resource id")
    date = field_value("date", str)
    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        raise _Rejected(Fallback.INVALID_OUTPUT, "date is not YYYY-MM-DD") from None
    clock = field_value("time", str)
    if clock and not _TIME.match(clock):
        raise _Rejected(Fallback.INVALID_OUTPUT, "time is not HH:MM")
    code = field_value("code", str)
    code = code.strip().upper() if code else None
    if code and not _CODE.match(code):
        raise _Rejected(Fallback.INVALID_OUTPUT, "code is not a booking code")
    number = field_value("choice", int)
    choice = None
    if number is not None and not isinstance(number, bool):
        if not 1 <= number <= len(ctx.offered):
            raise _Rejected(Fallback.INVALID_OUTPUT, "choice is not one of the offered times")
        choice = ctx.offered[number - 1]
    language = field_value("language", str)
    if language not in ctx.languages:
        language = detect(text, ctx.languages, ctx.language)
    reply = field_value("reply", str)
    if confidence < min_confidence:
        raise _Rejected(Fallback.LOW_CONFIDENCE, f"confidence {confidence}")
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


class ModelUnderstander:
    """One per node: the OpenAI client, its connection pool and the concurrency cap, shared."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._client = openai.OpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url,
            timeout=settings.timeout_ms / 1000,
            max_retries=0,  # a retry would outlive the customer's patience; the rules answer instead
        )
        self._slots = gevent.lock.BoundedSemaphore(settings.max_concurrency)

    def understand(self, text: str, ctx: TurnContext) -> Understanding:
        """The model's understanding of one turn, or the rules' with the reason; never raises."""
        model = ctx.ai_model or self.settings.model
        started = time.perf_counter()
        budget = self.settings.timeout_ms / 1000
        response = None
        try:
            if not self._slots.acquire(timeout=budget):
                raise _Rejected(Fallback.BUSY, "no free slot")
            try:
                remaining = budget - (time.perf_counter() - started)
                if remaining <= 0:
                    raise _Rejected(Fallback.BUSY, "no time left after waiting for a slot")
                with gevent.Timeout(remaining, _Timeout):
                    response = self._client.chat.completions.create(**self._request(model, text, ctx))
            finally:
                self._slots.release()
            result = self._read(response, text, ctx)
            return dataclasses.replace(result, usage=self._usage(model, response, started))
        except _Rejected as rejected:
            return self._fallback(text, ctx, rejected.reason, str(rejected), model, response, started)
        except (_Timeout, openai.APITimeoutError):
            return self._fallback(text, ctx, Fallback.TIMEOUT, "timeout", model, None, started)
        except openai.APIConnectionError as error:
            return self._fallback(text, ctx, Fallback.CONNECTION, type(error).__name__, model, None, started)
        except openai.RateLimitError:
            return self._fallback(text, ctx, Fallback.RATE_LIMITED, "429", model, None, started)
        except openai.APIStatusError as error:
            reason = Fallback.SERVER_ERROR if error.status_code >= 500 else Fallback.API_ERROR
            return self._fallback(text, ctx, reason, str(error.status_code), model, None, started)
        except Exception as error:  # anything else from the client: still answer the customer
            log.exception("model call failed unexpectedly")
            return self._fallback(
                text, ctx, Fallback.API_ERROR, type(error).__name__, model, response, started
            )

    def _request(self, model: str, text: str, ctx: TurnContext) -> dict:
        request = {
            "model": model,
            "messages": _messages(text, ctx),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "understanding", "strict": True, "schema": response_schema(ctx)},
            },
            "max_completion_tokens": self.settings.max_output_tokens,
        }
        if not model.startswith(FIXED_TEMPERATURE_PREFIXES):
            request["temperature"] = 0  # the same message, the same reading
        return request

    def _read(self, response: object, text: str, ctx: TurnContext) -> Understanding:
        choices = getattr(response, "choices", None)
        if not choices:
            raise _Rejected(Fallback.INVALID_OUTPUT, "no choices")
        message = choices[0].message
        if getattr(message, "refusal", None):
            raise _Rejected(Fallback.REFUSAL, "refused")
        if choices[0].finish_reason == "content_filter":
            raise _Rejected(Fallback.REFUSAL, "content filter")
        if choices[0].finish_reason == "length":
            raise _Rejected(Fallback.INVALID_OUTPUT, "cut off at the token limit")
        return _parse(message.content, text, ctx, self.settings.min_confidence)

    def _usage(self, model: str, response: object | None, started: float) -> Usage:
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return Usage(
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=self.settings.cost(model, prompt, completion),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _fallback(
        self,
        text: str,
        ctx: TurnContext,
        reason: Fallback,
        detail: str,
        model: str,
        response: object | None,
        started: float,
    ) -> Understanding:
        usage = self._usage(model, response, started)
        log.warning(
            "model %s not used (%s: %s) after %.0f ms; the rules answer",
            model,
            reason,
            detail,
            usage.latency_ms,
        )
        result = understand_rules(text, ctx)
        return dataclasses.replace(result, fallback_reason=str(reason), usage=usage)

    def close(self) -> None:
        self._client.close()


def model_from_env(env: Mapping[str, str]) -> ModelUnderstander | None:
    """The node's understander, or None when no model is configured (OPENAI_API_KEY unset)."""
    settings = ModelSettings.from_env(env)
    return ModelUnderstander(settings) if settings else None
