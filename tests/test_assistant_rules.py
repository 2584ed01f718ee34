"""The rule-based understanding, on messages written the way customers type them on a phone.

The corpus test prints the share right per language; run it alone to see the figures:
    python -m pytest -q -s tests/test_assistant_rules.py -k corpus
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from tests.assistant_corpus import LANGUAGES, cases, context, got
from wafleet.actors.assistant.rules import understand_rules, warm_up
from wafleet.actors.assistant.understanding import Intent, Slot, Understanding, understand

# The share of corpus messages whose intent and every slot must come out right, per language.
# We aim at 95 %: a wrong slot means a wrong booking or an extra question for the customer.
THRESHOLD = 0.95


def _rules(text: str, lang: str = "en", **entry) -> Understanding:
    return understand_rules(text, context(lang, entry))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_corpus_share_right_per_language(lang: str) -> None:
    wrong = []
    corpus = cases(lang)
    contexts = [context(lang, case.entry) for case in corpus]
    warm_up(LANGUAGES)
    started = time.perf_counter()
    results = [understand_rules(case.entry["text"], ctx) for case, ctx in zip(corpus, contexts, strict=True)]
    elapsed = time.perf_counter() - started
    for case, understood in zip(corpus, results, strict=True):
        result = got(lang, understood)
        expected = case.expected()
        if result != expected:
            diff = {k: f"{expected[k]!r} -> {result[k]!r}" for k in expected if expected[k] != result[k]}
            wrong.append(f"  {case.entry['text']!r}: {diff}")
    share = 1 - len(wrong) / len(corpus)
    print(
        f"\n[{lang}] rules right on {len(corpus) - len(wrong)}/{len(corpus)} messages = {share:.1%}"
        f" ({elapsed / len(corpus) * 1000:.2f} ms a message after warm_up)"
    )
    print("\n".join(wrong))
    assert len(corpus) >= 40
    assert share >= THRESHOLD, "\n".join(wrong)


def test_a_booking_in_one_message_in_each_language() -> None:
    for lang, text, at in (
        ("ru", "Хочу записаться на стрижку завтра в 14:00", dt.time(14)),
        ("pt", "Quero marcar um corte amanhã às 14h", dt.time(14)),
        ("en", "can I get a haircut tomorrow at 2pm?", dt.time(14)),
    ):
        u = _rules(text, lang)
        assert (u.intent, u.language, u.service, u.date, u.time) == (
            Intent.BOOKING,
            lang,
            "haircut",
            dt.date(2026, 12, 2),
            at,
        )
        assert u.source == "rules"


def test_fourteen_h_is_two_pm_not_fourteen_hours_from_now() -> None:
    """dateparser alone reads "14h" as an offset of 14 hours (tomorrow 00:00 from 10:00)."""
    u = _rules("amanhã às 14h", "pt")
    assert (u.date, u.time) == (dt.date(2026, 12, 2), dt.time(14))
    u = _rules("sexta às 15h30", "pt")
    assert (u.date, u.time) == (dt.date(2026, 12, 4), dt.time(15, 30))


def test_numeric_dates_are_day_first_and_in_the_future() -> None:
    assert _rules("стрижка 10.12 в 11", "ru").date == dt.date(2026, 12, 10)
    assert _rules("corte 3/12", "pt").date == dt.date(2026, 12, 3)
    # 5 January has passed this year's: the next one is meant.
    assert _rules("стрижка 05.01", "ru").date == dt.date(2027, 1, 5)
    # a time written with a dot is still a time when it cannot be a date
    assert _rules("в 14.30", "ru", pending="time").time == dt.time(14, 30)


def test_dates_are_relative_to_now_in_the_company_timezone() -> None:
    """At 23:30 in São Paulo it is already the next day in UTC: "amanhã" is São Paulo's tomorrow."""
    base = context("pt")
    late = dt.datetime(2026, 12, 1, 23, 30, tzinfo=ZoneInfo("America/Sao_Paulo"))
    ctx = type(base)(**{**base.__dict__, "now": late})
    assert understand_rules("amanhã às 10h", ctx).date == dt.date(2026, 12, 2)
    assert understand_rules("hoje", ctx).date == dt.date(2026, 12, 1)


