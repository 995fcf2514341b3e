"""Alert state in Redis: delivery dedup, send budgets, open alerts and acks."""

from __future__ import annotations

import time
from hashlib import blake2b
from typing import cast

from redis.asyncio import Redis

from bot.alerting.model import AlertEvent, Changes, Notification, OpenAlert
from bot.state.memory.delivery import check_budget
from bot.state.protocols import DEDUP_TTL_S, Decision, StoreUnavailable
from bot.state.redis.client import CLOCK_LUA, DEFAULT_PREFIX, KEY_MARGIN_MS, Clock, guarded, ms, now_arg, text_of
from bot.state.redis.codecs import event_to_json, micros, open_alert


class RedisDedup:
    """Delivery keys remembered for `ttl_s` (SET NX): the first instance to see a delivery handles it."""

    def __init__(self, client: Redis, ttl_s: float = DEDUP_TTL_S, *, prefix: str = DEFAULT_PREFIX) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.ttl_s = ttl_s
        self._client = client
        self._prefix = f"{prefix}dedup:"

    @guarded
    async def seen(self, key: str) -> bool:
        """On StoreUnavailable: unknown; treat it as new (a repeat may text twice, which beats never)."""
        if not key:
            return False
        digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()  # keys can be long
        first = await self._client.set(self._prefix + digest, "1", nx=True, px=ms(self.ttl_s))
        return not first


_BUDGET_TAKE = (
    CLOCK_LUA
    + """
-- KEYS[1] when each text in the window went out (a list), KEYS[2] when the summary went out
-- ARGV[1] max texts, ARGV[2] window seconds, ARGV[3] now ('' = Redis's clock)
local now, now_text = clock(ARGV[3])
local window = tonumber(ARGV[2])
local ttl = math.ceil(window * 1000) + 1000
while true do
  local first = redis.call('LINDEX', KEYS[1], 0)
  if not first or tonumber(first) > now - window then break end
  redis.call('LPOP', KEYS[1])
end
local summary = redis.call('GET', KEYS[2])
if summary then
  if tonumber(summary) > now - window then return 'hold' end
  redis.call('DEL', KEYS[2])
end
redis.call('RPUSH', KEYS[1], now_text)
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[1]) then return 'send' end
redis.call('SET', KEYS[2], now_text, 'PX', ttl)
return 'summary'
"""
)


class RedisBudget:
    """At most `max_texts` alert texts per number in any `window_s`, the last a summary, for all instances.

    The same decisions as `bot.alerting.recipients.SendBudget`: "send" while fewer than `max_texts - 1`
    went out in the window, then one "summary", then "hold" until the summary is `window_s` old.
    """

    def __init__(self, client: Redis, max_texts: int, window_s: float, *, prefix: str = DEFAULT_PREFIX,
                 clock: Clock | None = None) -> None:  # fmt: skip
        check_budget(max_texts, window_s)
        self.max_texts = max_texts
        self.window_s = window_s
        self._client = client
        self._prefix = f"{prefix}budget:"
        self._clock = clock
        self._take = client.register_script(_BUDGET_TAKE)

    @guarded
    async def take(self, number: str) -> Decision:
        """On StoreUnavailable: nothing was counted; a caller should send (an outage must not silence pages)."""
        key = self._prefix + number
        args: list[str | int] = [self.max_texts, repr(float(self.window_s)), now_arg(self._clock)]
        decision = text_of(await self._take(keys=[key, key + ":summary"], args=args))
        if decision not in ("send", "summary", "hold"):
            raise StoreUnavailable("Redis answered something unexpected")
        return cast(Decision, decision)


