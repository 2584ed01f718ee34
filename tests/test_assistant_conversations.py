"""Whole conversations through the HTTP API and the sandbox link, in ru, pt and en, on the rules:
book, missing slots asked one at a time, taken slot -> alternatives -> pick one, cancel by code,
reschedule, faq, handoff, a restart mid-conversation (kill -9), and a burst batched into one turn."""

from __future__ import annotations

import re
import time

import pytest

from tests.assistant_helpers import Chat, at, setup_salon, tomorrow
from tests.harness import Node, wait_for

CODE = re.compile(r"\b([ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{6})\b")


def code_in(reply: str) -> str:
    match = CODE.search(reply)
    assert match, reply
    return match.group(1)


def bookings(node: Node, company: str = "salon", **query: str) -> list[dict]:
    r = node.client.get(f"/api/assistant/{company}/bookings", params=query, headers=node.admin())
    assert r.status_code == 200, r.text
    return r.json()["bookings"]


def test_russian_book_taken_slot_alternatives_pick_one_and_cancel(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BATCH_WINDOW="0").start()
    setup_salon(node)
    day = tomorrow()
    olga, ivan = Chat(node, "salon", "79160000001"), Chat(node, "salon", "79160000002")

    reply = olga.say("Хочу записаться на стрижку завтра в 14:00")
    assert reply.startswith("Готово!") and "14:00" in reply, reply
    olga_code = code_in(reply)
    [booked] = bookings(node)
    assert (booked["code"], booked["start"], booked["customerPhone"]) == (
        olga_code,
        at(day, 14).isoformat(),
        "79160000001",
    )

    reply = ivan.say("здравствуйте, запишите на стрижку завтра в 14:00 пожалуйста")
    assert "занято" in reply and "13:00" in reply and "15:00" in reply, reply
    reply = ivan.say("15:00")
    assert reply.startswith("Готово!") and "15:00" in reply, reply
    ivan_code = code_in(reply)
    assert {b["code"] for b in bookings(node, status="confirmed")} == {olga_code, ivan_code}

    # only the customer who booked can cancel by code
    assert "Не нашёл" in ivan.say(f"отменить {olga_code}")
    reply = olga.say(f"отменить {olga_code.lower()}")
    assert "отменена" in reply and olga_code in reply, reply
    assert [b["code"] for b in bookings(node, status="cancelled")] == [olga_code]

    turns = node.client.get("/api/assistant/salon/conversations/79160000001", headers=node.admin()).json()[
        "turns"
    ]
    assert [(t["intent"], t["source"], t["outcome"]) for t in turns] == [
        ("booking", "rules", "booked"),
        ("cancel", "rules", "cancelled"),
    ]


def test_portuguese_missing_slots_one_at_a_time_then_reschedule(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BATCH_WINDOW="0").start()
    setup_salon(node)
    day = tomorrow()
    ana = Chat(node, "salon", "351910000003")
    assert "Para que dia" in ana.say("Oi, quero marcar um corte")
    reply = ana.say("amanhã")
    assert reply.startswith("A que horas?") and "09:00" in reply, reply
    reply = ana.say("16h")
    assert reply.startswith("Pronto!") and "16:00" in reply, reply
    code = code_in(reply)

    assert "Para que dia" in ana.say(f"queria remarcar {code}")
    assert ana.say("amanhã").startswith("A que horas?")
    reply = ana.say("às 17h30")
    assert "remarcada" in reply and "17:30" in reply and code in reply, reply
    [moved] = bookings(node)
    assert (moved["code"], moved["start"], moved["status"]) == (
        code,
        at(day, 17, 30).isoformat(),
        "confirmed",
    )


def test_english_faq_greeting_booking_and_a_cancel_that_asks_for_the_code(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BATCH_WINDOW="0").start()
    setup_salon(node)
    tom = Chat(node, "salon", "15550000004")
    assert tom.say("where are you?") == "Rua Augusta 100, Lisboa."
    assert tom.say("hi").startswith("Hello! I'm the assistant of Salon Rosa")
    reply = tom.say("can I get a haircut tomorrow at 2pm?")
    assert reply.startswith("Done!") and "14:00" in reply, reply
    code = code_in(reply)
    reply = tom.say("I need to cancel my appointment")
    assert "booking code" in reply and code in reply, reply  # it lists the customer's bookings
    reply = tom.say(code)
    assert "is cancelled" in reply, reply
    assert bookings(node)[0]["status"] == "cancelled"


