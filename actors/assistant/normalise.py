"""Text as customers type it on a phone, made comparable: case, accents, emoji, abbreviations."""

from __future__ import annotations

import functools
import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Cyrillic to Latin, enough to compare a staff member's name written in either script.
_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
        "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
        "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh",
        "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    }
)  # fmt: skip


def clean(text: str) -> str:
    """Lower-case, emoji and other symbols turned into spaces, whitespace collapsed.

    Keeps the punctuation that carries dates and times (":", ".", "/", "-").
    """
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if cat.startswith("S") or cat in ("Cc", "Cf", "Co", "Cs") or ch in '!?,;()"«»*':
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).replace("’", "'").split())


def fold(text: str) -> str:
    """Accents removed ("amanhã" == "amanha", "coloração" == "coloracao"), "ё" == "е"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


@functools.lru_cache(maxsize=4096)
def words(text: str) -> tuple[str, ...]:
    """The words of already-cleaned text, folded: what keywords and names are compared with.

    Cached: one message is split by several readers (language, intent, service, staff, day part).
    """
    return tuple(_WORD.findall(fold(text)))


def translit(word: str) -> str:
    """A folded word in Latin letters, so "анна" and "anna" compare equal."""
    return word.translate(_TRANSLIT)


def expand(text: str, table: dict[str, str]) -> str:
    """Replace whole words by their long form ("tmrw" -> "tomorrow", "hj" -> "hoje")."""
    if not table:
        return text
    pattern = re.compile(
        r"(?<![\w])(" + "|".join(map(re.escape, sorted(table, key=len, reverse=True))) + r")(?![\w])"
    )
    return pattern.sub(lambda m: table[m.group(1)], text)


def distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance, giving up (returning limit + 1) past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


@functools.lru_cache(maxsize=65536)
def close(word: str, target: str) -> bool:
    """The same word give or take a typo: exact below 5 letters, one edit up to 8, two beyond; from
    5 letters on, any longer word that starts with it (a diminutive or a case ending)."""
    limit = 0 if len(target) < 5 else 1 if len(target) < 9 else 2
    if word == target or (len(target) >= 5 and word.startswith(target)):
        return True  # "маникюрчик", "стрижками": a longer form of the word is the word
    if limit == 0 or abs(len(word) - len(target)) > limit:
        return False
    if len(set(word).symmetric_difference(target)) > 2 * limit:
        return False  # each edit changes at most two letters of the alphabet used: cheap no
    return distance(word, target, limit) <= limit
