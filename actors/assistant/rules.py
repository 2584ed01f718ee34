"""The rule-based understanding: works offline, and answers whenever the model cannot.

Keywords per language give the intent; when.py reads dates and times; catalogue.py finds services
and staff; a booking code is found by its pattern. A bare answer ("завтра", "16h", "the second
one") fills the question the conversation asked last (ctx.pending).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from wafleet.actors.assistant import catalogue, language, lexicon, times, when
from wafleet.actors.assistant.normalise import clean, expand, fold, words
from wafleet.actors.assistant.understanding import Intent, Slot, TurnContext, Understanding
from wafleet.storage.bookings import CODE_ALPHABET

_CODE = re.compile(rf"(?<![\w])([{CODE_ALPHABET}{CODE_ALPHABET.lower()}]{{6}})(?![\w])")
# Intents a bare answer can continue; a greeting or a question does not carry over.
_TASKS = (Intent.BOOKING, Intent.AVAILABILITY, Intent.CANCEL, Intent.RESCHEDULE)
_NEGATIONS = frozenset(fold(word) for word in lexicon.NEGATIONS)
_ORDINALS = {fold(word): index for word, index in lexicon.ORDINALS.items()}
_CHOICE_NUMBER = re.compile(r"(?:вариант|номер|opcao|opção|option|number|#|№)\s*(\d)\b|^\s*(\d)\s*$")


@dataclass(frozen=True)
class When:
    """The day and the time a message names, each when it does."""

    date: dt.date | None = None
    time: dt.time | None = None


def _squeeze(word: str) -> str:
    """Repeated letters once: "oii", "heyy", "приветтт" are typed for warmth, not spelling."""
    return re.sub(r"(.)\1+", r"\1", word)


# A phrase as its words; each word: (folded, squeezed, is_prefix).
_Phrase = tuple[tuple[str, str, bool], ...]


@dataclass(frozen=True)
class _IntentIndex:
    """lexicon.INTENTS of one language, folded once and indexed by each phrase's first word."""

    by_word: dict[str, list[tuple[int, _Phrase]]]  # first word (squeezed) -> (tier, phrase)
    by_prefix: list[tuple[str, int, _Phrase]]  # first word is a prefix ("отмен*")
    intents: tuple[Intent, ...]  # tier -> intent


@functools.cache
def _intent_index(lang: str) -> _IntentIndex:
    by_word: dict[str, list[tuple[int, _Phrase]]] = {}
    by_prefix: list[tuple[str, int, _Phrase]] = []
    intents = []
    for tier, (intent, phrases) in enumerate(lexicon.INTENTS.get(lang, ())):
        intents.append(intent)
        for phrase in phrases:
            parts = []
            for part in fold(phrase).replace("'", "").split():
                prefix = part.endswith("*")
                part = part.rstrip("*")
                parts.append((part, _squeeze(part), prefix))
            compiled = tuple(parts)
            if compiled[0][2]:
                by_prefix.append((compiled[0][0], tier, compiled))
            else:
                by_word.setdefault(compiled[0][1], []).append((tier, compiled))
    return _IntentIndex(by_word, by_prefix, tuple(intents))


def _phrase_at(tokens: list[tuple[str, str]], start: int, phrase: _Phrase) -> bool:
    if start + len(phrase) > len(tokens):
        return False
    for (token, squeezed), (part, part_squeezed, prefix) in zip(tokens[start:], phrase, strict=False):
        if not (token.startswith(part) if prefix else token == part or squeezed == part_squeezed):
            return False
    return True


def find_intent(text: str, lang: str, languages: tuple[str, ...]) -> Intent | None:
    """The intent the message's keywords say, in its language first, then the company's others."""
    tokens = [(token, _squeeze(token)) for token in words(text.replace("'", ""))]
    for code in (lang, *(lg for lg in languages if lg != lang)):
        index = _intent_index(code)
        best: int | None = None
        for i, (token, squeezed) in enumerate(tokens):
            for tier, phrase in index.by_word.get(squeezed, ()):
                if (best is None or tier < best) and _phrase_at(tokens, i, phrase):
                    best = tier
            for prefix, tier, phrase in index.by_prefix:
                if (
                    (best is None or tier < best)
                    and token.startswith(prefix)
                    and _phrase_at(tokens, i, phrase)
                ):
                    best = tier
        if best is not None:
            return index.intents[best]
    return None


def find_code(text: str, sure: bool, asked: bool = False) -> str | None:
    """A booking code: 6 characters of the code alphabet, any case.

    A lower-case word like "please", "amanha" or "cancel" also fits the alphabet, so a code without
    a digit counts only when typed in capitals while talking about a booking (`sure`), or when it
    is the whole answer to "what is your code?" (`asked`).
    """
    if asked and _CODE.fullmatch(text.strip(" .!")):
        return text.strip(" .!").upper()  # the whole answer is one code: "kmnpqr" to "your code?"
    for match in _CODE.finditer(text):
        token = match.group(1)
        if any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
            return token.upper()
        if sure and token.isupper() and token.isalpha():
            return token
    return None


