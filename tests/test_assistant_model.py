"""Understanding with a model: the real `openai` client against a contract fake on loopback.

Every path: a good answer, and each failure (connection drop, closed port, timeout,
429, 500, 503, refusal, invalid JSON, low confidence, ids the company does not have, a wrong key,
an unknown model, every slot taken) falls back to the rules with the reason, tokens and time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.assistant_corpus import context
from tests.fake_openai import FakeOpenAI, Outcome, drop, invalid_json, refusal, reply, status
from wafleet.actors.assistant.model import (
    ModelSettings,
    ModelSettingsError,
    ModelUnderstander,
    model_from_env,
    parse_prices,
)
from wafleet.actors.assistant.understanding import Intent, Slot, Turn, understand

TEXT = "can I get a haircut tomorrow at 2pm?"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(api_key="sk-test-123", timezone="Europe/London", today="2026-12-01").start()
    yield server
    server.stop()
    assert server.violations == []


def _understander(fake: FakeOpenAI, **overrides) -> ModelUnderstander:
    settings = ModelSettings(api_key=fake.api_key, base_url=fake.url, **{"timeout_ms": 2000, **overrides})
    return ModelUnderstander(settings)


def _ctx(**changes):
    base = context("en")
    base = dataclasses.replace(
        base,
        hours_text="Mon-Sat 09:00-19:00, Sunday closed",
        faq=(("Do you take cards?", "Yes, all cards."),),
        recent=(Turn("customer", "hello"), Turn("assistant", "Hi! How can I help?")),
    )
    return dataclasses.replace(base, **changes)


def test_a_good_answer_is_used_with_tokens_cost_and_time(fake: FakeOpenAI) -> None:
    fake.push(
        reply(
            "booking",
            service="haircut",
            date="2026-12-02",
            time="14:00",
            resource="anna",
            prompt_tokens=1000,
            completion_tokens=100,
        )
    )
    u = _understander(fake).understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason, u.intent, u.service, u.resource) == (
        "model",
        None,
        Intent.BOOKING,
        "haircut",
        "anna",
    )
    assert (u.date, u.time, u.language) == (dt.date(2026, 12, 2), dt.time(14), "en")
    assert u.usage is not None
    assert (u.usage.model, u.usage.prompt_tokens, u.usage.completion_tokens) == ("gpt-4o-mini", 1000, 100)
    assert u.usage.cost == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6)
    assert u.usage.latency_ms > 0


def test_the_request_holds_today_timezone_catalogue_faq_and_recent_turns(fake: FakeOpenAI) -> None:
    fake.push(reply("greeting", reply="Hello!"))
    u = _understander(fake).understand("hi", _ctx())
    assert (u.intent, u.reply, u.source) == (Intent.GREETING, "Hello!", "model")
    body = fake.requests[-1]["body"]
    assert fake.requests[-1]["headers"]["authorization"] == "Bearer sk-test-123"
    assert body["model"] == "gpt-4o-mini"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert set(schema["required"]) == {
        "intent",
        "language",
        "service",
        "date",
        "time",
        "resource",
        "code",
        "choice",
        "confidence",
        "reply",
    }
    assert schema["properties"]["intent"]["enum"] == [
        "greeting",
        "booking",
        "availability",
        "cancel",
        "reschedule",
        "faq",
        "other",
    ]
    system = body["messages"][0]["content"]
    for needle in (
        "Tuesday 2026-12-01",
        "Europe/London",
        "haircut",
        "Anna",
        "Маша",
        "Mon-Sat 09:00-19:00",
        "all cards",
    ):
        assert needle in system
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][-1]["content"] == "hi"


def test_the_company_model_choice_is_sent_and_priced(fake: FakeOpenAI) -> None:
    fake.push(reply("other", prompt_tokens=1_000_000, completion_tokens=0))
    u = _understander(fake).understand("ok", _ctx(ai_model="gpt-4o"))
    assert fake.requests[-1]["body"]["model"] == "gpt-4o"
    assert u.usage is not None and (u.usage.model, u.usage.cost) == ("gpt-4o", pytest.approx(2.50))


def test_a_language_the_company_does_not_speak_is_detected_from_the_message(fake: FakeOpenAI) -> None:
    """A local model that ignores the schema's enum may answer "es": the message decides instead."""
    fake.push(reply("booking", language="es", service="haircut"))
    u = _understander(fake).understand("quero marcar um corte", _ctx())
    assert (u.source, u.language) == ("model", "pt")


