"""Rate limits and MessageSid idempotency in Redis: atomic across instances (one Lua script each)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from bot.state.protocols import Admitted, ReplyPending, Verdict
from bot.state.redis.client import CLOCK_LUA, DEFAULT_PREFIX, Batched, Clock, guarded, ms, now_arg, text_of
from bot.state.redis.conversation import RedisContextStore, RedisPageStore
from intents.models import Context

_TAKE_LUA = """
-- take(key, capacity, tokens a second, now): one token from a bucket (a hash: tokens, at, warned)
local function take(key, capacity, rate, now)
  local bucket = redis.call('HMGET', key, 'tokens', 'at', 'warned')
  local tokens = tonumber(bucket[1]) or capacity
  local at = tonumber(bucket[2]) or now
  local warned = bucket[3] == '1'
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
  local verdict
  if tokens >= 1 then
    tokens = tokens - 1
    warned = false
    verdict = 'allow'
  elseif warned then
    verdict = 'drop'
  else
    warned = true
    verdict = 'warn'
  end
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', math.max(at, now)),
             'warned', warned and '1' or '0')
  -- Once full again the bucket is the same as a new one: let it go then (within a year, for tiny rates).
  local refill_ms = math.min(math.ceil((capacity - tokens) / rate * 1000) + 1000, 31536000000)
  redis.call('PEXPIRE', key, string.format('%d', refill_ms))
  return verdict
end
-- limit(number key, global key, capacity, rate, global capacity, global rate, now): the number's bucket,
-- then (only if it allows) the global one
local function limit(key, global, capacity, rate, gcapacity, grate, now)
  local verdict = take(key, capacity, rate, now)
  if verdict ~= 'allow' then return verdict end
  if take(global, gcapacity, grate, now) == 'allow' then return 'allow' end
  return 'drop'
end
"""
_RATE_CHECK = (
    CLOCK_LUA
    + _TAKE_LUA
    + """
-- KEYS[1] the number's bucket, KEYS[2] the global bucket; ARGV[1..4] capacities and rates, ARGV[5] now
return limit(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
             clock(ARGV[5]))
"""
)
_ADMIT = (
    CLOCK_LUA
    + _TAKE_LUA
    + """
-- One round trip in front of every text: the MessageSid, then the rate limits, then the claim.
-- KEYS[1] the sid ('' for none), KEYS[2] the number's bucket, KEYS[3] the global bucket, KEYS[4] the
-- number's conversation context
-- ARGV[1..4] capacities and rates, ARGV[5] now, ARGV[6] this claim's marker, ARGV[7] marker ttl ms
-- Returns {'seen', value} (answered: 'd' .. reply; running elsewhere: 'r' ..), {verdict} when limited,
-- {'claimed', context} when this call owns the sid now, {'allow', context} without a sid (context false
-- when there is none).
if KEYS[1] ~= '' then
  local value = redis.call('GET', KEYS[1])
  if value then return {'seen', value} end
end
local verdict = limit(KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                      tonumber(ARGV[4]), clock(ARGV[5]))
if verdict ~= 'allow' then return {verdict} end
local context = redis.call('GET', KEYS[4])
if KEYS[1] == '' then return {'allow', context} end
redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[7])
return {'claimed', context}
"""
)


_SETTLE = """
-- After the answer, one round trip: the user's pages for "more", then the reply kept for repeats.
-- KEYS[1] the pages list ('' = leave it), KEYS[2] the sid ('' = none)
-- ARGV[1] pages ttl ms, ARGV[2] 'd' .. reply, ARGV[3] reply ttl ms, ARGV[4..] the pages
if KEYS[1] ~= '' then
  redis.call('DEL', KEYS[1])
  if #ARGV > 3 then
    redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
end
if KEYS[2] ~= '' then
  local value = redis.call('GET', KEYS[2])
  -- The first reply stays: a late second owner (after a marker expired) does not replace it.
  if not (value and string.sub(value, 1, 1) == 'd') then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  end