_ALERTS_UPDATE = """
-- KEYS[1] events by fingerprint, KEYS[2] first seen, KEYS[3] acks ('<at> <who>'), KEYS[4] order of last
-- update (sorted set), KEYS[5] the update counter
-- ARGV[1] now, ARGV[2] tombstone seconds, ARGV[3] most alerts kept, ARGV[4] tombstone key prefix,
-- ARGV[5] tombstone ttl ms; then per alert: fingerprint, status, start us, end us (or start), event JSON.
-- Returns per alert 'f' (firing: texted), 'r' (resolved), 'q' (quiet: recorded, not texted).
local now = tonumber(ARGV[1])
local oldest_tomb = now - tonumber(ARGV[2])
local codes = {}
for i = 6, #ARGV, 5 do
  local fp, status, starts, ended, event = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local tomb_key = ARGV[4] .. fp
  local known = redis.call('HEXISTS', KEYS[1], fp) == 1
  local code
  if status == 'resolved' then
    redis.call('SET', tomb_key, ARGV[1] .. ' ' .. ended, 'PX', ARGV[5])
    if known then
      redis.call('HDEL', KEYS[1], fp)
      redis.call('HDEL', KEYS[2], fp)
      redis.call('HDEL', KEYS[3], fp)
      redis.call('ZREM', KEYS[4], fp)
      code = 'r'
    else
      code = 'q'
    end
  else
    local stale = false
    if not known then
      local tomb = redis.call('GET', tomb_key)
      if tomb then
        local space = string.find(tomb, ' ', 1, true)
        local at, tomb_end = tonumber(string.sub(tomb, 1, space - 1)), string.sub(tomb, space + 1)
        if at >= oldest_tomb then
          stale = tomb_end == '' or starts == '' or tonumber(starts) <= tonumber(tomb_end)
        end
      end
    end
    if stale then
      code = 'q'
    else
      redis.call('HSET', KEYS[1], fp, event)
      if known then
        code = redis.call('HEXISTS', KEYS[3], fp) == 1 and 'q' or 'f'
      else
        redis.call('HSET', KEYS[2], fp, ARGV[1])
        redis.call('DEL', tomb_key)
        code = 'f'
      end
      redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), fp)
    end
  end
  codes[#codes + 1] = code
end
local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[3])
if extra > 0 then
  for _, fp in ipairs(redis.call('ZRANGE', KEYS[4], 0, extra - 1)) do
    redis.call('HDEL', KEYS[1], fp)
    redis.call('HDEL', KEYS[2], fp)
    redis.call('HDEL', KEYS[3], fp)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, extra - 1)
end
return codes
"""
_ALERTS_ACK = """
-- KEYS as for update; ARGV[1] fingerprint, ARGV[2] who, ARGV[3] now
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
local ack = ARGV[3] .. ' ' .. ARGV[2]
redis.call('HSET', KEYS[3], ARGV[1], ack)
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1]), ack}
"""
_ALERTS_UNACK = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
return redis.call('HDEL', KEYS[3], ARGV[1])
"""


class RedisAlertBook:
    """Open alerts, acks and tombstones for every instance; the same answers as `bot.alerting.state.AlertBook`.

    `update` is one script, so of two instances handling the same notification only one sees an alert
    as new (the other sees the repeat), and only one reports a resolution.
    """

    def __init__(
        self, client: Redis, tombstone_s: float = 3600.0, max_alerts: int = 50_000, *,
        prefix: str = DEFAULT_PREFIX, clock: Clock = time.time,
    ) -> None:  # fmt: skip
        self.tombstone_s = tombstone_s
        self.max_alerts = max_alerts
        self._client = client
        self._clock = clock
        self._keys = [f"{prefix}alerts:{part}" for part in ("events", "first", "acks", "order", "updates")]
        self._tombs = f"{prefix}alerts:tomb:"
        self._update = client.register_script(_ALERTS_UPDATE)
        self._ack = client.register_script(_ALERTS_ACK)
        self._unack = client.register_script(_ALERTS_UNACK)

    @guarded
    async def update(self, notification: Notification) -> Changes:
        """What this notification changed. On StoreUnavailable: unknown; the notification itself is the
        best guess (text its firing and resolved alerts)."""
        args: list[str | int] = [repr(self._clock()), repr(float(self.tombstone_s)), self.max_alerts, self._tombs,
                                 ms(self.tombstone_s) + KEY_MARGIN_MS]  # fmt: skip
        for event in notification.alerts:
            ended = micros(event.ends_at or event.starts_at) if event.status == "resolved" else ""
            args += [event.fingerprint, event.status, micros(event.starts_at), ended, event_to_json(event)]
        codes = await self._update(keys=self._keys, args=args)
        firing: list[AlertEvent] = []
        resolved: list[AlertEvent] = []
        quiet: list[AlertEvent] = []
        lists = {"f": firing, "r": resolved, "q": quiet}
        for event, code in zip(notification.alerts, codes, strict=True):
            lists[text_of(code)].append(event)
        return Changes(tuple(firing), tuple(resolved), tuple(quiet))

    @guarded
    async def get(self, fingerprint: str) -> OpenAlert | None:
        """On StoreUnavailable: unknown; say alert state is unavailable rather than "no such alert"."""
        events, first, acks = self._keys[:3]
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hget(events, fingerprint)
            pipe.hget(first, fingerprint)
            pipe.hget(acks, fingerprint)
            event, seen, ack = await pipe.execute()
        return None if event is None or seen is None else open_alert(event, seen, ack)

    @guarded
    async def open_alerts(self) -> list[OpenAlert]:
        """Oldest update first. On StoreUnavailable: unknown (not "nothing open")."""
        events_key, first_key, acks_key, order_key = self._keys[:4]
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrange(order_key, 0, -1)
            pipe.hgetall(events_key)
            pipe.hgetall(first_key)
            pipe.hgetall(acks_key)
            order, events, first, acks = await pipe.execute()
        found = []
        for fingerprint in order:
            event, seen = events.get(fingerprint), first.get(fingerprint)
            if event is not None and seen is not None:
                found.append(open_alert(event, seen, acks.get(fingerprint)))
        return found

    async def by_name(self, name: str) -> list[OpenAlert]:
        """On StoreUnavailable: as `open_alerts`."""
        wanted = name.lower()
        return [a for a in await self.open_alerts() if a.event.name.lower() == wanted]

    @guarded
    async def ack(self, fingerprint: str, who: str) -> OpenAlert | None:
        """On StoreUnavailable: not acknowledged; tell the person to try again."""
        found = await self._ack(keys=self._keys[:3], args=[fingerprint, who, repr(self._clock())])
        if not found:
            return None
        event, seen, ack = found
        return open_alert(event, seen, ack)

    @guarded
    async def unack(self, fingerprint: str) -> bool:
        """On StoreUnavailable: the ack stays; tell the person to try again."""
        return bool(await self._unack(keys=self._keys[:3], args=[fingerprint]))