def test_booking_codes_in_any_case_but_not_ordinary_words() -> None:
    assert _rules("cancel abc234").code == "ABC234"
    assert _rules("отменить Xh4T9b", "ru").code == "XH4T9B"
    # a code made only of letters counts when typed in capitals about a booking
    assert _rules("cancel KMNPQR").code == "KMNPQR"
    # "please" and "amanha" are spelt with the code alphabet but are words
    assert _rules("cancel please").code is None
    assert _rules("cancelar amanha", "pt").code is None
    # 0, 1, O and I are not in the alphabet
    assert _rules("cancel AB0I12").code is None


def test_services_tolerate_case_accents_inflection_and_typos() -> None:
    assert _rules("ХОЧУ НА МАНИКЮР", "ru").service == "manicure"
    assert _rules("записаться на маникур", "ru").service == "manicure"
    assert _rules("quero coloracao", "pt").service == "coloring"
    assert _rules("a haircutt pls").service == "haircut"
    assert _rules("quero marcar", "pt").service is None


def test_staff_names_in_either_script_and_any_case_ending() -> None:
    assert _rules("к Анне на стрижку", "ru").resource == "anna"
    assert _rules("хочу к марии", "ru").resource == "maria"
    assert _rules("com a maria", "pt").resource == "maria"
    # "marca" differs from "maria" by one letter: not a name
    assert _rules("marca um corte", "pt").resource is None


def test_language_is_detected_and_kept_for_messages_without_words() -> None:
    assert _rules("Хочу записаться", "en").language == "ru"
    assert _rules("quero marcar um corte", "en").language == "pt"
    assert _rules("i want a haircut", "ru").language == "en"
    ctx = context("en")
    ctx = type(ctx)(**{**ctx.__dict__, "language": "pt", "pending": Slot.TIME})
    assert understand_rules("16:00", ctx).language == "pt"
    # a language the company does not speak is answered in its default
    only_pt = type(ctx)(**{**ctx.__dict__, "languages": ("pt",), "language": None})
    assert understand_rules("хочу записаться", only_pt).language == "pt"


def test_a_bare_answer_fills_the_pending_question_and_continues_the_intent() -> None:
    u = _rules("завтра", "ru", pending="date", conversation_intent="reschedule")
    assert (u.intent, u.date) == (Intent.RESCHEDULE, dt.date(2026, 12, 2))
    u = _rules("16", "en", pending="time")
    assert (u.intent, u.time) == (Intent.BOOKING, dt.time(16))
    offered = ["2026-12-02 15:00", "2026-12-02 15:30", "2026-12-02 16:00"]
    u = _rules("a última", "pt", pending="choice", offered=offered)
    assert u.choice is not None and u.choice.hour == 16
    assert _rules("option 2", pending="choice", offered=offered).choice.minute == 30
    # a time nobody offered is not a choice, but it is still a time
    u = _rules("at 18:00", pending="choice", offered=offered)
    assert (u.choice, u.time) == (None, dt.time(18))


def test_any_text_gets_an_answer() -> None:
    for text in (
        "",
        " ",
        "🙂🙂",
        "?!",
        "1234567890" * 50,
        "a" * 5000,
        "\x00\u202e",
        "99:99",
        "32.13",
        "в 25",
    ):
        u = _rules(text)
        assert isinstance(u.intent, Intent)
        assert u.language in ("en", "ru", "pt")


def test_understand_uses_the_rules_without_a_model() -> None:
    u = understand("cancel ABC234", context("en"), None)
    assert (u.intent, u.code, u.source, u.fallback_reason) == (Intent.CANCEL, "ABC234", "rules", None)


def test_a_long_message_gives_the_date_parser_only_a_few_short_pieces(monkeypatch) -> None:
    """The parser's cost grows with its input (650 ms for 4,600 characters): a long message must
    not hold up the node, so it reads only the places that may hold a date, and few of them."""
    from wafleet.actors.assistant import when

    seen: list[str] = []
    real = when.search_dates

    def spy(text, *args, **kwargs):
        seen.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(when, "search_dates", spy)
    text = "in 2 days at 5pm maybe " * 200 + " " + "1234567890" * 100
    u = _rules(text)
    assert u.date == dt.date(2026, 12, 3)
    assert 1 <= len(seen) <= 3 and all(len(piece) <= 160 for piece in seen)


