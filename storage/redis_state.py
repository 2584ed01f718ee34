"""Shared state on Redis: what several nodes must agree on.

Keys keep the names our users' previous system used, so operators and older tools find them:

    whatsapp:qr_count:{companyId}           string counter, expires with the QR window
    whatsapp:rate_limit:{companyId}         sorted set of pairing codes handed out (score = time)
    whatsapp:rate_limit:{companyId}:blocked the block's end (epoch seconds), expires with it
    whatsapp:rate_limit:{companyId}:send    sorted set of messages accepted by send (score = time)
    whatsapp:pairing:{companyId}            JSON of the live pairing code's record, expires with it
    wafleet:auth_failures:{key}             failed authentications in the current window

Every call may raise ``redis.exceptions.ConnectionError`` or ``redis.exceptions.TimeoutError``:
deciding what to do without Redis is ``SharedState``'s job, not this class's. Timeouts are short
and there is one immediate retry (a pooled connection that died with a Redis restart), so a dead
Redis costs a caller about a second, not redis-py's default of four attempts with backoff.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PREFIX = "whatsapp"


def qr_key(company_id: str) -> str:
    return f"{PREFIX}:qr_count:{company_id}"


def rate_key(company_id: str) -> str:
    return f"{PREFIX}:rate_limit:{company_id}"


def blocked_key(company_id: str) -> str:
    return f"{PREFIX}:rate_limit:{company_id}:blocked"


def send_key(company_id: str) -> str:
    return f"{PREFIX}:rate_limit:{company_id}:send"


def pairing_key(company_id: str) -> str:
    return f"{PREFIX}:pairing:{company_id}"


def failures_key(key: str) -> str:
    return f"wafleet:auth_failures:{key}"


def _ms(seconds: float) -> int:
    """Redis expiries are whole milliseconds and must be positive."""
    return max(1, math.ceil(seconds * 1000))


# One script, so that "is it blocked, how many in the window, take one or block" is a single step
# for every node: two nodes racing for the last slot cannot both see room. The time comes from
# the caller (testable, and the same clock the caller shows in blockedUntil); the real-time
# expiries only collect garbage. Numbers come back as strings: Lua numbers returned to Redis are
# truncated to integers.
_TAKE_SLOT = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cooldown = tonumber(ARGV[4])
local until_ = tonumber(redis.call('GET', KEYS[2]))
if until_ then
  if until_ > now then
    return {0, string.format('%.6f', until_ - now)}
  end
  redis.call('DEL', KEYS[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  redis.call('SET', KEYS[2], string.format('%.6f', now + cooldown), 'PX', ARGV[7])
  return {0, string.format('%.6f', cooldown)}
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, '0'}
"""


# The send limit: a sliding log of accepted messages. When full, the wait is until enough of the
# oldest leave the window for one more to fit.
_TAKE_SEND = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {0, string.format('%.6f', tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, '0'}
"""


class RedisState:
    def __init__(
        self, url: str, *, timeout: float = 1.0, clock: Callable[[], float] = time.time, **kwargs: Any
    ) -> None:
        self.clock = clock
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
            **kwargs,
        )
        self._take_slot = self.client.register_script(_TAKE_SLOT)
        self._take_send = self.client.register_script(_TAKE_SEND)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def close(self) -> None:
        self.client.close()

    # QR rounds ------------------------------------------------------------------------------

    def qr_attempt(self, company_id: str, ttl: float) -> int:
        """Count one QR round; the counter forgets itself ``ttl`` seconds after the first round."""
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(qr_key(company_id))
        pipe.pexpire(qr_key(company_id), _ms(ttl), nx=True)
        count, _ = pipe.execute()
        return int(count)

    def qr_count(self, company_id: str) -> int:
        return int(self.client.get(qr_key(company_id)) or 0)

    def count_failure(self, key: str, window: float) -> tuple[int, float]:
        """One more failure; the window starts with the first and ends ``window`` seconds later."""
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(failures_key(key))
        pipe.pexpire(failures_key(key), _ms(window), nx=True)
        pipe.pttl(failures_key(key))
        count, _, ttl = pipe.execute()
        return int(count), max(0.0, int(ttl) / 1000)

    def failures(self, key: str) -> tuple[int, float]:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(failures_key(key))
        pipe.pttl(failures_key(key))
        count, ttl = pipe.execute()
        return int(count or 0), max(0.0, int(ttl) / 1000)

    def reset_qr(self, company_id: str) -> None:
        self.client.delete(qr_key(company_id))

    # Pairing-code limit ---------------------------------------------------------------------

    def take_pairing_slot(
        self, company_id: str, limit: int, window: float, cooldown: float, now: float | None = None
    ) -> tuple[bool, float]:
        now = self.clock() if now is None else now
        member = f"{now:.6f}:{uuid.uuid4().hex}"  # unique even for two codes in the same microsecond
        allowed, retry_after = self._take_slot(
            keys=[rate_key(company_id), blocked_key(company_id)],
            args=[
                repr(float(now)),
                limit,
                repr(float(window)),
                repr(float(cooldown)),
                member,
                _ms(window),
                _ms(cooldown),
            ],
        )
        return bool(int(allowed)), float(retry_after)

    def blocked_until(self, company_id: str, now: float | None = None) -> float | None:
        value = self.client.get(blocked_key(company_id))
        if value is None:
            return None
        until = float(value)
        return until if until > (self.clock() if now is None else now) else None

    # Send limit ------------------------------------------------------------------------------

    def take_send_slot(
        self, company_id: str, limit: int, window: float, now: float | None = None
    ) -> tuple[bool, float]:
        now = self.clock() if now is None else now
        allowed, retry_after = self._take_send(
            keys=[send_key(company_id)],
            args=[repr(float(now)), limit, repr(float(window)), f"{now:.6f}:{uuid.uuid4().hex}", _ms(window)],
        )
        return bool(int(allowed)), float(retry_after)

    def clear_send_slots(self, company_id: str) -> None:
        self.client.delete(send_key(company_id))

    # Live pairing code ----------------------------------------------------------------------

    def set_pairing(self, company_id: str, data: dict[str, Any], ttl: float) -> None:
        self.client.set(pairing_key(company_id), json.dumps(data), px=_ms(ttl))

    def get_pairing(self, company_id: str) -> dict[str, Any] | None:
        raw = self.client.get(pairing_key(company_id))
        return None if raw is None else json.loads(raw)

    def clear_pairing(self, company_id: str) -> None:
        self.client.delete(pairing_key(company_id))
