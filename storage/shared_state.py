"""Shared state: one interface, Redis or in-process, and the front that picks.

``LocalState`` is the embedded default (one node) and the fallback while Redis is away; it has
the same behaviour as ``RedisState``, so the tests run the same cases on both. ``SharedState`` is
what the app holds: it talks to Redis when ``REDIS_URL`` is set, serves from a ``LocalState`` while
Redis does not answer (logging that once), and goes back to Redis by itself when a probe answers.

Every write that Redis accepts is mirrored into the local state, so that when Redis goes away
the node carries on with what it last knew about its own companies (pairing slots already
spent, blocks, live codes) rather than with empty limits.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

import redis.exceptions

from wafleet.storage.redis_state import RedisState

log = logging.getLogger("wafleet.storage.shared_state")

Status = Literal["ok", "degraded", "local"]
T = TypeVar("T")

# What "Redis is unreachable" looks like; anything else (a bad script, a wrong type) is a bug and
# propagates. BusyLoadingError and AuthenticationError are ConnectionErrors too.
UNREACHABLE: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


MAX_LOCAL_KEYS = 100_000  # past this, the in-process store sweeps expired keys on a write


class StateBackend(Protocol):
    def qr_attempt(self, company_id: str, ttl: float) -> int: ...
    def qr_count(self, company_id: str) -> int: ...
    def reset_qr(self, company_id: str) -> None: ...
    def take_pairing_slot(
        self, company_id: str, limit: int, window: float, cooldown: float, now: float | None = None
    ) -> tuple[bool, float]: ...
    def blocked_until(self, company_id: str, now: float | None = None) -> float | None: ...
    def take_send_slot(
        self, company_id: str, limit: int, window: float, now: float | None = None
    ) -> tuple[bool, float]: ...
    def clear_send_slots(self, company_id: str) -> None: ...
    def set_pairing(self, company_id: str, data: dict[str, Any], ttl: float) -> None: ...
    def get_pairing(self, company_id: str) -> dict[str, Any] | None: ...
    def clear_pairing(self, company_id: str) -> None: ...
    def count_failure(self, key: str, window: float) -> tuple[int, float]: ...
    def failures(self, key: str) -> tuple[int, float]: ...


class LocalState:
    """In-process state for one node. Expiry is checked on read against ``clock``.

    Values are deep-copied in and out, as Redis would serialise them: a caller mutating the dict
    it got back must not change what is stored.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()  # a gevent lock once patched; nothing inside it blocks
        self._values: dict[str, tuple[Any, float | None]] = {}  # key -> (value, expires_at)
        self._slots: dict[str, list[float]] = {}  # company -> times of pairing codes handed out
        self._sends: dict[str, list[float]] = {}  # company -> times of messages accepted by send

    def _get(self, key: str) -> Any:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self.clock():
            del self._values[key]
            return None
        return value

    def _set(self, key: str, value: Any, ttl: float | None) -> None:
        self._values[key] = (value, None if ttl is None else self.clock() + ttl)

    def qr_attempt(self, company_id: str, ttl: float) -> int:
        key = f"qr:{company_id}"
        with self._lock:
            count = (self._get(key) or 0) + 1
            expires = self._values[key][1] if count > 1 else self.clock() + ttl
            self._values[key] = (count, expires)
            return count

    def qr_count(self, company_id: str) -> int:
        with self._lock:
            return self._get(f"qr:{company_id}") or 0

    def reset_qr(self, company_id: str) -> None:
        with self._lock:
            self._values.pop(f"qr:{company_id}", None)

    def take_pairing_slot(
        self, company_id: str, limit: int, window: float, cooldown: float, now: float | None = None
    ) -> tuple[bool, float]:
        now = self.clock() if now is None else now
        with self._lock:
            until = self._block(company_id)
            if until is not None:
                if until > now:
                    return False, until - now
                self._values.pop(f"blocked:{company_id}", None)
            slots = [t for t in self._slots.get(company_id, ()) if t > now - window]
            if len(slots) >= limit:
                self._slots[company_id] = slots
                self._values[f"blocked:{company_id}"] = (now + cooldown, None)
                return False, cooldown
            slots.append(now)
            self._slots[company_id] = slots
            return True, 0.0

    def _block(self, company_id: str) -> float | None:
        item = self._values.get(f"blocked:{company_id}")
        return None if item is None else item[0]

    def blocked_until(self, company_id: str, now: float | None = None) -> float | None:
        now = self.clock() if now is None else now
        with self._lock:
            until = self._block(company_id)
        return until if until is not None and until > now else None

    def take_send_slot(
        self, company_id: str, limit: int, window: float, now: float | None = None
    ) -> tuple[bool, float]:
        now = self.clock() if now is None else now
        with self._lock:
            sends = [t for t in self._sends.get(company_id, ()) if t > now - window]
            if len(sends) >= limit:
                self._sends[company_id] = sends
                return False, sends[len(sends) - limit] + window - now
            sends.append(now)
            self._sends[company_id] = sends
            return True, 0.0

    def clear_send_slots(self, company_id: str) -> None:
        with self._lock:
            self._sends.pop(company_id, None)

    def set_pairing(self, company_id: str, data: dict[str, Any], ttl: float) -> None:
        with self._lock:
            self._set(f"pairing:{company_id}", copy.deepcopy(data), ttl)

    def get_pairing(self, company_id: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._get(f"pairing:{company_id}"))

    def clear_pairing(self, company_id: str) -> None:
        with self._lock:
            self._values.pop(f"pairing:{company_id}", None)

    def sweep(self, keep: float) -> int:
        """Forget what has expired, and limit logs older than ``keep`` seconds (the longest
        window in use): idle companies cost no memory. Returns the entries dropped."""
        now = self.clock()
        dropped = 0
        with self._lock:
            for key, (_, expires) in list(self._values.items()):
                if expires is not None and expires <= now:
                    del self._values[key]
                    dropped += 1
            for logs in (self._slots, self._sends):
                for company_id, times in list(logs.items()):
                    recent = [t for t in times if t > now - keep]
                    dropped += len(times) - len(recent)
                    if recent:
                        logs[company_id] = recent
                    else:
                        del logs[company_id]
        return dropped

    def size(self) -> int:
        with self._lock:
            return (
                len(self._values)
                + sum(len(t) for t in self._slots.values())
                + sum(len(t) for t in self._sends.values())
            )

    # Mirroring what Redis decided (used by SharedState only) ---------------------------------

    def count_failure(self, key: str, window: float) -> tuple[int, float]:
        """One more failure in a fixed window of ``window`` seconds that starts with the first;
        returns (failures in the window, seconds until it ends)."""
        name = f"fail:{key}"
        with self._lock:
            now = self.clock()
            if len(self._values) > MAX_LOCAL_KEYS:  # many addresses: drop what has expired
                self._values = {k: v for k, v in self._values.items() if v[1] is None or v[1] > now}
            item = self._values.get(name)
            if item is None or (item[1] is not None and item[1] <= now):
                item = (0, now + window)
            count, expires = item[0] + 1, item[1]
            self._values[name] = (count, expires)
            return count, max(0.0, (expires or now) - now)

    def failures(self, key: str) -> tuple[int, float]:
        with self._lock:
            item = self._values.get(f"fail:{key}")
            now = self.clock()
            if item is None or (item[1] is not None and item[1] <= now):
                return 0, 0.0
            return item[0], max(0.0, (item[1] or now) - now)

    def _mirror_qr(self, company_id: str, count: int, ttl: float) -> None:
        with self._lock:
            item = self._values.get(f"qr:{company_id}")
            expires = item[1] if item is not None and count > 1 else self.clock() + ttl
            self._values[f"qr:{company_id}"] = (count, expires)

    def _mirror_send(self, company_id: str, now: float, window: float) -> None:
        with self._lock:
            sends = [t for t in self._sends.get(company_id, ()) if t > now - window]
            self._sends[company_id] = [*sends, now]

    def _mirror_slot(
        self, company_id: str, allowed: bool, retry_after: float, now: float, window: float
    ) -> None:
        with self._lock:
            if allowed:
                slots = [t for t in self._slots.get(company_id, ()) if t > now - window]
                self._slots[company_id] = [*slots, now]
            else:
                self._values[f"blocked:{company_id}"] = (now + retry_after, None)


