"""Dates and times in a customer's message, relative to now in the company's timezone.

Times are read here, with patterns for the ways people type them ("14h", "15h30", "9 утра",
"7 вечера", "в 2 часа дня", "às 14", "2pm", "14 30"), because the date parser misreads them
("14h" becomes "in 14 hours"). What is left goes to dateparser with the customer's language,
day-first order for ru/pt and future dates preferred. Numeric dates ("10.12", "3/12") and a bare
day of the month ("the 10th", "dia 10") are read here too: dateparser takes "10.12" for a time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import dateparser
from dateparser.search import search_dates

from wafleet.actors.assistant.lexicon import AFTERNOON, MORNING, RELATIVE_OFFSET
from wafleet.actors.assistant.normalise import fold, words

# Bare hours up to this one, said without a day part, are afternoon hours: "в 2", "at 3", "às 5"
# mean 14:00, 15:00, 17:00 when a business takes appointments.
LAST_AFTERNOON_GUESS = 7

_DAY_PART = (
    r"утра|дня|вечера|ночи|da manh[ãa]|de manh[ãa]|da tarde|de tarde|da noite|de noite"
    r"|in the morning|in the afternoon|in the evening|at night|a\.?m\.?|p\.?m\.?"
)
# Tried in this order; the first that matches gives the time.
_TIME_PATTERNS = (
    # 9 утра, 2 часа дня, 7 da noite, 2 in the afternoon, 2pm, 3:30pm
    re.compile(
        r"(?<![\d:./])(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?:h|ч|час(?:а|ов)?)?\s*(?P<part>"
        + _DAY_PART
        + r")(?![\w])"
    ),
    re.compile(r"(?P<noon>meio[\s-]?dia|noon|midday|полдень|полдня|12 дня)"),
    re.compile(r"(?<![\d:./])(?P<h>\d{1,2}):(?P<m>\d{2})(?![\d:])"),
    # 14.30 (but "10.12" is a day-first date, left to find_date)
    re.compile(r"(?<![\d:./])(?P<h>\d{1,2})\.(?P<dotted>\d{2})(?![\d.])"),
    # 14h, 15h30, 14ч, в 2 часа
    re.compile(r"(?<![\d:./])(?P<h>\d{1,2})\s?(?:h|ч|час(?:а|ов)?)\s?(?P<m>\d{2})?(?![\w])"),
    # 14 30
    re.compile(r"(?<![\d:./])(?P<h>[01]?\d|2[0-3])\s(?P<m>[0-5]\d)(?![\d:./])"),
    # в 16, к 11, at 2, às 14
    re.compile(
        r"(?:^|(?<=\s))(?:в|во|к|на|около|часа в|at|@|around|by|about|às|as|ao|pelas|umas|depois das)\s+"
        r"(?P<h>\d{1,2})(?![\d:./]|\s*(?:st|nd|rd|th|го|числа|de|of)\b)(?!\w)"
    ),
)
_MONTHS = (
    r"янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек|jan|fev|feb|mar|abr|apr|mai|may|jun|jul|ago|aug|set|sep"
    r"|out|oct|nov|dez|dec"
)
_NUMERIC_DATE = re.compile(r"(?<![\d:.])(\d{1,2})[./-](\d{1,2})(?:[./-](\d{4}|\d{2}))?(?![\d:])")
_DAY_OF_MONTH = re.compile(
    r"(?:\bthe\s+(?P<a>\d{1,2})(?:st|nd|rd|th)?\b|\b(?P<b>\d{1,2})(?:st|nd|rd|th)\b|\bdia\s+(?P<c>\d{1,2})\b"
    r"|\b(?P<d>\d{1,2})(?:-?го|\s+числа)\b)(?!\s*(?:of\s+|de\s+)?(?:" + _MONTHS + r"))"
)
_PT_DAY_OF = re.compile(r"\b(\d{1,2})\s+de\s+(?=(?:" + _MONTHS + r"))")
_PT_DAY = re.compile(r"\bdia\s+(?=\d)")
_TRAILING_NUMBER = re.compile(r"\s+\d{1,2}$")
_LEFTOVER_HOUR = re.compile(r"(?<![\d:./])(\d{1,2})(?![\d:./]|\s*(?:st|nd|rd|th|го|числа)\b)(?!\w)")


@dataclass(frozen=True)
class When:
    date: dt.date | None = None
    time: dt.time | None = None


def _day_half(text: str) -> str | None:
    """ "am" or "pm" when the message says which half of the day it means, anywhere in it."""
    folded = " " + " ".join(words(text)) + " "
    if any(f" {fold(w)} " in folded for w in MORNING):
        return "am"
    if any(f" {fold(w)} " in folded for w in AFTERNOON):
        return "pm"
    return None


def _hour(h: int, part: str | None, half: str | None) -> int:
    if part:
        p = fold(part)
        if p.startswith(("утр", "da manh", "de manh", "in the morning")) or p.replace(".", "") == "am":
            return 0 if h == 12 else h
        return h + 12 if h < 12 else h
    if half == "am":
        return h
    if half == "pm":
        return h + 12 if h < 12 else h
    return h + 12 if 1 <= h <= LAST_AFTERNOON_GUESS else h


def find_time(text: str) -> tuple[dt.time | None, str]:
    """The time the message gives, and the message without it (for the date parser)."""
    half = _day_half(text)
    for pattern in _TIME_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            if groups.get("noon"):
                value = dt.time(12, 0)
            else:
                h, m = int(groups["h"]), int(groups.get("m") or groups.get("dotted") or 0)
                if groups.get("dotted") and 1 <= m <= 12 and 1 <= h <= 31:
                    continue
                h = _hour(h, groups.get("part"), half)
                if not (0 <= h <= 23 and 0 <= m <= 59):
                    continue
                value = dt.time(h, m)
            return value, text[: match.start()] + " " + text[match.end() :]
    return None, text


def leftover_hour(text: str) -> dt.time | None:
    """A bare number left once the date is gone ("tomorrow 12", "16" after "what time?")."""
    match = _LEFTOVER_HOUR.search(text)
    if not match:
        return None
    h = int(match.group(1))
    if not 0 <= h <= 23:
        return None
    return dt.time(_hour(h, None, _day_half(text)), 0)


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


def find_date(text: str, language: str, now: dt.datetime, day_first: bool) -> tuple[dt.date | None, str]:
    """The date the message gives (on or after today), and the message without it."""
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
    prepared = _PT_DAY.sub("", _PT_DAY_OF.sub(r"\1 ", text)) if language == "pt" else text
    settings = {
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "future",
        "RETURN_TIME_AS_PERIOD": True,
        "DATE_ORDER": "DMY" if day_first else "MDY",
    }
    for fragment, _value in search_dates(prepared, languages=[language], settings=settings) or ():
        if len(re.sub(r"[^\w]", "", fragment)) <= 2:
            continue  # "we" is not Wednesday, "в" is not a date
        parser = dateparser.DateDataParser(languages=[language], settings=settings)
        data = parser.get_date_data(fragment)
        if data.date_obj is None or data.period not in ("day", "time", "part_of_day", "week"):
            continue  # a month or a year alone is not an appointment's day
        if data.period == "week" and not _is_offset(prepared, fragment):
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


def _is_offset(text: str, fragment: str) -> bool:
    before = " ".join(words(text[: text.find(fragment) + len(fragment)]))
    return any(f" {offset} " in f" {before} " for offset in RELATIVE_OFFSET)


def warm_up(languages: tuple[str, ...]) -> None:
    """Load the parser's language data now: the first parse in a language costs ~200 ms."""
    now = dt.datetime(2026, 1, 1, 12, 0)
    for language in languages:
        find_date("1 2", language, now, True)