def test_temperature_is_zero_except_for_models_that_refuse_it(fake: FakeOpenAI) -> None:
    fake.models = ("gpt-4o-mini", "gpt-5-mini")
    fake.push(reply("other"), reply("other"))
    understander = _understander(fake)
    assert understander.understand("ok", _ctx()).source == "model"
    assert understander.understand("ok", _ctx(ai_model="gpt-5-mini")).source == "model"
    assert fake.requests[0]["body"]["temperature"] == 0
    assert "temperature" not in fake.requests[1]["body"]


def test_a_picked_alternative_becomes_the_choice(fake: FakeOpenAI) -> None:
    offered = tuple(
        dt.datetime(2026, 12, 2, h, m, tzinfo=_ctx().now.tzinfo) for h, m in ((15, 0), (15, 30), (16, 0))
    )
    fake.push(reply("booking", choice=2))
    u = _understander(fake).understand("the second one", _ctx(pending=Slot.CHOICE, offered=offered))
    assert (u.choice, u.date, u.time) == (offered[1], dt.date(2026, 12, 2), dt.time(15, 30))
    assert "2) 2026-12-02 15:30" in fake.requests[-1]["body"]["messages"][0]["content"]


# Each failure: (outcome, reason, whether the call cost tokens)
FAILURES = {
    "connection drop": (drop(), "connection", False),
    "429": (status(429), "rate_limited", False),
    "429 quota": (status(429, quota=True), "quota_exceeded", False),
    "500": (status(500), "server_error", False),
    "503": (status(503), "server_error", False),
    "refusal": (refusal(), "refusal", True),
    "invalid json": (invalid_json(), "invalid_output", True),
    "low confidence": (reply("booking", service="haircut", confidence=0.2), "low_confidence", True),
    "unknown service id": (reply("booking", service="massage"), "invalid_output", True),
    "unknown resource id": (reply("booking", resource="bob"), "invalid_output", True),
    "date that does not parse": (reply("booking", date="tomorrow"), "invalid_output", True),
    "time that does not parse": (reply("booking", time="2pm"), "invalid_output", True),
    "choice nobody offered": (reply("booking", choice=3), "invalid_output", True),
    "bad code": (reply("cancel", code="ABC"), "invalid_output", True),
    "unknown intent": (reply("purchase"), "invalid_output", True),
    "cut at the token limit": (
        Outcome("reply", '{"intent": "booking"', finish_reason="length"),
        "invalid_output",
        True,
    ),
}


@pytest.mark.parametrize("name", FAILURES)
def test_every_failure_falls_back_to_the_rules_with_the_reason(fake: FakeOpenAI, name: str) -> None:
    outcome, reason, costs = FAILURES[name]
    fake.push(outcome)
    u = _understander(fake).understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason) == ("rules", reason)
    # the customer still gets the booking understood, by the rules
    assert (u.intent, u.service, u.date, u.time) == (
        Intent.BOOKING,
        "haircut",
        dt.date(2026, 12, 2),
        dt.time(14),
    )
    assert u.usage is not None and u.usage.model == "gpt-4o-mini" and u.usage.latency_ms > 0
    assert (u.usage.prompt_tokens > 0) is costs
    assert len(fake.requests) == 1  # no retry


def test_a_slow_model_is_abandoned_at_the_timeout(fake: FakeOpenAI) -> None:
    fake.push(reply("booking", service="haircut").after(3.0))
    u = _understander(fake, timeout_ms=300).understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason, u.service) == ("rules", "timeout", "haircut")
    assert u.usage is not None and 300 <= u.usage.latency_ms < 3000


def test_a_closed_port_is_a_connection_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ModelSettings(api_key="sk-x", base_url=f"http://127.0.0.1:{port}/v1", timeout_ms=2000)
    u = ModelUnderstander(settings).understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason, u.intent) == ("rules", "connection", Intent.BOOKING)


def test_a_wrong_key_or_unknown_model_is_an_api_error(fake: FakeOpenAI) -> None:
    settings = ModelSettings(api_key="sk-wrong", base_url=fake.url, timeout_ms=2000)
    u = ModelUnderstander(settings).understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason) == ("rules", "api_error")
    u = _understander(fake).understand(TEXT, _ctx(ai_model="gpt-99"))
    assert (u.source, u.fallback_reason) == ("rules", "api_error")


