"""What a link is: a session's connection to WhatsApp.

The session actor drives a link with ``start``/``pair``/``logout``/``stop``; the link reports
back through ``emit(kind, data)``, which becomes a message in the session's inbox:

* ``qr`` {code, ttl, round} — a QR code to show, valid ``ttl`` seconds;
* ``pairing_code`` {code, ttl};
* ``connected`` {phone, creds} — creds are what ``start`` needs to reconnect without a QR;
* ``closed`` {reason, message, ...} with a reason from ``wafleet.actors.status.CLOSE_REASONS`` (how a
  link closed decides what the Fleet does next: ``wafleet.actors.exit_policy``);
* ``message`` {peer, type, text, media, wa_id, at} — a customer wrote in.

``ping()`` asks the far side whether the link still answers: the result is set to True when it
does (False when it answered that it is not connected); a link gone silent never sets it, and the
health monitor's wait for it times out.

``send(to, text)`` makes one attempt and returns WhatsApp's message id, or raises
:class:`SendError` saying whether and when to try again; the outbox owns the retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gevent.event

from wafleet.actors.errors import LinkConflict
from wafleet.actors.status import CLOSE_REASONS

Emit = Callable[[str, dict[str, Any]], None]

# A raw event from a link host, handed to the session's inbox; the session gives it back to its
# link (``host_event``) in its own greenlet, so only the session's actor ever touches its link.
HOST_EVENT = "link_host"


class SendError(Exception):
    """One send attempt failed. ``final``: never retry; else not before ``retry_after`` s."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        retry_after: float | None = None,
        final: bool = False,
        auth: bool = False,
        raw: dict[str, Any] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.final = final
        self.auth = auth
        self.raw = raw or {}
        # the error class when the link knows it (TIMEOUT, NETWORK: wafleet.actors.error_classes)
        self.kind = kind


class Link(Protocol):
    def start(self, creds: dict[str, Any] | None) -> None: ...

    def pair(self, phone: str) -> None: ...

    def send(self, to: str, text: str) -> str: ...

    def logout(self) -> None: ...

    def stop(self) -> None: ...

    def ping(self) -> gevent.event.AsyncResult: ...


__all__ = ["CLOSE_REASONS", "HOST_EVENT", "Emit", "Link", "LinkConflict", "SendError"]