class SharedState:
    """The app's shared state: Redis when configured and answering, else in-process.

    ``status()`` is "local" without Redis configured, "ok" while Redis answers, "degraded" while
    the node serves from local state because Redis does not. While degraded, a call probes Redis
    at most every ``probe_interval`` seconds (``status()`` too, so /readyz alone brings it back).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        probe_interval: float = 3.0,
        timeout: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.local = LocalState(clock)
        self.remote = RedisState(url, timeout=timeout, clock=clock) if url else None
        self.probe_interval = probe_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._degraded = False
        self._probing = False
        self._next_probe = 0.0
        if self.remote is not None:
            self._probe()

    # Mode ------------------------------------------------------------------------------------

    def status(self) -> Status:
        if self.remote is None:
            return "local"
        if self._degraded:
            self._maybe_probe()
        return "degraded" if self._degraded else "ok"

    def _fail(self, exc: Exception) -> None:
        with self._lock:
            self._next_probe = self._monotonic() + self.probe_interval
            if self._degraded:
                return
            self._degraded = True
        log.warning(
            "redis unreachable (%s: %s); serving shared state from this node only", type(exc).__name__, exc
        )

    def _maybe_probe(self) -> None:
        with self._lock:
            if self._probing or self._monotonic() < self._next_probe:
                return
            self._probing = True  # one caller probes; the others carry on locally meanwhile
        try:
            self._probe()
        finally:
            self._probing = False

    def _probe(self) -> None:
        assert self.remote is not None
        try:
            self.remote.ping()
        except UNREACHABLE as exc:
            self._fail(exc)
            return
        with self._lock:
            was_degraded, self._degraded = self._degraded, False
        if was_degraded:
            log.warning("redis answers again; shared state is back on redis")

    def _call(self, remote: Callable[[RedisState], T], local: Callable[[LocalState], T]) -> T:
        """Run on Redis if we can, else locally; never let an unreachable Redis reach the caller."""
        if self.remote is not None:
            if self._degraded:
                self._maybe_probe()
            if not self._degraded:
                try:
                    return remote(self.remote)
                except UNREACHABLE as exc:
                    self._fail(exc)
        return local(self.local)

    def _write(self, op: Callable[[StateBackend], None]) -> None:
        """Writes land locally as well, so an outage starts from what this node last knew."""

        def remote(r: RedisState) -> None:
            op(r)
            op(self.local)

        self._call(remote, op)

    # QR rounds ------------------------------------------------------------------------------

    def qr_attempt(self, company_id: str, ttl: float) -> int:
        def remote(r: RedisState) -> int:
            count = r.qr_attempt(company_id, ttl)
            self.local._mirror_qr(company_id, count, ttl)
            return count

        return self._call(remote, lambda s: s.qr_attempt(company_id, ttl))

    def qr_count(self, company_id: str) -> int:
        return self._call(lambda s: s.qr_count(company_id), lambda s: s.qr_count(company_id))

    def reset_qr(self, company_id: str) -> None:
        self._write(lambda s: s.reset_qr(company_id))

    def forget(self, company_id: str) -> None:
        """A deleted company's live state goes. Its pairing-code limit stays: it protects the
        phone number from WhatsApp's bans, and deleting and re-creating must not reset it."""
        self.reset_qr(company_id)
        self.clear_pairing(company_id)

    # Pairing-code limit ---------------------------------------------------------------------

    def take_pairing_slot(
        self, company_id: str, limit: int, window: float, cooldown: float, now: float | None = None
    ) -> tuple[bool, float]:
        """At most ``limit`` codes per sliding ``window``; one past it blocks for ``cooldown``.

        Returns (allowed, seconds until a retry may succeed). Atomic across nodes on Redis.
        """
        now = self.clock() if now is None else now

        def remote(r: RedisState) -> tuple[bool, float]:
            allowed, retry_after = r.take_pairing_slot(company_id, limit, window, cooldown, now)
            self.local._mirror_slot(company_id, allowed, retry_after, now, window)
            return allowed, retry_after

        return self._call(remote, lambda s: s.take_pairing_slot(company_id, limit, window, cooldown, now))

    def blocked_until(self, company_id: str, now: float | None = None) -> float | None:
        return self._call(
            lambda s: s.blocked_until(company_id, now), lambda s: s.blocked_until(company_id, now)
        )

    # Send limit ------------------------------------------------------------------------------

    def take_send_slot(
        self, company_id: str, limit: int, window: float, now: float | None = None
    ) -> tuple[bool, float]:
        """At most ``limit`` messages accepted per sliding ``window`` seconds; returns (allowed,
        seconds until one more fits). Atomic across nodes on Redis; a refusal spends nothing."""
        now = self.clock() if now is None else now

        def remote(r: RedisState) -> tuple[bool, float]:
            allowed, retry_after = r.take_send_slot(company_id, limit, window, now)
            if allowed:  # mirrored, so an outage starts from what this node last knew
                self.local._mirror_send(company_id, now, window)
            return allowed, retry_after

        return self._call(remote, lambda s: s.take_send_slot(company_id, limit, window, now))

    def clear_send_slots(self, company_id: str) -> None:
        self._write(lambda s: s.clear_send_slots(company_id))

    # Live pairing code ----------------------------------------------------------------------

    def set_pairing(self, company_id: str, data: dict[str, Any], ttl: float) -> None:
        self._write(lambda s: s.set_pairing(company_id, data, ttl))

    def get_pairing(self, company_id: str) -> dict[str, Any] | None:
        return self._call(lambda s: s.get_pairing(company_id), lambda s: s.get_pairing(company_id))

    def clear_pairing(self, company_id: str) -> None:
        self._write(lambda s: s.clear_pairing(company_id))

    # Failed authentications ------------------------------------------------------------------

    def count_failure(self, key: str, window: float) -> tuple[int, float]:
        """Count one failure under ``key`` (fixed window); (count, seconds left in the window)."""
        return self._call(lambda s: s.count_failure(key, window), lambda s: s.count_failure(key, window))

    def failures(self, key: str) -> tuple[int, float]:
        return self._call(lambda s: s.failures(key), lambda s: s.failures(key))

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
