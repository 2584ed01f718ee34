"""What happens after a session's actor ends: one table, read by ``decide``.

Pure: no gevent, pykka or storage. The Fleet feeds in the exit and what its restart tracker
said, gets a :class:`Plan` back and only applies it. A newcomer reads ``RULES`` to learn the
restart policy; ``ENTRY`` says what entering a state does to the session's record.

The restart vocabulary is Erlang's plus a backoff: *now* (``restart_required``: WhatsApp's 515
is a routine reconnect), *backoff* (full jitter, counted toward the session's intensity: too
many inside the window and the session is ``failed`` with an alert), *at the end* (a ban with an
end time), *never* (final reasons: the session waits for an operator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from wafleet.actors.status import ExitReason, Status


class Restart(Enum):
    NEVER = "never"  # stay down until an operator acts
    NOW = "now"  # start a new session at once
    BACKOFF = "backoff"  # after the full-jitter delay (plus any cool-off)
    AT_UNTIL = "at_until"  # when the exit's ``until`` passes (a ban with an end)


class Phone(Enum):
    KEEP = "keep"
    SAVE = "save"  # persist the phone the link reported
    FORGET = "forget"  # the number is no longer linked


@dataclass(frozen=True)
class Entry:
    """What entering a state does to the session's record, whoever asked for it."""

    keeps_qr: bool = False  # the QR code shown stays valid
    keeps_pairing: bool = False  # the pairing code shown stays valid
    keeps_until: bool = False  # takes the transition's end (a cool-down's, a ban's); else cleared
    # A ban's end that has not passed survives entering this state: the ban is WhatsApp's, so an
    # operator's stop or cleanup cannot shorten it (a start before the end is refused).
    keeps_ban: bool = False
    phone: Phone = Phone.KEEP


ENTRY: dict[Status, Entry] = {
    Status.STOPPED: Entry(keeps_ban=True),
    Status.STARTING: Entry(),
    Status.QR: Entry(keeps_qr=True),
    Status.PAIRING: Entry(keeps_qr=True, keeps_pairing=True),
    Status.CONNECTED: Entry(phone=Phone.SAVE),
    Status.RECONNECTING: Entry(),
    Status.BLOCKED: Entry(keeps_until=True),
    Status.LOGGED_OUT: Entry(phone=Phone.FORGET),
    Status.FAILED: Entry(keeps_until=True, keeps_ban=True),  # a ban's end
}

# The states a ban leaves a session in (failed, or stopped by an operator meanwhile).
BAN_KEPT_IN: frozenset[Status] = frozenset(status for status, entry in ENTRY.items() if entry.keeps_ban)


@dataclass(frozen=True)
class Rule:
    """One row of the policy: what an exit with this reason leads to."""

    status: Status  # the state the session enters
    restart: Restart
    counted: bool = False  # counts toward the session's intensity (restarts inside the window)
    error: bool = True  # recorded as the session's last error
    stop_desired: bool = False  # the desired state becomes stopped (a boot will not restart it)
    alert: str | None = None  # raised on every such exit
    cooloff: bool = False  # the replaced cool-off is added to the backoff delay
    forget_credentials: bool = False
    escalates: bool = False  # counts toward the Fleet's own intensity (node sickness)
    transition_reason: str | None = None  # the history's reason; the exit reason if None


RULES: dict[ExitReason, Rule] = {
    # asked to stop, or a session that simply ended: down, no error.
    ExitReason.NORMAL: Rule(Status.STOPPED, Restart.NEVER, error=False, transition_reason="session ended"),
    # a bug: back off; many sessions crashing together is the node's problem (escalation).
    ExitReason.CRASH: Rule(Status.RECONNECTING, Restart.BACKOFF, counted=True, escalates=True),
    # network trouble, a link host that died: back off.
    ExitReason.TRANSIENT: Rule(Status.RECONNECTING, Restart.BACKOFF, counted=True),
    # the health monitor found it silent (connected, but its link no longer answers) or stuck
    # in starting: a dropped connection that nobody reported, so like transient: back off.
    ExitReason.ZOMBIE: Rule(Status.RECONNECTING, Restart.BACKOFF, counted=True),
    # WhatsApp's 515: reconnect at once, not counted (it is routine, not a failure).
    ExitReason.RESTART_REQUIRED: Rule(Status.STARTING, Restart.NOW, error=False),
    # the login is open elsewhere: wait a cool-off before backing off, so the two sessions do not
    # keep kicking each other out; a loop of these raises ``replaced_loop`` (see ``decide``).
    ExitReason.REPLACED: Rule(Status.RECONNECTING, Restart.BACKOFF, counted=True, cooloff=True),
    # the device was removed: the credentials are void, nothing to restart.
    ExitReason.LOGGED_OUT: Rule(Status.LOGGED_OUT, Restart.NEVER, forget_credentials=True),
    # banned: failed; with an end time the session comes back by itself once it passes.
    ExitReason.BANNED: Rule(Status.FAILED, Restart.AT_UNTIL),
    # the Cloud API refused the credentials: failed until they are updated.
    ExitReason.AUTH: Rule(Status.FAILED, Restart.NEVER),
    # our pairing-code limit: blocked for the cool-down, then stopped (nobody waits for a QR).
    ExitReason.BLOCKED: Rule(
        Status.BLOCKED,
        Restart.NEVER,
        stop_desired=True,
        alert="pairing_limit",
        transition_reason="pairing_limit",
    ),
    # nobody scanned and there is no phone for a pairing code: stop and say what is needed.
    ExitReason.QR_EXHAUSTED: Rule(Status.STOPPED, Restart.NEVER, stop_desired=True),
    # this node cannot run the company's link (not configured, no credentials).
    ExitReason.LINK_UNAVAILABLE: Rule(Status.FAILED, Restart.NEVER),
}