def test_every_slot_taken_for_the_whole_timeout_falls_back_as_busy(fake: FakeOpenAI) -> None:
    understander = _understander(fake, timeout_ms=200, max_concurrency=1)
    assert understander._slots.acquire(blocking=False)  # another turn's call holds the only slot
    u = understander.understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason, u.intent) == ("rules", "busy", Intent.BOOKING)
    assert fake.requests == []


def test_a_model_that_keeps_failing_is_left_alone_until_the_cooloff_ends(fake: FakeOpenAI) -> None:
    """During an outage every turn would wait for its own failure (a timeout: seconds); after three
    in a row the rules answer at once, until one probe after the cool-off finds the model back."""
    clock = [1000.0]
    settings = ModelSettings(
        api_key=fake.api_key,
        base_url=fake.url,
        timeout_ms=2000,
        breaker_failures=3,
        breaker_cooloff_ms=30_000,
    )
    understander = ModelUnderstander(settings, clock=lambda: clock[0])
    fake.push(status(500), drop(), status(503))
    reasons = [understander.understand(TEXT, _ctx()).fallback_reason for _ in range(3)]
    assert reasons == ["server_error", "connection", "server_error"]
    u = understander.understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason, u.usage, u.service) == ("rules", "circuit_open", None, "haircut")
    assert len(fake.requests) == 3  # the model was not called
    fake.push(reply("other"))  # another company's model is not stopped
    assert understander.understand("hi", _ctx(ai_model="gpt-4o")).source == "model"
    assert len(fake.requests) == 4
    clock[0] += 29.9
    assert understander.understand(TEXT, _ctx()).fallback_reason == "circuit_open"
    clock[0] += 0.2  # cool-off over: one probe; it fails, the circuit stays open for another cool-off
    fake.push(status(500))
    assert understander.understand(TEXT, _ctx()).fallback_reason == "server_error"
    assert understander.understand(TEXT, _ctx()).fallback_reason == "circuit_open"
    clock[0] += 30.1  # the next probe gets an answer: the circuit closes
    fake.push(reply("booking", service="haircut"), reply("booking", service="manicure"))
    assert understander.understand(TEXT, _ctx()).source == "model"
    assert understander.understand(TEXT, _ctx()).service == "manicure"
    assert len(fake.requests) == 7


def test_understand_goes_through_the_model_when_one_is_given(fake: FakeOpenAI) -> None:
    fake.push(reply("cancel", code="abc234"))
    u = understand("cancel abc234", _ctx(), _understander(fake))
    assert (u.source, u.intent, u.code) == ("model", Intent.CANCEL, "ABC234")


def test_settings_come_from_the_environment(fake: FakeOpenAI) -> None:
    assert ModelSettings.from_env({}) is None
    assert model_from_env({"OPENAI_API_KEY": " "}) is None
    settings = ModelSettings.from_env(
        {
            "OPENAI_API_KEY": fake.api_key,
            "OPENAI_BASE_URL": fake.url,
            "WAFLEET_AI_MODEL": "gpt-4o",
            "WAFLEET_AI_TIMEOUT": "1500",
            "WAFLEET_AI_CONCURRENCY": "3",
            "WAFLEET_AI_MIN_CONFIDENCE": "0.7",
            "WAFLEET_AI_PRICES": "gpt-4o=3/12, local-llama=0/0",
            "WAFLEET_AI_BREAKER_FAILURES": "0",
            "WAFLEET_AI_BREAKER_COOLOFF": "5000",
        }
    )
    assert settings is not None
    assert (settings.model, settings.timeout_ms, settings.max_concurrency, settings.min_confidence) == (
        "gpt-4o",
        1500,
        3,
        0.7,
    )
    assert settings.prices["gpt-4o"] == (3.0, 12.0) and settings.prices["gpt-4o-mini"] == (0.15, 0.60)
    assert (settings.breaker_failures, settings.breaker_cooloff_ms) == (0, 5000)
    assert fake.api_key not in repr(settings)
    fake.push(reply("booking", service="haircut", confidence=0.65))
    u = ModelUnderstander(settings).understand(TEXT, _ctx())
    assert (u.source, u.fallback_reason) == ("rules", "low_confidence")  # 0.65 < 0.7
    assert fake.requests[-1]["body"]["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WAFLEET_AI_TIMEOUT": "soon"}, "WAFLEET_AI_TIMEOUT"),
        ({"WAFLEET_AI_TIMEOUT": "5"}, "WAFLEET_AI_TIMEOUT"),
        ({"WAFLEET_AI_CONCURRENCY": "0"}, "WAFLEET_AI_CONCURRENCY"),
        ({"WAFLEET_AI_BREAKER_FAILURES": "-1"}, "WAFLEET_AI_BREAKER_FAILURES"),
        ({"WAFLEET_AI_BREAKER_COOLOFF": "x"}, "WAFLEET_AI_BREAKER_COOLOFF"),
        ({"WAFLEET_AI_MIN_CONFIDENCE": "2"}, "WAFLEET_AI_MIN_CONFIDENCE"),
        ({"WAFLEET_AI_PRICES": "gpt-4o=cheap"}, "WAFLEET_AI_PRICES"),
        ({"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
    ],
)
def test_wrong_settings_name_the_variable(env: dict, named: str) -> None:
    with pytest.raises(ModelSettingsError, match=named):
        ModelSettings.from_env({"OPENAI_API_KEY": "sk-x", **env})


