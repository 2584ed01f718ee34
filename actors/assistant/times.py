"""Times in a customer's message, read with patterns for the ways people type them.

"14h", "15h30", "9 утра", "7 вечера", "в 2 часа дня", "às 14", "2pm", "14 30", "полтретьего",
"half past 2", "14 e 30": the date parser misreads most of them ("14h" becomes "in 14 hours"), so
times are read here first and taken out of the text before the date is looked for.
"""

from __future__ import annotations

import datetime as dt
import re

from wafleet.actors.assistant.lexicon import AFTERNOON, GREETINGS_WITH_DAY_PART, MONTH_STEMS, MORNING
from wafleet.actors.assistant.normalise import fold, words

# Bare hours up to this one, said without a day part, are afternoon hours: "в 2", "at 3", "às 5"
# mean 14:00, 15:00, 17:00 when a business takes appointments.
LAST_AFTERNOON_GUESS = 7

_DAY_PART = (
    r"утра|дня|вечера|ночи|da manh[ãa]|de manh[ãa]|da tarde|de tarde|da noite|de noite"
    r"|in the morning|in the afternoon|in the evening|at night|a\.?m\.?|p\.?m\.?"
)
# "полтретьего" is half past two: the hour before the ordinal.
_RU_ORDINAL_HOURS = {
    "первого": 1, "второго": 2, "третьего": 3, "четвертого": 4, "четвёртого": 4, "пятого": 5, "шестого": 6,
    "седьмого": 7, "восьмого": 8, "девятого": 9, "десятого": 10, "одиннадцатого": 11, "двенадцатого": 12,
}  # fmt: skip
# Tried in this order; the first that matches gives the time.
_TIME_PATTERNS = (
    # полтретьего, половина третьего (2:30)
    re.compile(r"(?<!\w)пол(?:овин[аеуы])?\s*(?P<ord>" + "|".join(_RU_ORDINAL_HOURS) + r")(?!\w)"),
    # half past 2, quarter past 3, quarter to 5
    re.compile(r"(?<!\w)(?:(?P<past>half|quarter)\s+past|(?P<to>quarter)\s+to)\s+(?P<h>\d{1,2})(?![\d:])"),
    # 14 e 30, 2 e meia, 3h e quinze
    re.compile(
        r"(?<![\d:./])(?P<h>\d{1,2})\s*(?:h\s*)?e\s+(?:(?P<meia>meia)|(?P<quinze>quinze)|(?P<m>[0-5]\d))(?!\w)"
    ),
    # 9 утра, 2 часа дня, 7 da noite, 2 in the afternoon, 2pm, 3:30pm (but "через 2 дня" is in two days)
    re.compile(
        r"(?<![\d:./])(?<!через\s)(?<!за\s)(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?:h|ч|час(?:а|ов)?)?\s*(?P<part>"
        + _DAY_PART
        + r")(?![\w])"
    ),
    re.compile(r"(?<!\w)(?P<noon>meio[\s-]?dia|noon|midday|полдень|полдня|12 дня)(?!\w)"),
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
        r"(?P<h>\d{1,2})(?![\d:./]|\s*(?:st|nd|rd|th|го|числа|de|of)\b|\s*(?:" + MONTH_STEMS + r"))(?!\w)"
    ),
)
_LEFTOVER_HOUR = re.compile(r"(?<![\d:./])(\d{1,2})(?![\d:./]|\s*(?:st|nd|rd|th|го|числа)\b)(?!\w)")


def _day_half(text: str) -> str | None:
    """ "am" or "pm" when the message says which half of the day it means, anywhere in it."""
    folded = " " + " ".join(words(text)) + " "
    for greeting in GREETINGS_WITH_DAY_PART:
        folded = folded.replace(f" {fold(greeting)} ", " ")
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


def _spoken(groups: dict[str, str | None]) -> tuple[int, int]:
    """Hour and minute of a match of _TIME_PATTERNS, before the half of the day is applied."""
    if groups.get("ord"):
        return _RU_ORDINAL_HOURS[groups["ord"]] - 1 or 12, 30
    h = int(groups["h"] or 0)
    if groups.get("to"):
        return (h - 1) % 12 or 12, 45
    if groups.get("past") or groups.get("quinze"):
        return h, 30 if groups.get("past") == "half" else 15
    if groups.get("meia"):
        return h, 30
    return h, int(groups.get("m") or groups.get("dotted") or 0)


def find_time(text: str, last: bool = False) -> tuple[dt.time | None, str]:
    """The time the message gives, and the message without it (for the date parser).

    With `last`, the last of several: "с 15:00 на 17:00", "from 3pm to 5pm" move to the second.
    """
    found, rest = _first_time(text)
    while last and found is not None:
        later, later_rest = _first_time(rest)
        if later is None:
            break
        found, rest = later, later_rest
    return found, rest


def _first_time(text: str) -> tuple[dt.time | None, str]:
    half = _day_half(text)
    for pattern in _TIME_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            if groups.get("noon"):
                value = dt.time(12, 0)
            else:
                h, m = _spoken(groups)
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
