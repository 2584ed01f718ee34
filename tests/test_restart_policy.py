"""The restart policy: full-jitter backoff, reset after a stable period, intensity."""

from __future__ import annotations

import random
import statistics

from wafleet.actors.restart import Intensity, RestartPolicy, RestartTracker


def test_full_jitter_delays_stay_under_a_growing_ceiling() -> None:
    policy = RestartPolicy(base=5.0, max_delay=300.0)
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(300.0, 5.0 * 2**attempt)
        samples = [policy.delay(attempt, rng) for _ in range(2000)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # full jitter: spread over the whole range, mean near half the ceiling
        assert abs(statistics.mean(samples) - ceiling / 2) < ceiling * 0.05
        assert min(samples) < ceiling * 0.05 and max(samples) > ceiling * 0.95


def test_a_thousand_sessions_failing_together_do_not_restart_together() -> None:
    policy = RestartPolicy(base=5.0, max_delay=300.0)
    rng = random.Random(1)
    delays = sorted(policy.delay(3, rng) for _ in range(1000))  # all on their 4th attempt
    busiest_second = max(sum(1 for d in delays if s <= d < s + 1) for s in range(40))
    assert busiest_second < 60  # spread over 40 s instead of one thundering second


def test_intensity_gives_up_on_the_eleventh_restart_inside_the_window() -> None:
    tracker = RestartTracker(RestartPolicy(base=0.05, max_restarts=10, window=600, reset_after=60))
    now = 1000.0
    decisions = []
    for _ in range(11):
        tracker.started(now)
        now += 1
        decisions.append(tracker.exited(now))
    assert [d.give_up for d in decisions] == [False] * 10 + [True]


def test_restarts_outside_the_window_are_forgotten() -> None:
    tracker = RestartTracker(RestartPolicy(base=0.05, max_restarts=2, window=10, reset_after=60))
    for t in (0.0, 20.0, 40.0, 60.0):
        tracker.started(t)
        assert not tracker.exited(t + 1).give_up


def test_backoff_exponent_resets_after_a_stable_period() -> None:
    tracker = RestartTracker(RestartPolicy(base=1, max_restarts=100, window=10_000, reset_after=60))
    now = 0.0
    for _ in range(5):
        tracker.started(now)
        now += 1
        tracker.exited(now)
    assert tracker.attempt == 5
    tracker.started(now)
    decision = tracker.exited(now + 61)  # stayed up longer than reset_after
    assert decision.attempt == 1 and decision.delay <= 1.0


def test_uncounted_exits_do_not_consume_intensity() -> None:
    tracker = RestartTracker(RestartPolicy(base=1, max_restarts=1, window=600))
    for i in range(50):
        tracker.started(i)
        decision = tracker.exited(i + 0.5, counted=False)
        assert not decision.give_up and decision.delay == 0.0
    assert not tracker.times


def test_supervisor_intensity_trips_when_many_children_fail_together() -> None:
    breaker = Intensity(max_failures=3, period=10)
    assert [breaker.failed(t, f"c{t}") for t in (0, 1, 2)] == [False, False, False]
    assert breaker.failed(3, "c3") is True
    assert breaker.failed(30, "c30") is False  # the old failures left the period


def test_supervisor_intensity_ignores_one_child_crash_looping() -> None:
    breaker = Intensity(max_failures=3, period=10)
    assert not any(breaker.failed(t / 10, "flaky") for t in range(50))
