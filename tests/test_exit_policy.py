"""The exit policy, one rule per test, in-process and in milliseconds (the node-level tests in
test_session_lifecycle, test_restarts_and_restore and test_bans_and_command_bursts are the
acceptance layer for the same rules)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wafleet.actors.exit_policy import (
    ENTRY,
    RULES,
    Backoff,
    Phone,
    Restart,
    decide,
    escalates,
    rule_for,
)
from wafleet.actors.status import (
    CLOSE_REASONS,
    LEGAL_FROM,
    RUNNING,
    ExitReason,
    IllegalTransition,
    Status,
    check_edge,
)

NOW = 1_800_000_000_000  # epoch ms
BACKOFF = Backoff(give_up=False, delay=1.5, restarts_in_window=1, window=600)


def test_every_exit_reason_has_a_rule_and_every_state_an_entry() -> None:
    assert set(RULES) == set(ExitReason) - {ExitReason.ESCALATED}  # the Fleet's own exit
    assert set(ENTRY) == set(Status) == set(LEGAL_FROM)
    assert set(CLOSE_REASONS) <= set(RULES)


def test_every_rule_leads_along_a_legal_edge_from_a_running_session() -> None:
    for reason, rule in RULES.items():
        assert any(source in LEGAL_FROM[rule.status] for source in RUNNING), reason


def test_restart_required_restarts_now_uncounted_and_is_no_error() -> None:
    plan = decide("restart_required", "515", {}, now_ms=NOW)
    assert (plan.status, plan.restart, plan.counted, plan.error) == (
        Status.STARTING,
        Restart.NOW,
        False,
        False,
    )
    assert plan.retry_in is None


def test_transient_backs_off_counted() -> None:
    plan = decide("transient", "network", {}, now_ms=NOW, backoff=BACKOFF)
    assert (plan.status, plan.restart, plan.delay, plan.counted) == (
        Status.RECONNECTING,
        Restart.BACKOFF,
        1.5,
        True,
    )
    assert plan.retry_in == 1.5 and plan.alerts == ()


def test_a_counted_exit_needs_the_trackers_answer() -> None:
    with pytest.raises(ValueError, match="counted"):
        decide("crash", "boom", {}, now_ms=NOW)


def test_crash_backs_off_and_counts_toward_escalation() -> None:
    plan = decide("crash", "ValueError: boom", {}, now_ms=NOW, backoff=BACKOFF)
    assert plan.status == Status.RECONNECTING and plan.restart is Restart.BACKOFF
    assert escalates("crash")
    assert not any(escalates(r) for r in RULES if r != ExitReason.CRASH)


def test_an_unknown_reason_is_a_crash() -> None:
    assert rule_for("something_new") == RULES[ExitReason.CRASH]


def test_replaced_adds_the_cooloff_to_the_backoff() -> None:
    plan = decide("replaced", "440", {}, now_ms=NOW, backoff=BACKOFF, replaced_recently=1, cooloff=30)
    assert plan.status == Status.RECONNECTING and plan.delay == 31.5 and plan.alerts == ()


def test_the_third_replaced_inside_the_window_raises_the_replaced_loop_alert_once() -> None:
    alerts = [
        [a.kind for a in decide("replaced", "", {}, now_ms=NOW, backoff=BACKOFF, replaced_recently=n).alerts]
        for n in (1, 2, 3, 4)
    ]
    assert alerts == [[], [], ["replaced_loop"], []]


def test_intensity_exhausted_goes_to_failed_with_an_alert() -> None:
    spent = Backoff(give_up=True, restarts_in_window=11, window=600)
    plan = decide("transient", "network", {}, now_ms=NOW, backoff=spent)
    assert (plan.status, plan.reason, plan.restart) == (Status.FAILED, "too_many_restarts", Restart.NEVER)
    assert "11 restarts within 600s (last: transient: network)" == plan.message
    assert [a.kind for a in plan.alerts] == ["session_failed"]


def test_logged_out_forgets_credentials_and_phone_and_never_restarts() -> None:
    plan = decide("logged_out", "device removed", {}, now_ms=NOW)
    assert (plan.status, plan.restart, plan.forget_credentials) == (Status.LOGGED_OUT, Restart.NEVER, True)
    assert ENTRY[Status.LOGGED_OUT].phone is Phone.FORGET


def test_banned_with_an_end_fails_until_then_restarts_at_the_end() -> None:
    end = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    plan = decide("banned", "temporary ban", {"until": "2027-01-15T08:00:00Z"}, now_ms=NOW)
    assert plan.status == Status.FAILED and plan.restart is Restart.AT_UNTIL
    assert plan.until == int(end.timestamp() * 1000)
    assert plan.data["until"] == "2027-01-15T08:00:00.000Z"  # the wire format
    assert plan.delay == pytest.approx(end.timestamp() - NOW / 1000)
    assert ENTRY[Status.FAILED].keeps_until


def test_banned_with_an_end_in_epoch_ms_from_a_link_host() -> None:
    plan = decide("banned", "", {"until": NOW + 90_000}, now_ms=NOW)
    assert plan.until == NOW + 90_000 and plan.delay == 90.0 and plan.restart is Restart.AT_UNTIL


def test_banned_without_an_end_stays_failed_for_an_operator() -> None:
    plan = decide("banned", "banned", {}, now_ms=NOW)
    assert (plan.status, plan.restart, plan.until) == (Status.FAILED, Restart.NEVER, None)
    assert "until" not in plan.data


def test_auth_fails_and_waits_for_new_credentials() -> None:
    plan = decide("auth", "token expired (190)", {"detail": "expired"}, now_ms=NOW)
    assert (plan.status, plan.restart) == (Status.FAILED, Restart.NEVER)
    assert plan.data == {"detail": "expired"}


def test_blocked_stops_the_desired_state_keeps_the_cooldown_and_alerts() -> None:
    plan = decide("blocked", "pairing-code limit reached", {"until": NOW + 1_800_000}, now_ms=NOW)
    assert (plan.status, plan.reason, plan.restart) == (Status.BLOCKED, "pairing_limit", Restart.NEVER)
    assert plan.stop_desired and plan.until == NOW + 1_800_000 and plan.data == {"until": NOW + 1_800_000}
    assert [a.kind for a in plan.alerts] == ["pairing_limit"]
    assert ENTRY[Status.BLOCKED].keeps_until and not ENTRY[Status.STOPPED].keeps_until


def test_qr_exhausted_stops_and_says_what_is_needed() -> None:
    plan = decide("qr_exhausted", "no scan after 3 QR codes", {"needs": "phoneNumber"}, now_ms=NOW)
    assert (plan.status, plan.restart, plan.stop_desired) == (Status.STOPPED, Restart.NEVER, True)
    assert plan.data == {"needs": "phoneNumber"}


def test_normal_exit_is_stopped_without_an_error() -> None:
    plan = decide("normal", "", {}, now_ms=NOW)
    assert (plan.status, plan.reason, plan.error, plan.restart) == (
        Status.STOPPED,
        "session ended",
        False,
        Restart.NEVER,
    )


def test_link_unavailable_fails() -> None:
    plan = decide("link_unavailable", "link 'web' is not available on this node", {}, now_ms=NOW)
    assert (plan.status, plan.restart) == (Status.FAILED, Restart.NEVER)


def test_entering_a_state_keeps_only_its_own_codes() -> None:
    assert ENTRY[Status.QR].keeps_qr and not ENTRY[Status.QR].keeps_pairing
    assert ENTRY[Status.PAIRING].keeps_pairing
    assert not any(ENTRY[s].keeps_qr for s in (Status.CONNECTED, Status.STOPPED, Status.FAILED))
    assert ENTRY[Status.CONNECTED].phone is Phone.SAVE


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Status.STOPPED, Status.CONNECTED),  # only an open link connects
        (Status.RECONNECTING, Status.QR),
        (Status.FAILED, Status.LOGGED_OUT),  # only a live link is logged out
        (Status.BLOCKED, Status.STARTING),  # a cool-down ends (-> stopped) before a start
        (Status.BLOCKED, Status.RECONNECTING),
    ],
)
def test_illegal_edges_are_refused(source: Status, target: Status) -> None:
    with pytest.raises(IllegalTransition, match=f"{source} -> {target}"):
        check_edge(source, target)


def test_the_usual_life_of_a_session_is_legal() -> None:
    path = [
        Status.STOPPED,
        Status.STARTING,
        Status.QR,
        Status.PAIRING,
        Status.QR,
        Status.CONNECTED,
        Status.STARTING,  # 515
        Status.CONNECTED,
        Status.RECONNECTING,
        Status.STARTING,
        Status.CONNECTED,
        Status.FAILED,  # banned
        Status.RECONNECTING,  # the ban's end
        Status.STARTING,
        Status.PAIRING,
        Status.BLOCKED,
        Status.STOPPED,
    ]
    for source, target in zip(path, path[1:], strict=False):
        check_edge(source, target)
