"""A lease in Redis: one holder at a time across instances, taken over when it stops renewing."""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from bot.state.redis.client import DEFAULT_PREFIX, guarded, ms

_LEASE_HOLD = """
-- KEYS[1] the lease; ARGV[1] this holder's token, ARGV[2] ttl ms. Renew if ours, take if free.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    """A lease held by one process of all machines: renewed by each `hold()`, free `ttl_s` after the
    holder stops renewing (dies, hangs, loses Redis). Call `hold()` more often than `ttl_s`."""

    def __init__(self, client: Redis, name: str, ttl_s: float, *, prefix: str = DEFAULT_PREFIX) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.ttl_s = ttl_s
        self._client = client
        self._key = f"{prefix}lease:{name}"
        self._token = secrets.token_hex(16)
        self._hold = client.register_script(_LEASE_HOLD)
        self._release = client.register_script(_LEASE_RELEASE)

    @guarded
    async def hold(self) -> bool:
        """On StoreUnavailable: assume the lease is lost (another process may take it once it lapses), so
        stop the work it guards until `hold()` succeeds again."""
        return bool(await self._hold(keys=[self._key], args=[self._token, ms(self.ttl_s)]))

    @guarded
    async def release(self) -> None:
        """On StoreUnavailable: nothing to do; the lease lapses by itself after `ttl_s`."""
        await self._release(keys=[self._key], args=[self._token])


def lease_ttl_s(rules_interval_s: float) -> float:
    """Three missed ticks before another process takes over rule evaluation (never under 10 s)."""
    return max(10.0, 3 * rules_interval_s)
