"""Dates in a customer's message, on or after today in the company's timezone.

Numeric dates ("10.12", "3/12": day-first but in English written in the Americas), a bare day of the
month ("the 10th", "dia 10", "9е число"), and the common words (today, завтра, sexta, "7 декабря")
are read here with the date parser's own vocabulary; the rest goes to dateparser itself with the
customer's language, future dates preferred, relative to now in the company's timezone. Times are
read before, by times.py, and taken out of the text: the parser misreads them.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

import dateparser
from dateparser.languages.loader import default_loader
from dateparser.search import search_dates

from wafleet.actors.assistant.lexicon import (
    MONTH_STEMS,
    NEXT_WEEK,
    NOT_WEEKDAYS,
    RELATIVE_DAYS,
    RELATIVE_OFFSET,
)
from wafleet.actors.assistant.normalise import fold, words

_NUMERIC_DATE = re.compile(r"(?<![\d:.])(\d{1,2})[./-](\d{1,2})(?:[./-](\d{4}|\d{2}))?(?![\d:])")
_DAY_OF_MONTH = re.compile(
    r"(?:\bthe\s+(?P<a>\d{1,2})(?:st|nd|rd|th)?\b|\b(?P<b>\d{1,2})(?:st|nd|rd|th)\b|\bdia\s+(?P<c>\d{1,2})\b"
    r"|\b(?P<d>\d{1,2})(?:-?(?:го|е|ое))?\s+числ[оа]\b|\b(?P<e>\d{1,2})-?го\b)(?!\s*(?:of\s+|de\s+)?(?:"
    + MONTH_STEMS
    + r"))"
)
_PT_DAY_OF = re.compile(r"\b(\d{1,2})\s+de\s+(?=(?:" + MONTH_STEMS + r"))")
_PT_DAY = re.compile(r"\bdia\s+(?=\d)")
_SPAN_OF_HOURS = re.compile(r"(?i)\b(?:hours?|hrs?|minutes?|mins?|час\w*|минут\w*|horas?|minutos?)\b")
_TRAILING_NUMBER = re.compile(r"\s+\d{1,2}$")


def _future(today: dt.date, month: int, day: int, year: int | None) -> dt.date | None:
    try:
        if year is not None:
            return dt.date(year + 2000 if year < 100 else year, month, day)
        candidate = dt.date(today.year, month, day)
        return candidate if candidate >= today else dt.date(today.year + 1, month, day)
    except ValueError:
        return None


def _next_day_of_month(today: dt.date, day: int) -> dt.date | None:
    for offset in range(0, 13):
        month = (today.month - 1 + offset) % 12 + 1
        year = today.year + (today.month - 1 + offset) // 12
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def find_date(
    text: str, language: str, now: dt.datetime, day_first: bool, parser: bool = True
) -> tuple[dt.date | None, str]:
    """The date the message gives (on or after today), and the message without it.

    Without `parser`, only the common forms read here (no dateparser: for a second language).
    """
    today = now.date()
    match = _NUMERIC_DATE.search(text)
    if match:
        a, b = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else None
        day, month = (a, b) if day_first else (b, a)
        found = _future(today, month, day, year) or _future(today, day, month, year)
        if found:
            return found, text[: match.start()] + " " + text[match.end() :]
    match = _DAY_OF_MONTH.search(text)
    if match:
        day = int(next(g for g in match.groups() if g))
        found = _next_day_of_month(today, day)
        if found:
            return found, text[: match.start()] + " " + text[match.end() :]
    quick = _quick_date(text, language, today)
    if quick or not parser:
        return quick or (None, text)
    prepared = _PT_DAY.sub("", _PT_DAY_OF.sub(r"\1 ", text)) if language == "pt" else text
    settings = {
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "future",
        "RETURN_TIME_AS_PERIOD": True,
        "DATE_ORDER": "DMY" if day_first else "MDY",
    }
    found_any = (
        (fragment, window)
        for window in _windows(prepared, language)
        for fragment, _value in search_dates(window, languages=[language], settings=settings) or ()
    )
    for fragment, window in found_any:
        if _SPAN_OF_HOURS.search(fragment):
            continue  # "in half an hour", "через час": a time from now, not a day
        if len(re.sub(r"[^\w]", "", fragment)) <= 2:
            continue  # "we" is not Wednesday, "в" is not a date
        parser = dateparser.DateDataParser(languages=[language], settings=settings)
        data = parser.get_date_data(fragment)
        if data.date_obj is None or data.period not in ("day", "time", "part_of_day", "week"):
            continue  # a month or a year alone is not an appointment's day
        if data.period == "time" and not _date_words(language).intersection(words(fragment)):
            continue  # a time alone ("на 17:00") is not today's date
        if data.period == "week" and not _is_offset(window, fragment):
            continue  # "next week" names no day; "in a week" does
        found = data.date_obj.date()
        if found < today:
            continue
        trailing = _TRAILING_NUMBER.search(fragment)
        if trailing:  # "tomorrow 12": the 12 is the hour, leave it for leftover_hour
            shorter = parser.get_date_data(fragment[: trailing.start()])
            if shorter.date_obj is not None and shorter.date_obj.date() == found:
                fragment = fragment[: trailing.start()]
        return found, prepared.replace(fragment, " ", 1)
    return None, text


# The date parser reads only the places of a message that may hold a date, a few words around a
# digit or a date word, and only the first few of them: its cost grows with the text (650 ms for
# 4,600 characters of "in 2 days at 5pm"), and a long message must not hold up the whole node.
WINDOW_WORDS = 4
WINDOW_CHARS = 160
MAX_WINDOWS = 3


_NUMBERISH = re.compile(r"^\d{1,4}[^\W\d_]{0,3}$")  # 5, 2026, 5th, 9е, 14h; not a code like ABC234


def _windows(text: str, language: str) -> list[str]:
    """Up to MAX_WINDOWS pieces of `text` around its digits and date words, in order; neighbours
    merge, up to 3 * WINDOW_WORDS words a piece."""
    tokens = list(_TOKEN.finditer(text))
    vocabulary = _date_words(language)
    spans: list[list[int]] = []  # [first token, last token]
    for i, match in enumerate(tokens):
        token = match.group()
        if not (_NUMBERISH.match(token) or fold(token) in vocabulary):
            continue
        first, last = max(0, i - WINDOW_WORDS), min(len(tokens) - 1, i + WINDOW_WORDS)
        if spans and first <= spans[-1][1] and last - spans[-1][0] < 3 * WINDOW_WORDS:
            spans[-1][1] = last
            continue
        if spans and first <= spans[-1][1]:
            first = spans[-1][1] + 1
        if len(spans) == MAX_WINDOWS:
            break
        spans.append([first, last])
    return [
        text[tokens[first].start() : tokens[last].end()][:WINDOW_CHARS]
        for first, last in spans
        if first <= last
    ]


_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")  # fmt: skip
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TOKEN = re.compile(r"[^\W_]+")
_DAY_NUMBER = re.compile(r"^(\d{1,2})(?:st|nd|rd|th|го|e|o|a)?$")


@dataclass(frozen=True)
class _Vocabulary:
    months: dict[str, int]
    weekdays: dict[str, int]
    relative: dict[tuple[str, ...], int]
    next_week: tuple[tuple[str, ...], ...]


@functools.cache
def _vocabulary(language: str) -> _Vocabulary:
    """Month and weekday names and today/tomorrow words of `language`, from the date parser's own
    data (plus lexicon.RELATIVE_DAYS), folded."""
    info = next(default_loader.get_locales(languages=[language])).info
    months = {
        fold(name): n for n, key in enumerate(_MONTH_NAMES, 1) for name in info.get(key, []) if len(name) >= 3
    }
    not_weekdays = set(NOT_WEEKDAYS.get(language, ()))
    weekdays = {
        fold(name): n
        for n, key in enumerate(_WEEKDAY_NAMES)
        for name in info.get(key, [])
        if (len(name) >= 3 or language == "ru") and fold(name) not in not_weekdays
    }
    relative: dict[tuple[str, ...], int] = {}
    for key, names in info.get("relative-type", {}).items():
        match = re.fullmatch(r"in (\d+) day|0 day ago", key)
        if match:
            for name in names:
                relative[tuple(words(name))] = int(match.group(1) or 0)
    for name, days in RELATIVE_DAYS.get(language, {}).items():
        relative[tuple(words(name))] = days
    return _Vocabulary(months, weekdays, relative, tuple(tuple(words(p)) for p in NEXT_WEEK))


def _quick_date(text: str, language: str, today: dt.date) -> tuple[dt.date, str] | None:
    """The common ways to name a day, read without the full parser (which costs ~2 ms a message):
    a relative word (today, завтра, depois de amanhã), a weekday (the next one after today, or in
    next week's when the message says so), a day with a month name ("7 декабря", "dec 5th",
    "12 de dezembro"). The leftmost wins; None leaves the message to the parser."""
    vocab = _vocabulary(language)
    tokens = [(fold(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    words_only = [t for t, _, _ in tokens]
    for i, (token, start, end) in enumerate(tokens):
        for phrase, days in vocab.relative.items():
            if tuple(words_only[i : i + len(phrase)]) == phrase:
                stop = tokens[i + len(phrase) - 1][2]
                return today + dt.timedelta(days=days), text[:start] + " " + text[stop:]
        if token in vocab.months:
            found = _day_with_month(tokens, i, vocab.months[token], today)
            if found:
                first, last = found[1], found[2]
                return found[0], text[: tokens[first][1]] + " " + text[tokens[last][2] :]
        elif token in vocab.weekdays:
            ahead = (vocab.weekdays[token] - today.weekday() - 1) % 7 + 1
            day = today + dt.timedelta(days=ahead)
            joined = " " + " ".join(words_only) + " "
            if any(f" {' '.join(p)} " in joined for p in vocab.next_week):
                monday_next = today + dt.timedelta(days=7 - today.weekday())
                day = monday_next + dt.timedelta(days=vocab.weekdays[token])
            return day, text[:start] + " " + text[end:]
    return None


def _day_with_month(
    tokens: list[tuple[str, int, int]], i: int, month: int, today: dt.date
) -> tuple[dt.date, int, int] | None:
    """A day number before ("7 декабря", "12 de dezembro", "5th of dec") or after ("dec 5") the month."""
    before = i - 1
    if before >= 0 and tokens[before][0] in ("de", "of") and before >= 1:
        before -= 1
    candidates = []
    if before >= 0:
        candidates.append((before, before, i))
    if i + 1 < len(tokens):
        candidates.append((i + 1, i, i + 1))
    for index, first, last in candidates:
        match = _DAY_NUMBER.match(tokens[index][0])
        if match:
            found = _future(today, month, int(match.group(1)), None)
            if found:
                return found, first, last
    return None


@functools.cache
def _date_words(language: str) -> frozenset[str]:
    """The words of the parser's own vocabulary that can carry a date in `language` (month and
    weekday names, today/tomorrow and the like, day/week units), folded; without one of them and
    without a digit a message holds no date the parser could find."""
    info = next(default_loader.get_locales(languages=[language])).info
    skip = {fold(word) for word in info.get("skip", [])}
    found: set[str] = set()
    for key in ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday",
                "saturday", "sunday"):  # fmt: skip
        for name in info.get(key, []):
            found.update(words(name))
    for key in ("day", "week"):
        found.update(w for name in info.get(key, []) for w in words(name) if len(w) >= 3)
    for names in info.get("relative-type", {}).values():
        found.update(w for name in names for w in words(name) if len(w) >= 3 and w not in skip)
    return frozenset(found)


def _is_offset(text: str, fragment: str) -> bool:
    before = " ".join(words(text[: text.find(fragment) + len(fragment)]))
    return any(f" {offset} " in f" {before} " for offset in RELATIVE_OFFSET)


def warm_up(languages: tuple[str, ...]) -> None:
    """Load the parser's language data now: the first parse in a language costs ~200 ms."""
    now = dt.datetime(2026, 1, 1, 12, 0)
    for language in languages:
        _vocabulary(language)
        _date_words(language)
        find_date("через 2 дня in 2 days em 2 dias", language, now, True)
