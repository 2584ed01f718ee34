"""The pairing-code cool-down as the Fleet checks it: is a start refused, and for how long.

The cool-down is set when a session asks for more pairing codes than the company's limit (the
session then ends ``blocked``); it lives in the session record (``blocked_until``) and in shared
state, so another node or a restarted one honours it too.
"""

from __future__ import annotations

from wafleet.actors.directory import SessionRecord
from wafleet.actors.errors import RateLimited
from wafleet.actors.exit_policy import BAN_KEPT_IN
from wafleet.actors.status import ExitReason, Status
from wafleet.storage.clock import now_ms
from wafleet.storage.shared_state import SharedState


def lapsed(record: SessionRecord) -> bool:
    """Blocked, but the cool-down is over (its timer has not fired yet)."""
    return record.status == Status.BLOCKED and (record.blocked_until or 0) <= now_ms()


def banned(record: SessionRecord) -> bool:
    """Down by a ban that has an end (``blocked_until``): failed by it, or stopped by an operator
    since. That end, not a boot, a restart or an operator, lifts it."""
    return (
        record.status in BAN_KEPT_IN
        and record.last_error is not None
        and record.last_error.get("reason") == ExitReason.BANNED
        and record.blocked_until is not None
    )


def ban_pending(record: SessionRecord, now: int | None = None) -> bool:
    """A ban whose end has not passed: no start before it."""
    return banned(record) and (record.blocked_until or 0) > (now_ms() if now is None else now)


def check_not_blocked(record: SessionRecord, shared: SharedState) -> None:
    """Raise :class:`RateLimited` while a cool-down runs (ours or another node's)."""
    until = record.blocked_until if record.status == Status.BLOCKED else None
    shared_until = shared.blocked_until(record.company_id)
    if shared_until:
        until = max(until or 0, int(shared_until * 1000))
    if until and until > now_ms():
        minutes = max(1, round((until - now_ms()) / 60000))
        raise RateLimited(
            (until - now_ms()) / 1000,
            f"the company is blocked after too many pairing codes: try again in {minutes} min",
        )
