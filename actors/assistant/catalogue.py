"""Finding the company's services and staff in a message, tolerant of case, accents and typos."""

from __future__ import annotations

import functools
import re

from wafleet.actors.assistant.normalise import close, translit, words
from wafleet.actors.assistant.understanding import ResourceInfo, ServiceInfo

_CYRILLIC = re.compile(r"[а-яё]")


def _phrase_at(tokens: tuple[str, ...], phrase: tuple[str, ...], start: int) -> bool:
    if start + len(phrase) > len(tokens):
        return False
    return all(close(tokens[start + i], p) for i, p in enumerate(phrase))


@functools.lru_cache(maxsize=1024)
def _service_phrases(services: tuple[ServiceInfo, ...]) -> tuple[tuple[str, tuple[str, ...], int], ...]:
    """(service id, name's words, size) for each name and alias, folded once per catalogue."""
    phrases = []
    for service in services:
        for name in (service.name, service.id, *service.aliases):
            phrase = words(name)
            if phrase:
                phrases.append((service.id, phrase, sum(len(p) for p in phrase)))
    return tuple(phrases)


def find_service(text: str, services: tuple[ServiceInfo, ...]) -> str | None:
    """The id of the service the message names (its name or an alias): the first one it names
    ("маникюр и стрижку" is a manicure), the longest name where two start at the same word.

    Inflected and misspelt forms count ("стрижку", "маникур", "manicuri"): each word of the name
    may be off by one edit (two for long words), short words must match exactly.
    """
    tokens = words(text)
    where: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        where.setdefault(token, []).append(i)
    best: tuple[int, int, str] | None = None  # (position, -size, id): the first named, the longest there
    for service_id, phrase, size in _service_phrases(services):
        starts = sorted(i for token, places in where.items() if close(token, phrase[0]) for i in places)
        start = next((i for i in starts if _phrase_at(tokens, phrase, i)), None)
        if start is not None and (best is None or (start, -size) < best[:2]):
            best = (start, -size, service_id)
    return best[2] if best else None


def _name_matches(word: str, name: str) -> bool:
    """A staff name in any case; in Russian in any script and case ending ("Анне", "марии" find
    Anna, Maria). Latin-script names do not decline: "marca" is not "Mari"."""
    if word == name:
        return True
    if not _CYRILLIC.search(word):
        return False
    word, name = translit(word), translit(name)
    stem = name[:-1] if len(name) > 3 else name
    return word == name or (word.startswith(stem) and len(word) - len(name) <= 2)


def find_resource(text: str, resources: tuple[ResourceInfo, ...]) -> str | None:
    """The id of the staff member (or chair) the message names by its first name or an alias."""
    tokens = words(text)
    for resource in resources:
        for name in (resource.name, *resource.aliases):
            first = words(name)[:1]
            if first and any(_name_matches(token, first[0]) for token in tokens):
                return resource.id
    return None
