"""Messages between the HTTP layer, the fleet and the sessions. Plain, immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wafleet.actors.gevent_actor import Exit


# -- to the Fleet -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateCompany:
    id: str
    name: str
    phone: str | None
    link: str
    cloud: dict[str, Any] | None = None  # cloud_* columns; secrets already encrypted


@dataclass(frozen=True)
class UpdateCompany:
    id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class DeleteCompany:
    id: str


@dataclass(frozen=True)
class RotateToken:
    """Give the company a new token (answered once); the old one and its page logins end."""

    id: str


@dataclass(frozen=True)
class Initialize:
    id: str
    pairing_phone: str | None = None


@dataclass(frozen=True)
class Reconnect:
    id: str


@dataclass(frozen=True)
class StopSession:
    id: str


@dataclass(frozen=True)
class Cleanup:
    id: str


@dataclass(frozen=True)
class RequestPairing:
    id: str
    phone: str


@dataclass(frozen=True)
class Sandbox:
    """A far-side action on a sandbox session: scan, enter_code, disconnect, crash."""

    id: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Send:
    """Send one text through the company's session link; answers WhatsApp's message id."""

    id: str
    to: str
    text: str


@dataclass(frozen=True)
class Probe:
    """Does the session's link still answer? Answers an AsyncResult (True: it answered), or
    None when the session has no connected link to ask (nothing to probe)."""

    id: str


@dataclass(frozen=True)
class ProbeMany:
    """Probes for several sessions in one message to the Fleet (the health monitor's chunk):
    answers ``{id: what Probe would answer}``. One Fleet message per session cost the Fleet a
    turn per probe, 3,000 a second at 100,000 sessions."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Revive:
    """From the health monitor: the session is a zombie (``why``: link_silent, stuck_starting,
    stuck_reconnecting) as of its state entered at ``since`` (ms); a later state makes it stale."""

    id: str
    why: str
    message: str
    since: int


@dataclass(frozen=True)
class ChildExited:
    id: str
    generation: int
    exit: Exit


@dataclass(frozen=True)
class StartChild:
    id: str
    generation: int


@dataclass(frozen=True)
class Ping:
    """Are you up (and done starting)?"""


@dataclass(frozen=True)
class Shutdown:
    """Stop every child and persist; the tree is going down with the node."""


# -- to a CompanySession --------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkEvent:
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Stop the session: ``stop`` keeps the login, ``logout`` wipes it, ``node`` is a node stop."""

    mode: str


@dataclass(frozen=True)
class Expire:
    """From the Fleet: the link is silent or the start is stuck; end with ``zombie``."""

    message: str


@dataclass(frozen=True)
class Started:
    """Answered with the session's record once its start (and first transition) is durable."""


@dataclass(frozen=True)
class Crash:
    """Injected by the sandbox: raised inside the actor like any bug would be."""