def test_in_two_days_is_a_date_not_two_in_the_afternoon() -> None:
    """ "2 дня" is 14:00 in "в 2 дня" but two days in "через 2 дня"."""
    assert (_rules("стрижка через 2 дня", "ru").date, _rules("стрижка через 2 дня", "ru").time) == (
        dt.date(2026, 12, 3),
        None,
    )
    u = _rules("стрижка через 2 дня в 15:00", "ru")
    assert (u.date, u.time) == (dt.date(2026, 12, 3), dt.time(15))
    u = _rules("в 2 дня завтра", "ru")
    assert (u.date, u.time) == (dt.date(2026, 12, 2), dt.time(14))


def test_a_day_refused_is_not_the_day_meant() -> None:
    assert _rules("не завтра, а в пятницу", "ru").date == dt.date(2026, 12, 4)
    assert _rules("amanhã não dá, pode ser sexta?", "pt").date == dt.date(2026, 12, 4)
    assert _rules("can't do tomorrow, friday?", "en").date == dt.date(2026, 12, 4)
    assert _rules("cant make it tomorrow", "en").date == dt.date(2026, 12, 2)


def test_a_date_in_another_of_the_company_languages_is_still_read() -> None:
    """Too short to tell the language ("5 dezembro" has no word of ours): the company's other
    languages are tried for the date before giving up."""
    ctx = dataclasses.replace(context("en"), languages=("en", "pt"))
    u = understand_rules("5 dezembro", ctx)
    assert (u.language, u.date) == ("en", dt.date(2026, 12, 5))
    assert understand_rules("10 декабря", dataclasses.replace(ctx, languages=("en", "ru"))).date == dt.date(
        2026, 12, 10
    )


def test_random_mixtures_of_tricky_pieces_never_raise() -> None:
    """Impossible dates and times, huge offsets, codes, ordinals, control characters, glued at random."""
    import random

    pieces = (
        "завтра в 14:00 14h 15h30 9утра às 2pm 31.02 29/02 00:00 24:00 99 ABC234 31st dia 31 30 февраля "
        "полтретьего half past 13 quarter to 0 0 e meia 12 e 99 через 0 дней in 99999 days next week sábado "
        "🙂 \u202e 0 -1 1.1.1 12/12/12 31/12/9999 32.13 в 0 at 0 noon ёЁ 1st третий вторая a segunda #9 "
        "option 0 вариант 7"
    ).split(" ")
    rnd = random.Random(7)
    base = context("ru")
    offered = tuple(dt.datetime(2026, 12, 2, h, tzinfo=base.now.tzinfo) for h in (15, 16))
    for _ in range(400):
        text = " ".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 8)))
        ctx = dataclasses.replace(
            context(rnd.choice(LANGUAGES)),
            pending=rnd.choice([None, *Slot]),
            offered=offered if rnd.random() < 0.5 else (),
        )
        assert isinstance(understand_rules(text, ctx).intent, Intent)


def test_a_code_of_letters_typed_in_lower_case_counts_as_the_answer_to_what_is_your_code() -> None:
    assert _rules("cancel kmnpqr").code is None  # could be a word
    assert _rules("cancel").code is None and _rules("cancel", pending="code").code is None
    u = _rules("kmnpqr", pending="code", conversation_intent="cancel")
    assert (u.intent, u.code) == (Intent.CANCEL, "KMNPQR")
    assert _rules("please", pending="code").code == "PLEASE"  # asked for a code, a lone 6-letter word is one
    assert _rules("please help", pending="code").code is None


def test_a_goodbye_that_names_a_day_is_no_request() -> None:
    for text, lang in (
        ("спасибо, до завтра!", "ru"),
        ("obrigada, até amanhã!", "pt"),
        ("thanks, see you tomorrow", "en"),
    ):
        u = _rules(text, lang)
        assert (u.intent, u.date) == (Intent.OTHER, None)
    assert _rules("thanks! can I book a haircut tomorrow?").intent is Intent.BOOKING
    assert _rules("👋").intent is Intent.GREETING
    assert _rules("ok, I'll write later").intent is Intent.OTHER
    # "in half an hour" is a time from now, not a day
    assert _rules("running late, can we push it back half an hour?").date is None
