"""Shared state: the same behaviour on a real redis-server and in-process,
and a SharedState that survives Redis going away and coming back."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.harness import free_port, wait_for
from tests.redis_server import RedisServer
from wafleet.storage.redis_state import RedisState
from wafleet.storage.shared_state import LocalState, SharedState, StateBackend

LIMIT, WINDOW, COOLDOWN = 5, 3600.0, 1800.0


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Backend:
    kind: str
    make: Callable[[], StateBackend]  # a new client of the same store ("another node", "after a restart")
    clock: FakeClock


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(params=["local", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    clock = FakeClock()
    if request.param == "local":
        state = LocalState(clock)
        yield Backend("local", lambda: state, clock)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    clients: list[RedisState] = []

    def make() -> RedisState:
        clients.append(RedisState(server.url, clock=clock))
        return clients[-1]

    make().client.flushdb()
    yield Backend("redis", make, clock)
    for client in clients:
        client.close()


@pytest.fixture
def company() -> str:
    return f"co-{uuid.uuid4().hex[:8]}"


def take(state: StateBackend, company: str, now: float) -> tuple[bool, float]:
    return state.take_pairing_slot(company, LIMIT, WINDOW, COOLDOWN, now)


# Pairing-code limit -------------------------------------------------------------------------


def test_sixth_code_in_the_window_is_refused_and_the_block_persists(backend: Backend, company: str) -> None:
    state, clock = backend.make(), backend.clock
    t0 = clock.now
    for i in range(LIMIT):
        assert take(state, company, clock.advance(60)) == (True, 0.0), f"code {i + 1}"
    assert state.blocked_until(company) is None

    tripped_at = clock.advance(60)
    allowed, retry_after = take(state, company, tripped_at)
    assert not allowed
    assert retry_after == pytest.approx(COOLDOWN, abs=1e-3)
    assert state.blocked_until(company) == pytest.approx(tripped_at + COOLDOWN, abs=1e-3)

    # Another client of the same store (for Redis: a new connection, as after a node restart)
    # sees the block, and every request while blocked is refused with the time left.
    other = backend.make()
    assert other is not state or backend.kind == "local"
    assert other.blocked_until(company) == pytest.approx(tripped_at + COOLDOWN, abs=1e-3)
    allowed, retry_after = take(other, company, clock.advance(600))
    assert not allowed and retry_after == pytest.approx(COOLDOWN - 600, abs=1e-3)
    allowed, retry_after = take(other, company, clock.advance(COOLDOWN - 600 - 1))
    assert not allowed and retry_after == pytest.approx(1, abs=1e-3)

    # The cooldown is over, but the hour since the first codes is not: asking again trips again,
    # so the limit of LIMIT codes per WINDOW is never exceeded.
    clock.advance(2)
    assert other.blocked_until(company) is None
    assert take(other, company, clock.now) == (False, pytest.approx(COOLDOWN, abs=1e-3))

    # Once the window has slid past the first codes and the block is over, codes flow again.
    clock.now = max(t0 + 60 + WINDOW, clock.now + COOLDOWN) + 1
    assert take(other, company, clock.now) == (True, 0.0)


def test_the_window_slides(backend: Backend, company: str) -> None:
    state, clock = backend.make(), backend.clock
    t0 = clock.now
    for i in range(LIMIT):
        assert take(state, company, t0 + i * 100)[0]
    # Exactly one window after the first code its slot is free again, and one more each 100 s.
    assert take(state, company, t0 + WINDOW) == (True, 0.0)
    assert take(state, company, t0 + WINDOW + 100) == (True, 0.0)
    assert state.blocked_until(company, now=t0 + WINDOW + 100) is None
    # The window is full again (codes at 200, 300, 400, 3600, 3700): the next one is refused.
    assert take(state, company, t0 + WINDOW + 150)[0] is False


def test_other_companies_are_not_affected(backend: Backend, company: str) -> None:
    state, clock = backend.make(), backend.clock
    for _ in range(LIMIT + 1):
        take(state, company, clock.advance(1))
    assert state.blocked_until(company) is not None
    assert take(state, company + "-other", clock.now) == (True, 0.0)
    assert state.blocked_until(company + "-other") is None


def _race(
    client: StateBackend,
    company: str,
    now: float,
    barrier: threading.Barrier,
    results: list[tuple[bool, float]],
) -> None:
    barrier.wait(timeout=5)
    results.append(take(client, company, now))


def test_two_clients_racing_for_the_last_slot_get_exactly_one(backend: Backend) -> None:
    a, b = backend.make(), backend.make()
    now = backend.clock.now
    for round_ in range(50):
        company = f"race-{round_}-{uuid.uuid4().hex[:6]}"
        for i in range(LIMIT - 1):
            assert take(a, company, now + i)[0]
        barrier = threading.Barrier(2)
        results: list[tuple[bool, float]] = []  # list.append is atomic
        threads = [
            threading.Thread(target=_race, args=(client, company, now + LIMIT, barrier, results))
            for client in (a, b)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert sorted(allowed for allowed, _ in results) == [False, True], f"round {round_}: {results}"
        assert a.blocked_until(company, now=now + LIMIT) is not None  # the loser tripped the limit


# QR attempts, live pairing code, session cache ----------------------------------------------


def expire(backend: Backend, ttl: float, gone: Callable[[], bool]) -> None:
    """Let ``ttl`` run out: the fake clock for local state, real time (polled) for Redis."""
    if backend.kind == "local":
        backend.clock.advance(ttl + 0.001)
        assert gone()
    else:
        wait_for(gone, timeout=5, what="the key to expire")


def test_qr_counter_increments_and_expires(backend: Backend, company: str) -> None:
    state = backend.make()
    ttl = 0.3
    assert state.qr_count(company) == 0
    assert [state.qr_attempt(company, ttl) for _ in range(3)] == [1, 2, 3]
    assert backend.make().qr_count(company) == 3
    expire(backend, ttl, lambda: state.qr_count(company) == 0)
    assert state.qr_attempt(company, 60) == 1
    state.reset_qr(company)
    assert state.qr_count(company) == 0


def test_failure_counter_is_shared_and_its_window_starts_with_the_first(backend: Backend) -> None:
    state = backend.make()
    key = f"addr:{uuid.uuid4().hex[:8]}"
    assert state.failures(key) == (0, 0.0)
    counts = [state.count_failure(key, 0.5)[0] for _ in range(3)]
    assert counts == [1, 2, 3]
    count, left = backend.make().failures(key)  # another node sees the same count
    assert count == 3 and 0 < left <= 0.5
    expire(backend, 0.5, lambda: state.failures(key)[0] == 0)
    assert state.count_failure(key, 60)[0] == 1


def test_qr_counter_expires_from_the_first_round(company: str) -> None:
    """Later rounds do not push the expiry back (on Redis: the PTTL check in the key-layout test)."""
    clock = FakeClock()
    state = LocalState(clock)
    state.qr_attempt(company, 100)
    clock.advance(60)
    assert state.qr_attempt(company, 100) == 2
    clock.advance(41)
    assert state.qr_count(company) == 0


def test_pairing_record_roundtrip_and_expiry(backend: Backend, company: str) -> None:
    state = backend.make()
    record = {"codeHash": "ab" * 32, "phone": "+15550001111", "expiresAt": 1_700_000_060_000, "round": 1}
    assert state.get_pairing(company) is None
    state.set_pairing(company, record, 60)
    got = state.get_pairing(company)
    assert got == record
    got["phone"] = "mutated"  # what a caller does with its copy does not change the store
    assert backend.make().get_pairing(company) == record
    state.clear_pairing(company)
    assert state.get_pairing(company) is None

    state.set_pairing(company, record, 0.3)
    expire(backend, 0.3, lambda: state.get_pairing(company) is None)


def test_redis_key_layout(redis_server: RedisServer, company: str) -> None:
    """The keys our users' previous system used, with expiries, so operators and older tools find
    them."""
    clock = FakeClock()
    state = RedisState(redis_server.url, clock=clock)
    raw = state.client
    try:
        state.qr_attempt(company, 60)
        state.qr_attempt(company, 120)
        assert raw.get(f"whatsapp:qr_count:{company}") == "2"
        assert 0 < raw.pttl(f"whatsapp:qr_count:{company}") <= 60_000  # from the first round

        for _ in range(LIMIT + 1):
            take(state, company, clock.advance(1))
        assert raw.zcard(f"whatsapp:rate_limit:{company}") == LIMIT
        assert 0 < raw.pttl(f"whatsapp:rate_limit:{company}") <= WINDOW * 1000
        assert float(raw.get(f"whatsapp:rate_limit:{company}:blocked")) == pytest.approx(clock.now + COOLDOWN)
        assert 0 < raw.pttl(f"whatsapp:rate_limit:{company}:blocked") <= COOLDOWN * 1000

        state.set_pairing(company, {"codeHash": "x"}, 60)
        assert raw.get(f"whatsapp:pairing:{company}") == '{"codeHash": "x"}'
        assert 0 < raw.pttl(f"whatsapp:pairing:{company}") <= 60_000

        for _ in range(3):
            state.take_send_slot(company, 2, 60.0)
        assert raw.zcard(f"whatsapp:rate_limit:{company}:send") == 2  # the refusal left no trace
        assert 0 < raw.pttl(f"whatsapp:rate_limit:{company}:send") <= 60_000
    finally:
        state.close()


# SharedState: the front, its fallback and its way back ---------------------------------------


def test_without_redis_configured_it_is_local(company: str) -> None:
    clock = FakeClock()
    state = SharedState(None, clock=clock)
    assert state.status() == "local"
    for _ in range(LIMIT):
        assert take(state, company, clock.advance(1))[0]
    assert not take(state, company, clock.advance(1))[0]
    assert state.qr_attempt(company, 60) == 1


def test_unreachable_redis_at_start_serves_locally(company: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wafleet.storage.shared_state")
    state = SharedState(f"redis://127.0.0.1:{free_port()}/0", clock=FakeClock(), probe_interval=0.05)
    assert state.status() == "degraded"
    assert state.qr_attempt(company, 60) == 1
    state.set_pairing(company, {"codeHash": "q"}, 60)
    assert state.get_pairing(company) == {"codeHash": "q"}
    assert state.status() == "degraded"
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1


def test_redis_stopped_mid_run_degrades_then_recovers(company: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wafleet.storage.shared_state")
    server = RedisServer().start()
    clock = FakeClock()
    state = SharedState(server.url, clock=clock, probe_interval=0.1, timeout=0.5)
    try:
        assert state.status() == "ok"
        for _ in range(3):
            assert take(state, company, clock.advance(1)) == (True, 0.0)
        assert state.qr_attempt(company, 600) == 1
        state.set_pairing(company, {"codeHash": "h1"}, 60)

        server.stop()

        # Every call still answers, from local state that starts where Redis left off.
        assert state.qr_attempt(company, 600) == 2
        assert state.status() == "degraded"
        assert state.get_pairing(company) == {"codeHash": "h1"}
        assert take(state, company, clock.advance(1)) == (True, 0.0)  # 4th
        assert take(state, company, clock.advance(1)) == (True, 0.0)  # 5th
        allowed, retry_after = take(state, company, clock.advance(1))
        assert not allowed and retry_after == pytest.approx(COOLDOWN)
        assert state.blocked_until(company) == pytest.approx(clock.now + COOLDOWN)
        for _ in range(20):  # many degraded calls, one log line
            state.get_pairing(company)
        assert state.status() == "degraded"
        assert len([r for r in caplog.records if "unreachable" in r.message]) == 1

        server.start()  # same port, empty (no persistence)

        wait_for(lambda: state.status() == "ok", timeout=10, what="status() back to ok")
        assert [r.message for r in caplog.records if "again" in r.message]
        assert state.get_pairing(company) is None  # the restarted Redis is empty: proof it is used
        # Back on Redis: what this object writes, another client of the server reads.
        state.set_pairing(company, {"codeHash": "h2"}, 60)
        other = RedisState(server.url)
        try:
            assert other.get_pairing(company) == {"codeHash": "h2"}
        finally:
            other.close()
    finally:
        state.close()
        server.close()


def test_errors_other_than_unreachable_propagate(redis_server: RedisServer, company: str) -> None:
    """A wrong type in Redis is a bug to see, not an outage to hide."""
    state = SharedState(redis_server.url)
    try:
        state.remote.client.set(f"whatsapp:rate_limit:{company}", "not a sorted set")
        with pytest.raises(redis.exceptions.ResponseError):
            take(state, company, 1.0)
        assert state.status() == "ok"
    finally:
        state.close()


def test_send_limit_counts_accepted_messages_in_a_sliding_window(backend: Backend, company: str) -> None:
    state = backend.make()
    assert [state.take_send_slot(company, 3, 60.0)[0] for _ in range(3)] == [True, True, True]
    backend.clock.advance(20)
    allowed, retry_after = state.take_send_slot(company, 3, 60.0)
    assert not allowed and retry_after == pytest.approx(40.0)
    assert state.take_send_slot("someone-else", 3, 60.0)[0]
    backend.clock.advance(40.001)  # the first three leave the window; the refusal spent nothing
    assert backend.make().take_send_slot(company, 3, 60.0)[0]


def test_sweep_drops_what_idle_companies_left_in_memory(company: str) -> None:
    clock = FakeClock()
    state = LocalState(clock)
    state.take_send_slot(company, 3, 60.0)
    state.take_pairing_slot(company, LIMIT, WINDOW, COOLDOWN)
    state.set_pairing(company, {"code": "ABCD-EFGH"}, ttl=60)
    assert state.sweep(keep=WINDOW) == 0 and state.size() == 3
    clock.advance(WINDOW + 1)
    assert state.sweep(keep=WINDOW) == 3 and state.size() == 0
    assert state.take_send_slot(company, 3, 60.0)[0]  # a company that comes back starts afresh
