"""Which of the company's languages a customer wrote in."""

from __future__ import annotations

import re

from wafleet.actors.assistant.lexicon import LANGUAGE_MARKERS
from wafleet.actors.assistant.normalise import words

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_PORTUGUESE_LETTERS = re.compile(r"[ãõçâêôáéíóúà]", re.IGNORECASE)


def detect(text: str, languages: tuple[str, ...], current: str | None = None) -> str:
    """The language of `text` among `languages`.

    Cyrillic means Russian; otherwise Portuguese and English are told apart by their accents and
    common words. A message without evidence ("16:00", "ABC234", "ok") keeps the conversation's
    language, else the company's default (the first of `languages`).
    """
    fallback = current if current in languages else languages[0]
    scores = {"ru": 0, "pt": 0, "en": 0}
    if _CYRILLIC.search(text):
        scores["ru"] = 10
    scores["pt"] += 2 * len(_PORTUGUESE_LETTERS.findall(text))
    for word in words(text):
        for lang, markers in LANGUAGE_MARKERS.items():
            if word in markers:
                scores[lang] += 1
    candidates = [(score, lang) for lang, score in scores.items() if lang in languages and score > 0]
    if not candidates:
        return fallback
    best = max(score for score, _ in candidates)
    winners = [lang for score, lang in candidates if score == best]
    return fallback if fallback in winners else winners[0]