def find_choice(text: str, ctx: TurnContext, found: When) -> dt.datetime | None:
    """Which of the offered alternatives the customer picked: by position or by its time."""
    if not ctx.offered:
        return None
    for token in words(text):
        if token in _ORDINALS:
            index = _ORDINALS[token]
            if -len(ctx.offered) <= index < len(ctx.offered):
                return ctx.offered[index]
    number = _CHOICE_NUMBER.search(text)
    if number:
        index = int(number.group(1) or number.group(2)) - 1
        if 0 <= index < len(ctx.offered):
            return ctx.offered[index]
    if found.time is None:
        return None
    zone = ZoneInfo(ctx.timezone)
    for offered in ctx.offered:
        local = offered.astimezone(zone)
        same_time = (local.hour % 12, local.minute) == (found.time.hour % 12, found.time.minute)
        if same_time and (found.date is None or found.date == local.date()):
            return offered
    return None


def _emoji_words(text: str) -> str:
    for emoji, word in lexicon.EMOJI_WORDS.items():
        text = text.replace(emoji, word)
    return text


def _day_first(lang: str, timezone: str) -> bool:
    """Numeric dates are day-first everywhere but in English written in the Americas (12/10 = Dec 10)."""
    return lang != "en" or not timezone.startswith("America/")


def _when(text: str, lang: str, ctx: TurnContext, last_date: bool) -> When:
    """The date and time of the message; with `last_date` the last date and time it names.

    "from friday to saturday", "с 15:00 на 17:00": a reschedule names the old first, the new last;
    "не завтра, а в пятницу": a refusal names the day to avoid first.
    """
    time, rest = times.find_time(text, last=last_date)
    date = None
    for code in (lang, *(other for other in ctx.languages if other != lang)):
        day_first = _day_first(code, ctx.timezone)
        date, rest = when.find_date(rest, code, ctx.now, day_first, parser=code == lang)
        if date is not None:
            break  # a message too short to tell its language may name the day in another one
    while last_date and date is not None:
        later, later_rest = when.find_date(rest, code, ctx.now, day_first)
        if later is None:
            break
        date, rest = later, later_rest
    if time is None and (date is not None or ctx.pending in (Slot.TIME, Slot.CHOICE)):
        time = times.leftover_hour(rest)
    return When(date=date, time=time)


def understand_rules(text: str, ctx: TurnContext) -> Understanding:
    """Understand one customer message with keywords and patterns; never raises on any text."""
    lang = language.detect(text, ctx.languages, ctx.language)
    cleaned = expand(clean(_emoji_words(text)), lexicon.ABBREVIATIONS.get(lang, {}))
    keyword = find_intent(cleaned, lang, ctx.languages)
    service = catalogue.find_service(cleaned, ctx.services)
    resource = catalogue.find_resource(cleaned, ctx.resources)
    choice = None
    if ctx.pending is Slot.CHOICE:
        choice = find_choice(cleaned, ctx, When())
    last = keyword is Intent.RESCHEDULE or not _NEGATIONS.isdisjoint(words(cleaned.replace("'", "")))
    found = When() if choice else _when(cleaned, lang, ctx, last)
    if ctx.pending is Slot.CHOICE and choice is None:
        choice = find_choice(cleaned, ctx, found)
    if choice is not None:
        local = choice.astimezone(ZoneInfo(ctx.timezone))
        found = When(date=local.date(), time=local.time().replace(second=0, microsecond=0, tzinfo=None))
    asked = ctx.pending is Slot.CODE and keyword is None  # "cancel" alone is not the code CANCEL
    sure = ctx.pending is Slot.CODE or keyword in (Intent.CANCEL, Intent.RESCHEDULE)
    code = find_code(text, sure=sure, asked=asked)

    continuing = ctx.intent if ctx.intent in _TASKS else None
    has_slots = any(v is not None for v in (service, resource, found.date, found.time, choice))
    if keyword is Intent.OTHER:  # thanks, see you tomorrow: the day named is no request
        intent, service, resource, found, choice, code = Intent.OTHER, None, None, When(), None, None
        has_slots = False
    elif keyword is not None and keyword is not Intent.GREETING:
        intent = keyword
    elif code is not None and (ctx.pending is Slot.CODE or continuing in (Intent.CANCEL, Intent.RESCHEDULE)):
        intent = continuing or Intent.CANCEL
    elif has_slots:
        intent = continuing or Intent.BOOKING
    else:
        intent = keyword or Intent.OTHER
    return Understanding(
        intent=intent,
        language=lang,
        service=service,
        date=found.date,
        time=found.time,
        resource=resource,
        code=code,
        choice=choice,
        confidence=1.0 if keyword is not None or has_slots or code else 0.5,
    )


def warm_up(languages: tuple[str, ...]) -> None:
    """Load the date parser's data and the keyword tables of `languages` (at node start): the first
    message in a language would otherwise wait ~200 ms for them."""
    when.warm_up(languages)
    for lang in languages:
        _intent_index(lang)
