"""The model's settings, read once from the environment: key, server, model, limits, prices."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# USD per million tokens (input, output), from OpenAI's price list; WAFLEET_AI_PRICES adds or overrides.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


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
    breaker_failures: int = 5  # outages in a row that stop the calls for a while (0: never stop)
    breaker_cooloff_ms: int = 30_000

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
            breaker_failures=_int(env, "WAFLEET_AI_BREAKER_FAILURES", cls.breaker_failures, 0),
            breaker_cooloff_ms=_int(env, "WAFLEET_AI_BREAKER_COOLOFF", cls.breaker_cooloff_ms, 0),
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
