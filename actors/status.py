"""The session's states and the reasons an actor's life ends: the vocabulary, and nothing else.

Standard library only, so any layer (storage excepted: it never imports actors) can name a state
or a reason without pulling in gevent or pykka. Every other list of states or reasons derives
from these enums; both are ``StrEnum`` so a member *is* its wire string.

``LEGAL_FROM`` is the state machine: for each state, the states it may be entered from. The
journal refuses any other edge (``IllegalTransition``). What happens after an exit -- which of
these edges is taken, and what is restarted or forgotten on the way -- is the table in
``wafleet.actors.exit_policy``.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """The nine states a session reports (``GET .../status``)."""

    STOPPED = "stopped"  # nothing runs and nothing will until someone asks
    STARTING = "starting"  # a session actor exists and its link is opening
    QR = "qr"  # the link shows QR codes; a phone must scan one
    PAIRING = "pairing"  # the link shows a pairing code for the company's phone
    CONNECTED = "connected"  # linked: messages flow
    RECONNECTING = "reconnecting"  # down, a restart is scheduled (backoff or boot)
    BLOCKED = "blocked"  # the pairing-code limit tripped: down until a cool-down ends
    LOGGED_OUT = "logged_out"  # WhatsApp removed the device: credentials are gone
    FAILED = "failed"  # down for good until an operator acts (or a ban's end passes)


class ExitReason(StrEnum):
    """Why an actor ended. A session's reason decides the next state (exit_policy.RULES)."""

    NORMAL = "normal"  # asked to stop (stop, cleanup, a node shutdown)
    CRASH = "crash"  # a bug or an injected crash: an exception ended the actor
    TRANSIENT = "transient"  # network, 408/428/503, the link host died: try again later
    RESTART_REQUIRED = "restart_required"  # WhatsApp's 515: reconnect at once
    REPLACED = "replaced"  # 440 / stream replaced: the same login is open elsewhere
    LOGGED_OUT = "logged_out"  # 401, device removed: the login is void
    BANNED = "banned"  # a temporary or permanent ban, maybe with an end time
    AUTH = "auth"  # Cloud API credentials refused (190), client outdated
    BLOCKED = "blocked"  # our own pairing-code limit tripped
    QR_EXHAUSTED = "qr_exhausted"  # nobody scanned and there is no phone for a pairing code
    LINK_UNAVAILABLE = "link_unavailable"  # the company's link cannot run on this node
    ESCALATED = "escalated"  # a supervisor whose children failed together gives up
    ZOMBIE = "zombie"  # the health monitor found the link silent, or the session stuck starting


# How a link may close (the ``closed`` event's reason); the rest are the session's own exits.
CLOSE_REASONS: tuple[ExitReason, ...] = (
    ExitReason.RESTART_REQUIRED,
    ExitReason.TRANSIENT,
    ExitReason.REPLACED,
    ExitReason.LOGGED_OUT,
    ExitReason.BANNED,
    ExitReason.AUTH,
)

# A session actor exists in these states (the Fleet's "running set").
RUNNING: frozenset[Status] = frozenset({Status.STARTING, Status.QR, Status.PAIRING, Status.CONNECTED})
# A restart is pending or running: what a boot puts back when nobody wants the session any more.
ACTIVE: frozenset[Status] = RUNNING | {Status.RECONNECTING}
_ANY: frozenset[Status] = frozenset(Status)

# The state machine. Read a row as "TARGET may be entered from SOURCES", with why.
LEGAL_FROM: dict[Status, frozenset[Status]] = {
    # stop, cleanup, a session that ended normally, a boot that finds nobody wants it, the end of
    # a cool-down: any state may be stopped.
    Status.STOPPED: _ANY,
    # a session actor starts: an operator's initialize/reconnect from any resting state, a
    # scheduled restart from reconnecting, restart_required from a running state. Never from
    # blocked: the cool-down has to end (-> stopped) first.
    Status.STARTING: _ANY - {Status.BLOCKED},
    # the link's first QR round, or a pairing code that lapsed and QR codes came back.
    Status.QR: frozenset({Status.STARTING, Status.PAIRING}),
    # a pairing code was issued, asked for at once (starting) or instead of QR codes.
    Status.PAIRING: frozenset({Status.STARTING, Status.QR}),
    # only an open link connects: resumed from stored credentials, scanned, or paired.
    Status.CONNECTED: frozenset({Status.STARTING, Status.QR, Status.PAIRING}),
    # a running session went down and a restart is scheduled; a failed start scheduled again; a
    # boot reschedules whatever should run (including a ban whose end passed while we were down).
    Status.RECONNECTING: _ANY - {Status.BLOCKED},
    # the pairing limit tripped in a running session, or a boot re-applies a stored cool-down.
    Status.BLOCKED: _ANY,
    # only a live link can be logged out by WhatsApp.
    Status.LOGGED_OUT: RUNNING,
    # a final close (banned, auth), too many restarts, or a link this node cannot run.
    Status.FAILED: _ANY - {Status.BLOCKED},
}


class IllegalTransition(RuntimeError):
    """A state change the machine does not allow: a bug in whoever asked for it."""


def check_edge(previous: Status | str, status: Status | str) -> None:
    """Raise :class:`IllegalTransition` unless ``previous -> status`` is an edge of the machine."""
    target, source = Status(status), Status(previous)
    if source not in LEGAL_FROM[target]:
        raise IllegalTransition(f"{source} -> {target} is not a legal transition")


__all__ = [
    "ACTIVE",
    "CLOSE_REASONS",
    "LEGAL_FROM",
    "RUNNING",
    "ExitReason",
    "IllegalTransition",
    "Status",
    "check_edge",
]
