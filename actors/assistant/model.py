"""Understanding with an OpenAI(-compatible) model: one Chat Completions call per turn.

The model only extracts (intent, service, date, time, staff, code, which offered time, confidence,
a short reply for greetings and questions); the booking engine decides. The call is made with a
strict JSON-schema response format, under a per-node concurrency cap and a timeout. Whenever the
model cannot be used — connection error, timeout, 429, 5xx, a refusal, output that does not
validate, confidence below the threshold, every slot taken, a server that keeps failing — the turn
is understood by the rules instead and `fallback_reason` says why: the customer always gets an answer.

Under gevent (the node monkey-patches the standard library) the synchronous `openai` client's
sockets are cooperative: a call blocks only the greenlet that makes it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

import gevent
import gevent.lock
import openai
from openai.types.chat import ChatCompletion

from wafleet.actors.assistant.model_prompt import (
    OUTAGES,
    Fallback,
    Rejected,
    messages,
    parse,
    response_schema,
)
from wafleet.actors.assistant.model_settings import ModelSettings, ModelSettingsError, parse_prices
from wafleet.actors.assistant.rules import understand_rules
from wafleet.actors.assistant.understanding import TurnContext, Understanding, Usage

__all__ = [
    "Fallback",
    "ModelSettings",
    "ModelSettingsError",
    "ModelUnderstander",
    "model_from_env",
    "parse_prices",
]

log = logging.getLogger(__name__)

# Reasoning models refuse a temperature other than the default (400 "Unsupported value").
FIXED_TEMPERATURE_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class _Timeout(Exception):
    """The whole call (waiting for a slot included) outlived WAFLEET_AI_TIMEOUT.

    An Exception, not gevent.Timeout (a BaseException), which would tear down every actor.
    """


class _Breaker:
    """Stops calling a model whose server keeps failing, so that during an outage every turn is
    answered by the rules at once instead of after a timeout. After the cool-off one call probes
    the server; an answer closes the circuit, another outage keeps it open."""

    def __init__(self, failures: int, cooloff_ms: int, clock: Callable[[], float]) -> None:
        self.threshold = failures
        self.cooloff = cooloff_ms / 1000
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0

    def allow(self) -> bool:
        if not self.threshold or self.failures < self.threshold:
            return True
        now = self.clock()
        if now < self.open_until:
            return False
        self.open_until = now + self.cooloff  # this caller probes; the others keep to the rules
        return True

    def record(self, reason: Fallback | None) -> None:
        if reason in OUTAGES:
            self.failures += 1
            if self.threshold and self.failures == self.threshold:
                self.open_until = self.clock() + self.cooloff
                log.warning(
                    "model calls stop for %.0f s after %d failures in a row", self.cooloff, self.failures
                )
        elif reason is not Fallback.BUSY:
            self.failures = 0


# Calls in flight on one client. Its connection pool (httpcore) looks at every pooled connection,
# with a poll() of its socket, when a request starts and when one ends: with 200 calls in flight
# on one client that was 12-15 % of the node's CPU (py-spy on bench_assistant's model run), so
# the calls are spread over clients of at most LANE each, opened as the load asks for them.
LANE = 16


@dataclasses.dataclass
class _Lane:
    client: openai.OpenAI
    in_flight: int = 0


class ModelUnderstander:
    """One per node: the OpenAI client, its connection pool and the concurrency cap, shared."""

    def __init__(self, settings: ModelSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}  # per model: one company's slow model stops no other
        self._lanes: list[_Lane] = []
        self._slots = gevent.lock.BoundedSemaphore(settings.max_concurrency)

    def understand(self, text: str, ctx: TurnContext) -> Understanding:
        """The model's understanding of one turn, or the rules' with the reason; never raises."""
        model = ctx.ai_model or self.settings.model
        started = time.perf_counter()
        budget = self.settings.timeout_ms / 1000
        response = None
        breaker = self._breaker(model)
        if not breaker.allow():
            result = understand_rules(text, ctx)
            return dataclasses.replace(result, fallback_reason=str(Fallback.CIRCUIT_OPEN))
        try:
            if not self._slots.acquire(timeout=budget):
                raise Rejected(Fallback.BUSY, "no free slot")
            try:
                remaining = budget - (time.perf_counter() - started)
                if remaining <= 0:
                    raise Rejected(Fallback.BUSY, "no time left after waiting for a slot")
                with gevent.Timeout(remaining, _Timeout):
                    response = self._create(self._request(model, text, ctx))
            finally:
                self._slots.release()
            result = self._read(response, text, ctx)
            breaker.record(None)
            return dataclasses.replace(result, usage=self._usage(model, response, started))
        except Rejected as rejected:
            return self._fallback(text, ctx, rejected.reason, str(rejected), model, response, started)
        except (_Timeout, openai.APITimeoutError):
            return self._fallback(text, ctx, Fallback.TIMEOUT, "timeout", model, None, started)
        except openai.APIConnectionError as error:
            return self._fallback(text, ctx, Fallback.CONNECTION, type(error).__name__, model, None, started)
        except openai.RateLimitError as error:
            quota = getattr(error, "code", None) == "insufficient_quota"
            reason = Fallback.QUOTA_EXCEEDED if quota else Fallback.RATE_LIMITED
            return self._fallback(text, ctx, reason, "429", model, None, started)
        except openai.APIStatusError as error:
            reason = Fallback.SERVER_ERROR if error.status_code >= 500 else Fallback.API_ERROR
            return self._fallback(text, ctx, reason, str(error.status_code), model, None, started)
        except Exception as error:  # anything else from the client: still answer the customer
            log.exception("model call failed unexpectedly")
            return self._fallback(
                text, ctx, Fallback.API_ERROR, type(error).__name__, model, response, started
            )

    def _create(self, request: dict) -> ChatCompletion:
        """``chat.completions.create`` without its parameter transform: the client walks every
        key of the request (the strict JSON schema included) against its typed-dict annotations,
        ~2.6 ms of CPU per call (measured) for plain JSON it sends unchanged. The same client
        posts it: base URL, bearer key, timeout, status errors and the parsed ChatCompletion."""
        lane = min(self._lanes, key=lambda each: each.in_flight, default=None)
        if lane is None or lane.in_flight >= LANE:
            lane = _Lane(self._new_client())
            self._lanes.append(lane)
        lane.in_flight += 1
        try:
            return lane.client.post(
                "/chat/completions",
                body=request,
                cast_to=ChatCompletion,
                options={"security": {"bearer_auth": True}},
            )
        finally:
            lane.in_flight -= 1

    def _new_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.settings.api_key,
            base_url=self.settings.base_url,
            timeout=self.settings.timeout_ms / 1000,
            max_retries=0,  # a retry would outlive the customer's patience; the rules answer instead
        )

    def _breaker(self, model: str) -> _Breaker:
        breaker = self._breakers.get(model)
        if breaker is None:
            settings = self.settings
            breaker = self._breakers[model] = _Breaker(
                settings.breaker_failures, settings.breaker_cooloff_ms, self._clock
            )
        return breaker

    def _request(self, model: str, text: str, ctx: TurnContext) -> dict:
        request = {
            "model": model,
            "messages": messages(text, ctx),
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
            raise Rejected(Fallback.INVALID_OUTPUT, "no choices")
        message = choices[0].message
        if getattr(message, "refusal", None):
            raise Rejected(Fallback.REFUSAL, "refused")
        if choices[0].finish_reason == "content_filter":
            raise Rejected(Fallback.REFUSAL, "content filter")
        if choices[0].finish_reason == "length":
            raise Rejected(Fallback.INVALID_OUTPUT, "cut off at the token limit")
        return parse(message.content, text, ctx, self.settings.min_confidence)

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
        self._breaker(model).record(reason)
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
        for lane in self._lanes:
            lane.client.close()


def model_from_env(env: Mapping[str, str]) -> ModelUnderstander | None:
    """The node's understander, or None when no model is configured (OPENAI_API_KEY unset)."""
    settings = ModelSettings.from_env(env)
    return ModelUnderstander(settings) if settings else None
