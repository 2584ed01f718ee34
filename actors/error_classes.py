"""Error classes for ``errors.breakdown``: what kind of trouble an exit or a failed send was.

Policy as data: one table from exit reasons to classes (a reason mapped to None is no error),
and the rules that classify a failed send from what the link said about it.
"""

from __future__ import annotations

from enum import StrEnum

from wafleet.actors.links.base import SendError
from wafleet.actors.status import ExitReason


class ErrorClass(StrEnum):
    TIMEOUT = "TIMEOUT"  # no answer in time: a silent link, a send that got no answer
    NETWORK = "NETWORK"  # the connection dropped or could not be made
    AUTH = "AUTH"  # credentials refused or void: logged out, a token Meta refused
    BANNED = "BANNED"  # WhatsApp banned the number
    RATE_LIMIT = "RATE_LIMIT"  # a limit (ours or WhatsApp's) said not now
    CONFLICT = "CONFLICT"  # the same login open elsewhere (replaced)
    REJECTED = "REJECTED"  # WhatsApp refused this message for good
    CONFIG = "CONFIG"  # this node cannot run the link (not configured, no credentials)
    INTERNAL = "INTERNAL"  # a bug: an exception ended the session


EXIT_CLASS: dict[ExitReason, ErrorClass | None] = {
    ExitReason.NORMAL: None,
    ExitReason.RESTART_REQUIRED: None,  # WhatsApp's routine 515
    ExitReason.CRASH: ErrorClass.INTERNAL,
    ExitReason.ESCALATED: ErrorClass.INTERNAL,
    ExitReason.TRANSIENT: ErrorClass.NETWORK,
    ExitReason.ZOMBIE: ErrorClass.TIMEOUT,
    ExitReason.REPLACED: ErrorClass.CONFLICT,
    ExitReason.LOGGED_OUT: ErrorClass.AUTH,
    ExitReason.AUTH: ErrorClass.AUTH,
    ExitReason.BANNED: ErrorClass.BANNED,
    ExitReason.BLOCKED: ErrorClass.RATE_LIMIT,
    ExitReason.QR_EXHAUSTED: ErrorClass.TIMEOUT,
    ExitReason.LINK_UNAVAILABLE: ErrorClass.CONFIG,
}

# Meta's codes that mean "too fast" (throughput, call rate, the recipient pair limit).
RATE_CODES = frozenset({4, 80007, 130429, 131056})


def exit_class(reason: str) -> ErrorClass | None:
    """The class of a session's exit; a reason nobody knows is a crash."""
    try:
        return EXIT_CLASS[ExitReason(reason)]
    except ValueError:
        return ErrorClass.INTERNAL


def send_class(exc: Exception) -> ErrorClass:
    """The class of one failed send attempt."""
    if not isinstance(exc, SendError):
        return ErrorClass.NETWORK  # the session went away under the send
    if exc.kind is not None:
        return ErrorClass(exc.kind)
    if exc.auth:
        return ErrorClass.AUTH
    if exc.code in RATE_CODES:
        return ErrorClass.RATE_LIMIT
    if exc.final:
        return ErrorClass.REJECTED
    return ErrorClass.NETWORK


__all__ = ["EXIT_CLASS", "ErrorClass", "exit_class", "send_class"]
