"""Restart policy: Erlang's vocabulary (restart types, intensity) plus full-jitter backoff.

delay = random(0, min(max_delay, base * 2**n)), n reset once a child stayed up ``reset_after``.
Full jitter, not Akka's +-20 %: after a database outage thousands of sessions fail in the
same second and must not come back in the same second.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    base: float = 5.0
    max_delay: float = 300.0
    max_restarts: int = 10
    window: float = 600.0
    reset_after: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base * (2 ** min(attempt, 62)))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class Decision:
    give_up: bool
    delay: float = 0.0
    attempt: int = 0


class RestartTracker:
    """One child's restart history: when it restarts next, and when it has failed too often."""

    def __init__(self, policy: RestartPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        self.times: deque[float] = deque()
        self.attempt = 0
        self.started_at: float | None = None

    def started(self, now: float) -> None:
        self.started_at = now

    def reset(self) -> None:
        self.times.clear()
        self.attempt = 0

    def exited(self, now: float, counted: bool = True) -> Decision:
        if self.started_at is not None and now - self.started_at >= self.policy.reset_after:
            self.attempt = 0
        self.started_at = None
        if not counted:
            return Decision(give_up=False, delay=0.0, attempt=self.attempt)
        self.times.append(now)
        while self.times and self.times[0] <= now - self.policy.window:
            self.times.popleft()
        if len(self.times) > self.policy.max_restarts:
            return Decision(give_up=True, attempt=self.attempt)
        delay = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return Decision(give_up=False, delay=delay, attempt=self.attempt)


class Intensity:
    """A supervisor's own MaxR-in-MaxT breaker: too many children failing together -> escalate.

    It counts distinct children, not failures: one child crash-looping is that child's business
    (its own intensity sends it to ``failed``); many children failing at once means the node is sick.
    """

    def __init__(self, max_failures: int, period: float) -> None:
        self.max_failures = max_failures
        self.period = period
        self.times: deque[tuple[float, str]] = deque()

    def failed(self, now: float, child: str, max_failures: int | None = None) -> bool:
        """Record a failure of ``child``; True when the breaker trips."""
        self.times.append((now, child))
        while self.times and self.times[0][0] <= now - self.period:
            self.times.popleft()
        limit = self.max_failures if max_failures is None else max_failures
        return len({c for _, c in self.times}) > limit
