"""Whole conversations on the model path: a real node whose `openai` client talks to the contract
fake (OPENAI_BASE_URL). The model only extracts; the engine still decides (a taken slot is refused
whatever the model says), failures fall back to the rules, and a slow model delays only its chat."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.assistant_helpers import Chat, setup_salon, tomorrow
from tests.fake_openai import FakeOpenAI, Outcome, reply, status
from tests.harness import Node, wait_for
from tests.test_assistant_conversations import bookings, code_in

KEY = "sk-test-booking"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=KEY, timezone="Europe/Lisbon").start()
    yield server
    server.stop()
    assert server.violations == []


def model_node(node_factory, fake: FakeOpenAI, **env: str) -> Node:
    return node_factory(
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=fake.url,
        WAFLEET_BATCH_WINDOW="0",
        WAFLEET_AI_TIMEOUT="5000",
        **env,
    ).start()


def turns(node: Node, phone: str) -> list[dict]:
    r = node.client.get(f"/api/assistant/salon/conversations/{phone}", headers=node.admin())
    assert r.status_code == 200, r.text
    return r.json()["turns"]


def test_model_path_book_taken_choice_cancel_in_three_languages(node_factory, fake: FakeOpenAI) -> None:
    node = model_node(node_factory, fake)
    setup_salon(node)
    day = tomorrow().isoformat()
    olga, ana, tom = (Chat(node, "salon", p) for p in ("79160000011", "351910000012", "15550000013"))

    fake.push(
        reply(
            "booking",
            language="ru",
            service="haircut",
            date=day,
            time="14:00",
            prompt_tokens=420,
            completion_tokens=40,
        )
    )
    reply_text = olga.say("Хочу записаться на стрижку завтра в 14:00")
    assert reply_text.startswith("Готово!") and "14:00" in reply_text, reply_text
    code = code_in(reply_text)

    # the model says "book 14:00" again: the engine refuses and offers the nearest free starts
    fake.push(reply("booking", language="pt", service="haircut", date=day, time="14:00"))
    reply_text = ana.say("quero um corte amanhã às 14h")
    assert "já está ocupado" in reply_text and "13:00" in reply_text and "15:00" in reply_text, reply_text
    offered_request = fake.requests[-1]
    fake.push(reply("booking", language="pt", choice=3))  # "the third one": 15:00
    reply_text = ana.say("pode ser a terceira")
    assert reply_text.startswith("Pronto!") and "15:00" in reply_text, reply_text
    # the offered times went to the model in the prompt of the next turn
    assert "Times offered last turn" in fake.requests[-1]["body"]["messages"][0]["content"]
    assert offered_request is not fake.requests[-1]
    ana_code = code_in(reply_text)
    fake.push(reply("reschedule", language="pt", code=ana_code, date=day, time="17:30"))
    reply_text = ana.say(f"dá para passar a {ana_code} para as 17h30?")
    assert "remarcada" in reply_text and "17:30" in reply_text and ana_code in reply_text, reply_text

    fake.push(reply("faq", language="en", reply="We are at Rua Augusta 100."))
    assert tom.say("where are you guys?") == "We are at Rua Augusta 100."
    fake.push(reply("cancel", language="ru", code=code))
    reply_text = olga.say(f"отмените пожалуйста {code}")
    assert "отменена" in reply_text, reply_text

    first = turns(node, olga.phone)[0]
    assert (first["source"], first["promptTokens"], first["completionTokens"]) == ("model", 420, 40)
    assert first["model"] == "gpt-4o-mini" and first["cost"] > 0 and first["aiLatencyMs"] is not None
    stats = node.client.get("/api/assistant/salon/stats", headers=node.admin()).json()
    assert stats["ai"]["calls"] == 6 and stats["ai"]["fallbackRate"] == 0.0
    assert stats["ai"]["promptTokens"] >= 420 and stats["bookings"] == {"made": 2, "cancelled": 1}
    # every request was strict JSON-schema with today's date and the timezone (the fake checks)
    assert all(r["body"]["response_format"]["type"] == "json_schema" for r in fake.requests)


def test_model_failures_fall_back_to_the_rules(node_factory, fake: FakeOpenAI) -> None:
    node = model_node(node_factory, fake)
    setup_salon(node)
    ivan = Chat(node, "salon", "79160000014")
    fake.push(status(429), reply("booking", language="ru", confidence=0.1), status(503))
    reply_text = ivan.say("Хочу записаться на стрижку завтра в 11:00")
    assert reply_text.startswith("Готово!") and "11:00" in reply_text, reply_text
    assert "Во сколько?" in ivan.say("и ещё на маникюр завтра")  # low confidence: the rules ask
    reply_text = ivan.say("в 16:00")
    assert reply_text.startswith("Готово!") and "16:00" in reply_text
    sources = [(t["source"], t["fallbackReason"]) for t in turns(node, ivan.phone)]
    assert [s for s, _ in sources] == ["rules", "rules", "rules"]
    assert all(reason for _, reason in sources), sources
    stats = node.client.get("/api/assistant/salon/stats", headers=node.admin()).json()
    assert stats["ai"]["calls"] == 3 and stats["ai"]["fallbackRate"] == 1.0
    assert len(bookings(node)) == 2


def test_a_slow_model_call_delays_only_its_own_chat(node_factory, fake: FakeOpenAI) -> None:
    node = model_node(node_factory, fake)
    setup_salon(node)
    release = threading.Event()

    def answer(body: dict) -> Outcome:
        text = body["messages"][-1]["content"]
        if "slow" in text:
            release.wait(20)  # this chat's model call hangs until the other chat was answered
        return reply("greeting", language="en", reply=f"hello {text.split()[-1]}")

    fake.responder = answer
    slow, quick = Chat(node, "salon", "15550000015"), Chat(node, "salon", "15550000016")
    slow.send("hi, slow")
    wait_for(lambda: fake.max_in_flight >= 1 and len(fake.requests) >= 1, what="the slow call in flight")
    started = time.monotonic()
    assert quick.say("hi, quick") == "hello quick"
    assert time.monotonic() - started < 3.0
    assert slow.replies() == []  # still waiting for its model
    release.set()
    assert wait_for(slow.replies, what="the slow chat's answer") == ["hello slow"]