end
return 1
"""


class RedisRateLimiter:
    """A token bucket per number and one for everyone, shared by every instance (one script, atomic).

    As `bot.state.memory.limits.InMemoryRateLimiter`: `capacity` texts at once, refilled at `per_minute`; the first
    text over the limit gets WARN ("slow down") once per empty-bucket episode, later ones DROP; a text
    the number's bucket allows still needs a token from the global bucket, else it is dropped.
    """

    def __init__(
        self, client: Redis, capacity: float, per_minute: float, *, global_capacity: float,
        global_per_minute: float, prefix: str = DEFAULT_PREFIX, clock: Clock | None = None,
    ) -> None:  # fmt: skip
        if min(capacity, per_minute, global_capacity, global_per_minute) <= 0:
            raise ValueError("capacities and rates must be positive")
        self._client = client
        self._prefix = f"{prefix}rate:"
        self._args = [repr(float(capacity)), repr(per_minute / 60.0), repr(float(global_capacity)),
                      repr(global_per_minute / 60.0)]  # fmt: skip
        self.clock = clock
        self._check = client.register_script(_RATE_CHECK)

    @property
    def args(self) -> list[str]:
        """The scripts' capacity and rate arguments."""
        return self._args

    def key(self, number: str) -> str:
        return self._prefix + number

    @guarded
    async def check(self, number: str) -> Verdict:
        """On StoreUnavailable: nothing was counted; a caller may let the text through (the backends have
        their own limits) or drop it, but should not warn the user about a limit it could not check."""
        verdict = await self._check(keys=[self._prefix + number, self._prefix + "*"],
                                    args=[*self._args, now_arg(self.clock)])  # fmt: skip
        return Verdict(text_of(verdict))


# --- MessageSid idempotency --------------------------------------------------------------------------

_SID_CLAIM = """
-- KEYS[1] the sid: 'd' .. reply when answered, 'r' .. token while an instance runs it
-- ARGV[1] this claim's marker, ARGV[2] marker ttl ms. Returns nil when this claim owns the sid now.
local value = redis.call('GET', KEYS[1])
if value then return value end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
_SID_FINISH = """
-- The first reply stays: a late second owner (after a marker expired) does not replace it.
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 1) == 'd' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_SID_ABANDON = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisIdempotency:
    """The first reply to each MessageSid for `ttl_s`, shared by every instance.

    A claim is a "running" marker set only if the sid is unknown (atomic), with a short TTL
    (`running_ttl_s`) so the claim of an instance that died mid-message lapses and a repeat can run it.
    Claims that find the marker poll for the reply, backing off to `poll_max_s`, for at most `wait_s`:
    Twilio gives up on a webhook after 15 s, so waiting longer helps nobody.
    """

    def __init__(
        self, client: Redis, ttl_s: float = 86_400, *, running_ttl_s: float = 30.0, wait_s: float = 15.0,
        poll_max_s: float = 0.1, prefix: str = DEFAULT_PREFIX,
    ) -> None:  # fmt: skip
        self.ttl_s = ttl_s
        self.running_ttl_s = running_ttl_s
        self.wait_s = wait_s
        self.poll_max_s = poll_max_s
        self._client = client
        self._prefix = f"{prefix}sid:"
        self._claim = client.register_script(_SID_CLAIM)
        self._finish = client.register_script(_SID_FINISH)
        self._abandon = client.register_script(_SID_ABANDON)
        self._owned: dict[str, str] = {}
        """This process's markers by sid, so abandon() removes only its own claim."""

    def key(self, sid: str) -> str:
        return self._prefix + sid

    def owned(self, sid: str, marker: str | None) -> None:
        """A claim made (a marker) or finished (None) elsewhere (`RedisAdmission`)."""
        if marker is None:
            self._owned.pop(sid, None)
        else:
            self._owned[sid] = marker

    @guarded
    async def claim_if_done(self, sid: str) -> str | None:
        """On StoreUnavailable: unknown whether it was answered; go on to `claim` (which will fail alike)."""
        value = await self._client.get(self._prefix + sid)
        text = None if value is None else text_of(value)
        return text[1:] if text is not None and text.startswith("d") else None

    @guarded
    async def claim(self, sid: str) -> str | None:
        """None if this call owns `sid` (run it, then `finish` or `abandon`), else the first reply.

        On ReplyPending (a StoreUnavailable): another instance holds the sid and has not answered within
        `wait_s`; it will answer Twilio itself, so reply nothing. On any other StoreUnavailable: nothing is
        known; running the message unguarded risks a double answer only for a retried webhook.
        """
        key = self._prefix + sid
        marker = "r" + secrets.token_hex(8)
        deadline = time.monotonic() + self.wait_s
        delay = 0.005
        while True:
            value = await self._claim(keys=[key], args=[marker, ms(self.running_ttl_s)])
            if value is None:
                self._owned[sid] = marker
                return None
            text = text_of(value)
            if text.startswith("d"):
                return text[1:]
            if time.monotonic() >= deadline:
                raise ReplyPending("another instance is still answering this message")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_max_s)

    @guarded
    async def finish(self, sid: str, reply: str) -> None:
        """On StoreUnavailable: the reply was probably not kept; a repeat of the webhook will run again."""
        self._owned.pop(sid, None)
        await self._finish(keys=[self._prefix + sid], args=["d" + reply, ms(self.ttl_s)])

    @guarded
    async def abandon(self, sid: str) -> None:
        """On StoreUnavailable: the claim lapses by itself after `running_ttl_s`."""
        marker = self._owned.pop(sid, None)
        if marker is not None:
            await self._abandon(keys=[self._prefix + sid], args=[marker])


