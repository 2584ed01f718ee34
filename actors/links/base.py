"""What a link is: a session's connection to WhatsApp (ARCHITECTURE §5).

The session actor drives a link with ``start``/``pair``/``logout``/``stop``; the link reports
back through ``emit(kind, data)``, which becomes a message in the session's inbox:

* ``qr`` {code, ttl, round} — a QR code to show, valid ``ttl`` seconds;
* ``pairing_code`` {code, ttl};
* ``connected`` {phone, creds} — creds are what ``start`` needs to reconnect without a QR;
* ``closed`` {reason, message, ...} with a reason from :data:`CLOSE_REASONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# How a link closed decides what the supervisor does next (ARCHITECTURE §4).
CLOSE_REASONS = ("restart_required", "transient", "replaced", "logged_out", "banned", "auth")

Emit = Callable[[str, dict[str, Any]], None]


class LinkConflict(Exception):
    """The far side cannot do that now (wrong state): HTTP 409."""


class Link(Protocol):
    def start(self, creds: dict[str, Any] | None) -> None: ...

    def pair(self, phone: str) -> None: ...

    def logout(self) -> None: ...

    def stop(self) -> None: ...