# Too many counted restarts inside the window: the session's own intensity gives up.
GIVE_UP = Rule(Status.FAILED, Restart.NEVER, alert="session_failed", transition_reason="too_many_restarts")

REPLACED_LOOP = 3  # this many ``replaced`` exits inside the restart window raise an alert


@dataclass(frozen=True)
class Alert:
    kind: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What the Fleet does after one exit, in order: record, alert, forget, restart."""

    status: Status
    reason: str  # the transition's reason in the history
    message: str
    restart: Restart
    delay: float = 0.0  # seconds before the restart (BACKOFF, AT_UNTIL)
    error: bool = True
    counted: bool = False  # the restart counter shown to users goes up
    stop_desired: bool = False
    forget_credentials: bool = False
    until: int | None = None  # epoch ms: a ban's end or a cool-down's end
    alerts: tuple[Alert, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # the history event's data

    @property
    def retry_in(self) -> float | None:
        return self.delay if self.status is Status.RECONNECTING else None


@dataclass(frozen=True)
class Backoff:
    """The session's restart tracker's answer for a counted exit."""

    give_up: bool
    delay: float = 0.0
    restarts_in_window: int = 0
    window: float = 0.0


def rule_for(reason: str) -> Rule:
    """The row for ``reason``; a reason nobody knows is treated as a crash (backoff, counted)."""
    return RULES.get(reason, RULES[ExitReason.CRASH])  # type: ignore[call-overload]


def decide(
    reason: str,
    message: str,
    data: Mapping[str, Any],
    *,
    now_ms: int,
    backoff: Backoff | None = None,
    replaced_recently: int = 0,
    cooloff: float = 0.0,
) -> Plan:
    """The plan for one exit.

    ``backoff`` is the restart tracker's answer, needed when ``rule_for(reason).counted``;
    ``replaced_recently`` counts ``replaced`` exits inside the window, this one included;
    ``cooloff`` is the replaced cool-off in seconds.
    """
    rule = rule_for(reason)
    extra = {k: v for k, v in data.items() if k != "until"}
    if rule.counted:
        if backoff is None:
            raise ValueError(f"a {reason!r} exit is counted: decide needs the tracker's backoff")
        if backoff.give_up:
            return _give_up(reason, message, backoff)
    alerts: list[Alert] = []
    if rule.alert:
        alerts.append(Alert(rule.alert, message))
    if rule.cooloff and replaced_recently == REPLACED_LOOP:
        alerts.append(
            Alert(
                "replaced_loop",
                f"the session was replaced {REPLACED_LOOP} times: is it open on another server?",
            )
        )
    until = _until_ms(data.get("until"), now_ms) if "until" in data else None
    restart, delay = rule.restart, 0.0
    if restart is Restart.BACKOFF:
        assert backoff is not None
        delay = backoff.delay + (cooloff if rule.cooloff else 0.0)
    elif restart is Restart.AT_UNTIL:
        if until is None:
            restart = Restart.NEVER  # a ban without an end: an operator decides
        else:
            delay = max(0.0, (until - now_ms) / 1000)
    if until is not None:  # the cool-down's end in ms (as always); a ban's end as wire text
        extra["until"] = until if reason == ExitReason.BLOCKED else _iso(until)
    return Plan(
        status=rule.status,
        reason=rule.transition_reason or reason,
        message=message,
        restart=restart,
        delay=delay,
        error=rule.error,
        counted=rule.counted,
        stop_desired=rule.stop_desired,
        forget_credentials=rule.forget_credentials,
        until=until,
        alerts=tuple(alerts),
        data=extra,
    )


def _give_up(reason: str, message: str, backoff: Backoff) -> Plan:
    text = f"{backoff.restarts_in_window} restarts within {backoff.window:.0f}s (last: {reason}: {message})"
    return Plan(
        status=GIVE_UP.status,
        reason=GIVE_UP.transition_reason or reason,
        message=text,
        restart=Restart.NEVER,
        alerts=(Alert(GIVE_UP.alert or "session_failed", text),),
    )


def _until_ms(value: Any, now_ms: int) -> int | None:
    """An exit's ``until``: epoch ms (a link host's ban) or ISO-8601 text (the sandbox's)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _iso(ms: int) -> str:
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def escalates(reason: str) -> bool:
    return rule_for(reason).escalates


def counted(reason: str) -> bool:
    return rule_for(reason).counted


__all__ = [
    "BAN_KEPT_IN",
    "ENTRY",
    "GIVE_UP",
    "RULES",
    "Alert",
    "Backoff",
    "Entry",
    "Phone",
    "Plan",
    "Restart",
    "Rule",
    "counted",
    "decide",
    "escalates",
    "rule_for",
]