def test_a_manual_send_silences_the_assistant_until_resumed(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BATCH_WINDOW="0").start()
    token = setup_salon(node)
    maria = Chat(node, "salon", "351910000005")
    assert maria.say("Olá").startswith("Olá!")
    r = node.post(
        "/api/whatsapp/send", {"companyId": "salon", "phone": maria.phone, "message": "Sou a Rosa, diga!"}
    )
    assert r.status_code == 202
    wait_for(lambda: "Sou a Rosa, diga!" in maria.replies(), what="the manual message delivered")
    conv = wait_for(
        lambda: (
            (
                c := node.client.get(
                    f"/api/assistant/salon/conversations/{maria.phone}", headers=node.admin()
                ).json()
            )["paused"]
            and c
        ),
        what="the chat paused",
    )
    assert conv["pausedUntil"] is not None
    count = len(maria.replies())
    maria.send("quero marcar um corte amanhã às 10h")
    # the assistant answers within milliseconds when it speaks (batch window 0): one second of
    # silence, with the message stored, is the handoff
    turn = wait_for(
        lambda: (
            node.client.get(f"/api/assistant/salon/conversations/{maria.phone}", headers=node.admin()).json()[
                "turns"
            ][-1]["outcome"]
            == "handoff"
        ),
        what="the message taken in silence",
    )
    assert turn
    time.sleep(0.5)  # and nothing goes out after it
    assert len(maria.replies()) == count
    assert bookings(node) == []

    r = node.client.post(
        f"/api/assistant/salon/conversations/{maria.phone}/resume",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.json()["paused"] is False
    reply = maria.say("quero marcar um corte amanhã às 10h")
    assert reply.startswith("Pronto!"), reply
    r = node.client.post(
        f"/api/assistant/salon/conversations/{maria.phone}/pause", json={"minutes": 5}, headers=node.admin()
    )
    assert r.status_code == 200 and r.json()["paused"] is True and r.json()["pausedUntil"]
    other = node.create_company("other")
    r = node.client.post(
        f"/api/assistant/salon/conversations/{maria.phone}/pause",
        headers={"Authorization": f"Bearer {other}"},
    )
    assert r.status_code == 403


@pytest.mark.slow
def test_a_restart_mid_conversation_goes_on_where_it_was(node_factory, database_url: str) -> None:
    node: Node = node_factory(database_url, WAFLEET_BATCH_WINDOW="1500").start()
    setup_salon(node)
    day = tomorrow()
    olga = Chat(node, "salon", "79160000006")
    assert "На какой день" in olga.say("Хочу записаться на стрижку")
    # stored inside the batch window, then the node dies before answering
    olga.send("завтра")
    wait_for(
        lambda: any(
            m["text"] == "завтра"
            for m in node.client.get("/api/whatsapp/messages/salon", headers=node.admin()).json()["messages"]
        ),
        what="the message stored",
    )
    node.kill()
    node.start()
    node.wait_status("salon", "connected")
    # (the sandbox's far side lives in the node's memory: after a restart it shows new messages only)
    [reply] = wait_for(olga.replies, timeout=15, what="the answer after the restart")
    assert reply.startswith("Во сколько?"), reply  # it remembered the service and the question
    node.kill()
    node.start()
    node.wait_status("salon", "connected")
    reply = olga.say("в 11")
    assert reply.startswith("Готово!") and "11:00" in reply, reply
    assert bookings(node)[0]["start"] == at(day, 11).isoformat()


def test_a_burst_of_messages_is_answered_as_one_turn(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BATCH_WINDOW="800").start()
    setup_salon(node)
    joao = Chat(node, "salon", "351910000007")
    for text in ("Olá", "quero marcar um corte", "amanhã às 15h"):
        joao.send(text)
    reply = wait_for(lambda: joao.replies(), what="the reply to the burst")[0]
    assert reply.startswith("Pronto!") and "15:00" in reply, reply
    turns = wait_for(
        lambda: node.client.get(
            f"/api/assistant/salon/conversations/{joao.phone}", headers=node.admin()
        ).json()["turns"]
    )
    assert [t["messages"] for t in turns] == [3]
    # nothing else comes: a second reply would come within the window
    time.sleep(1.5)
    assert len(joao.replies()) == 1
    stats = node.client.get("/api/assistant/salon/stats", headers=node.admin()).json()
    assert stats["bookings"]["made"] == 1 and stats["messages"]["in"] == 3 and stats["turns"] == 1
    assert stats["ai"]["calls"] == 0 and stats["responseMs"]["p50"] is not None


def test_an_idle_conversation_ends_and_the_next_message_goes_on_from_its_state(node_factory) -> None:
    node: Node = node_factory(WAFLEET_BATCH_WINDOW="0", WAFLEET_CONVERSATION_IDLE="1000").start()
    setup_salon(node)
    lia = Chat(node, "salon", "15550000008")

    def conversation() -> dict:
        r = node.client.get(f"/api/assistant/salon/conversations/{lia.phone}", headers=node.admin())
        assert r.status_code == 200, r.text
        return r.json()

    assert "which day" in lia.say("I'd like a haircut please").lower()
    assert conversation()["active"] is True
    listed = node.client.get("/api/assistant/salon/conversations", headers=node.admin()).json()
    assert [(c["phone"], c["active"]) for c in listed["conversations"]] == [(lia.phone, True)]
    # WAFLEET_CONVERSATION_IDLE (1 s) of silence ends the actor; the state stays in the database
    ended = wait_for(lambda: (c := conversation())["active"] is False and c, timeout=10, what="the idle end")
    assert (ended["flow"], ended["pending"], ended["slots"]["service"]) == ("book", "date", "haircut")
    assert lia.say("tomorrow").startswith("What time?")  # a new actor, the same conversation
    assert conversation()["active"] is True