class RedisAdmission:
    """The MessageSid check, both rate limits and the claim in one script: one round trip per text
    instead of three (what a worker on Redis spends per text is mostly round trips).

    The same decisions as `LocalAdmission` over the other two stores, which it shares keys and settings
    with: a sid already answered gets its first reply (nothing counted); a limited text is not claimed
    (a retry may run once the bucket refills); a sid another instance is still running falls back to
    `RedisIdempotency.claim`, which waits for that reply.
    """

    def __init__(
        self, client: Redis, limiter: RedisRateLimiter, idempotency: RedisIdempotency, pages: RedisPageStore,
        contexts: RedisContextStore,
    ) -> None:  # fmt: skip
        self._contexts = contexts
        self._limiter = limiter
        self._idempotency = idempotency
        self._pages = pages
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._batched = Batched(client)

    @guarded
    async def admit(self, sid: str, number: str) -> Admitted:
        """On StoreUnavailable: nothing was counted or claimed (see `RedisRateLimiter.check`)."""
        limiter, idempotency = self._limiter, self._idempotency
        marker = "r" + secrets.token_hex(8) if sid else ""
        keys = [idempotency.key(sid) if sid else "", limiter.key(number), limiter.key("*"), self._contexts.key(number)]
        args = [*limiter.args, now_arg(limiter.clock), marker, ms(idempotency.running_ttl_s)]
        answer = await self._batched.call(self._admit, keys, args)
        outcome = text_of(answer[0])
        if outcome == "seen":
            value = text_of(answer[1])
            if value.startswith("d"):
                return Admitted(earlier=value[1:])
            earlier = await idempotency.claim(sid)  # another instance runs it: wait for its reply
            return Admitted(earlier=earlier, claimed=earlier is None)
        if outcome in ("claimed", "allow"):
            if outcome == "claimed":
                idempotency.owned(sid, marker)
            raw = answer[1] if len(answer) > 1 else None
            context = self._contexts.decode(raw) if raw else Context()
            return Admitted(claimed=outcome == "claimed", context=context)
        return Admitted(verdict=Verdict(outcome))

    @guarded
    async def settle(self, user: str, pages: Sequence[str] | None, sid: str | None, reply: str) -> None:
        """As `RedisPageStore.keep` then `RedisIdempotency.finish`, in one script."""
        idempotency = self._idempotency
        if sid:
            idempotency.owned(sid, None)
        keys = [self._pages.key(user) if pages is not None else "", idempotency.key(sid) if sid else ""]
        args = [ms(self._pages.ttl_s), "d" + reply, ms(idempotency.ttl_s), *(pages or ())]
        await self._batched.call(self._settle, keys, args)