def test_prices_parse() -> None:
    assert parse_prices("") == {}
    assert parse_prices("a=1/2,b=0.5/0") == {"a": (1.0, 2.0), "b": (0.5, 0.0)}


def test_the_fake_refuses_what_the_real_api_refuses(fake: FakeOpenAI) -> None:
    """The fake's checks are real: a request breaking the contract is refused and recorded."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "no date here"}, {"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "x",
                "strict": True,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": []},
            },
        },
    }
    r = httpx.post(f"{fake.url}/chat/completions", json=body, headers={"Authorization": "Bearer sk-test-123"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert any("additionalProperties" in v for v in fake.violations)
    assert any("every property must be required" in v for v in fake.violations)
    assert any("today's date 2026-12-01" in v for v in fake.violations)
    assert any("timezone Europe/London" in v for v in fake.violations)
    fake.violations.clear()


PROBE = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, sys
    import gevent
    sys.path.insert(0, sys.argv[1])
    from tests.assistant_corpus import context
    from wafleet.actors.assistant.model import ModelSettings, ModelUnderstander

    ticks = 0
    def ticker():
        global ticks
        while True:
            gevent.sleep(0.01)
            ticks += 1

    results = []
    for url, cap in zip(sys.argv[2::2], sys.argv[3::2]):
        settings = ModelSettings(api_key="sk-test-123", base_url=url, timeout_ms=5000, max_concurrency=int(cap))
        understander = ModelUnderstander(settings)
        ticks = 0
        t = gevent.spawn(ticker)
        calls = [gevent.spawn(understander.understand, "can I get a haircut tomorrow at 2pm?", context("en"))
                 for _ in range(6)]
        gevent.joinall(calls)
        t.kill()
        results.append({"ticks": ticks, "sources": [c.value.source for c in calls]})
    print(json.dumps(results))
    """
)


def test_under_gevent_calls_share_the_hub_within_the_concurrency_cap() -> None:
    """In a monkey-patched process (like the node) six turns call a model that takes 0.3 s each,
    with a cap of 2 and of 6: the calls overlap up to the cap and never more, and other greenlets
    keep running meanwhile (without cooperative sockets: 1 in flight and 0 ticks)."""
    caps = (2, 6)
    fakes = [
        FakeOpenAI(api_key="sk-test-123", timezone="Europe/London", today="2026-12-01", delay=0.3)
        for _ in caps
    ]
    args = [str(ROOT)]
    for fake, cap in zip(fakes, caps, strict=True):
        fake.responder = lambda body: reply("booking", service="haircut")
        args += [fake.start().url, str(cap)]
    try:
        out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    finally:
        for fake in fakes:
            fake.stop()
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for fake, cap, result in zip(fakes, caps, results, strict=True):
        assert result["sources"] == ["model"] * 6
        assert fake.max_in_flight == cap
        # 6 calls of 0.3 s, `cap` at a time: the ticker ran every 10 ms all along, the hub was free
        assert result["ticks"] >= 20
        assert fake.violations == []
