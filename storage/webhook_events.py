"""Which journal event is which webhook event, and what its ``data`` says: one table.

A new event type (the assistant's ``booking.*``) is one more :class:`Rule`; companies can
subscribe to it as soon as it is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Payload = Callable[[str | None, str | None, dict[str, Any]], dict[str, Any]]


def _always(state: str | None, reason: str | None) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """A journal event of ``kind`` (when ``when`` holds) is the webhook event ``type``."""

    kind: str
    type: str
    payload: Payload
    when: Callable[[str | None, str | None], bool] = _always


RULES: tuple[Rule, ...] = (
    Rule("status", "session.status", lambda s, r, d: {"status": s, "reason": r, **d}),
    # A session enters ``pairing`` only when a code is issued; later codes are pairing_code events.
    # The code itself is never in a webhook: it is a one-time login secret, alive 60 s, while a
    # delivery is stored and retried for a day; the company gets it from the API or by email.
    Rule("status", "pairing_code", lambda s, r, d: {"outcome": "issued"}, lambda s, r: s == "pairing"),
    Rule("pairing_code", "pairing_code", lambda s, r, d: {"outcome": r or "issued"}),
    Rule("message", "message", lambda s, r, d: dict(d)),
    Rule("message_status", "message.status", lambda s, r, d: dict(d, status=s)),
    Rule("alert", "alert", lambda s, r, d: {"alert": r, "state": s or "firing", **d}),
)
EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(rule.type for rule in RULES))
