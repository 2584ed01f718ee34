"""Finding the company's services and staff in a message, tolerant of case, accents and typos."""

from __future__ import annotations

from wafleet.actors.assistant.normalise import close, translit, words
from wafleet.actors.assistant.understanding import ResourceInfo, ServiceInfo


def _phrase_at(tokens: list[str], phrase: list[str], start: int) -> bool:
    if start + len(phrase) > len(tokens):
        return False
    return all(close(tokens[start + i], p) for i, p in enumerate(phrase))


def find_service(text: str, services: tuple[ServiceInfo, ...]) -> str | None:
    """The id of the service the message names (its name or an alias), the longest match winning.

    Inflected and misspelt forms count ("стрижку", "маникур", "manicuri"): each word of the name
    may be off by one edit (two for long words), short words must match exactly.
    """
    tokens = words(text)
    best: tuple[int, str] | None = None
    for service in services:
        for name in (service.name, service.id, *service.aliases):
            phrase = words(name)
            if not phrase:
                continue
            if any(_phrase_at(tokens, phrase, i) for i in range(len(tokens))):
                size = sum(len(p) for p in phrase)
                if best is None or size > best[0]:
                    best = (size, service.id)
    return best[1] if best else None


def _name_matches(word: str, name: str) -> bool:
    """A staff name in any script and any case ending: "Анне", "марии", "Maria" all find Maria."""
    word, name = translit(word), translit(name)
    if word == name:
        return True
    stem = name[:-1] if len(name) > 3 else name
    return len(stem) >= 3 and word.startswith(stem) and len(word) - len(name) <= 2


def find_resource(text: str, resources: tuple[ResourceInfo, ...]) -> str | None:
    """The id of the staff member (or chair) the message names by its first name, if any."""
    tokens = words(text)
    for resource in resources:
        name = words(resource.name)
        if name and any(_name_matches(token, name[0]) for token in tokens):
            return resource.id
    return None
