"""Every refusal the HTTP layer turns into a status, raised from inside actors or the tree.

One place, so a newcomer sees the whole list, and ``wafleet.http.api`` maps each class to a
status with a small table. Anything else that escapes a route is a bug (a 500, logged), never a
4xx in disguise.
"""

from __future__ import annotations

import math


class Refusal(Exception):
    """Base of every refusal: the message says what is wrong, in the user's terms."""


class NotFound(Refusal):
    """The company (or what was asked about) does not exist: HTTP 404."""


class Conflict(Refusal):
    """Wrong state for that command: HTTP 409 ``wrong_state``."""


class LinkConflict(Conflict):
    """The link cannot do that now (nothing to scan, not connected): HTTP 409."""


class AlreadyExists(Conflict):
    """A unique key clashed: HTTP 409 ``exists``, naming the key and its value."""

    def __init__(self, key: str, value: str, message: str | None = None) -> None:
        super().__init__(message or f"a company with {key} {value!r} already exists")
        self.key = key
        self.value = value


class Banned(Conflict):
    """WhatsApp banned the number until ``until`` (ISO text): HTTP 409 ``banned``."""

    def __init__(self, until: str, comes_back: bool = True) -> None:
        then = "the session comes back by itself then" if comes_back else "start it again after that"
        super().__init__(f"WhatsApp banned this number until {until}: {then}")
        self.until = until


class WrongCode(Refusal):
    """The sandbox's phone entered a code that is not the pending pairing code: HTTP 400."""


class RateLimited(Refusal):
    """A limit protects the company's number (HTTP 429 with Retry-After)."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class Booting(Refusal):
    """The node is still loading its companies (HTTP 503 with Retry-After): the company may
    exist and simply not be loaded yet."""


class AtCapacity(Refusal):
    """This node runs as many sessions as it may: HTTP 503 with Retry-After."""


class Unavailable(Refusal):
    """The Fleet (or the session) is restarting: HTTP 503 with a short Retry-After."""


__all__ = [
    "AlreadyExists",
    "AtCapacity",
    "Banned",
    "Booting",
    "Conflict",
    "LinkConflict",
    "NotFound",
    "RateLimited",
    "Refusal",
    "Unavailable",
    "WrongCode",
]
