"""Escalation timelines and schedule overrides in Redis, for every instance (the same answers as
`bot.state.memory.oncall`).

Per escalation a hash (`oncall:t:<fingerprint>`: alert, policy, started, next step, due, state, acker and
the live claim) and a list of events; a sorted set of due times finds what the ticker must run without
reading the rest, so a pass costs the same with ten or ten thousand escalations waiting. Every change of
state is one script, so of two instances (two tickers during a lease hand-over, a ticker and an `escalate`)
exactly one claims a step, a lapsed claim is taken over once, and an ack or a resolution lands once.
An escalation lives a week at most, an ended one a day.
"""

from __future__ import annotations

import json
from typing import cast

from redis.asyncio import Redis

from bot.oncall.escalation import KEEP_S, Event, Kind, Timeline
from bot.oncall.schedules import Override
from bot.state.redis.client import DEFAULT_PREFIX, dumps, guarded, ms, text_of
from bot.state.redis.codecs import as_object, event_from_json, event_to_json

MAX_AGE_S = 7 * 86_400.0
"""An escalation that never resolves (its source forgot it) is dropped after this."""
MAX_EVENTS = 200
MAX_OVERRIDES = 100

_START = """
-- KEYS[1] the timeline, KEYS[2] its events, KEYS[3] due times, KEYS[4] every timeline by start
-- ARGV[1] fingerprint, ARGV[2] alert JSON, ARGV[3] policy, ARGV[4] started, ARGV[5] due, ARGV[6] max age ms
local state = redis.call('HGET', KEYS[1], 'x')
if state and state ~= 'resolved' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'a', ARGV[2], 'p', ARGV[3], 'st', ARGV[4], 's', '0', 'd', ARGV[5], 'x', 'open')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (tonumber(ARGV[4]) - tonumber(ARGV[6]) / 1000))
return 1
"""
_CLAIM = """
-- KEYS[1] the timeline, KEYS[2] its events, KEYS[3] due times; ARGV[1] step ('' = whichever is next), ARGV[2] now,
-- ARGV[3] owner, ARGV[4] until, ARGV[5] '1' to run before it is due, ARGV[6] fingerprint.
-- Returns the timeline as claimed (fields, events), or false.
local state = redis.call('HGET', KEYS[1], 'x')
if not state then
  redis.call('ZREM', KEYS[3], ARGV[6])  -- expired (a week old) while due: forget it
  return false
end
if state ~= 'open' then return false end
local due = redis.call('HGET', KEYS[1], 'd')
if not due or due == '' then return false end
local step = redis.call('HGET', KEYS[1], 's')
if ARGV[1] ~= '' and step ~= ARGV[1] then return false end
if ARGV[5] ~= '1' and tonumber(due) > tonumber(ARGV[2]) then return false end
local claim = redis.call('HGET', KEYS[1], 'c')
if claim then
  local space = string.find(claim, ' ', 1, true)
  if string.sub(claim, 1, space - 1) ~= ARGV[3] and tonumber(string.sub(claim, space + 1)) > tonumber(ARGV[2]) then
    return false
  end
end
redis.call('HSET', KEYS[1], 'c', ARGV[3] .. ' ' .. ARGV[4])
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
"""
_RECORD = """
-- KEYS[1] the timeline, KEYS[2] its events; ARGV[1] event JSON, ARGV[2] most events kept
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
_COMPLETE = """
-- KEYS[1] the timeline, KEYS[2] due times; ARGV[1] fingerprint, ARGV[2] step, ARGV[3] owner, ARGV[4] next due
local claim = redis.call('HGET', KEYS[1], 'c')
if not claim or string.sub(claim, 1, string.find(claim, ' ', 1, true) - 1) ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[1], 's') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'c')
redis.call('HSET', KEYS[1], 's', tostring(tonumber(ARGV[2]) + 1))
local state = redis.call('HGET', KEYS[1], 'x')
redis.call('HSET', KEYS[1], 'd', state == 'resolved' and '' or ARGV[4])  -- an acked one keeps it for an undo
if state == 'open' and ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"""
_ACK = """
-- KEYS[1] the timeline, KEYS[2] its events, KEYS[3] due times; ARGV[1] fingerprint, ARGV[2] who, ARGV[3] event
if redis.call('HGET', KEYS[1], 'x') ~= 'open' then return 0 end
redis.call('HSET', KEYS[1], 'x', 'acked', 'k', ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
_UNACK = """
-- as _ACK, reopening where it stood
if redis.call('HGET', KEYS[1], 'x') ~= 'acked' then return 0 end
redis.call('HSET', KEYS[1], 'x', 'open')
redis.call('HDEL', KEYS[1], 'k')
local due = redis.call('HGET', KEYS[1], 'd')
if due and due ~= '' then redis.call('ZADD', KEYS[3], due, ARGV[1]) end
redis.call('RPUSH', KEYS[2], ARGV[3])
return 1
"""
_RESOLVE = """
-- KEYS as _ACK; ARGV[1] fingerprint, ARGV[2] event, ARGV[3] keep ms
local state = redis.call('HGET', KEYS[1], 'x')
if not state or state == 'resolved' then return 0 end
redis.call('HSET', KEYS[1], 'x', 'resolved', 'd', '')
redis.call('HDEL', KEYS[1], 'c')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""


def event_json(event: Event) -> str:
    return dumps({"t": event.at, "k": event.kind, "s": event.step, "n": event.name, "m": event.number,
                  "d": event.detail})  # fmt: skip


def event_from(text: str | bytes) -> Event:
    data = as_object(json.loads(text))
    return Event(float(cast(float, data["t"])), cast(Kind, str(data["k"])), int(cast(int, data["s"])),
                 str(data["n"]), str(data["m"]), str(data["d"]))  # fmt: skip


def override_json(override: Override) -> str:
    return dumps({"s": override.schedule, "m": override.member, "a": override.start, "e": override.end,
                  "t": override.made, "b": override.by})  # fmt: skip


def override_from(text: str | bytes) -> Override:
    data = as_object(json.loads(text))
    return Override(str(data["s"]), str(data["m"]), float(cast(float, data["a"])), float(cast(float, data["e"])),
                    float(cast(float, data["t"])), str(data["b"]))  # fmt: skip


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class RedisEscalations:
    """`EscalationStore` in Redis: one script per change of state."""

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._client = client
        self._base = f"{prefix}oncall:"
        self._due = f"{self._base}due"
        self._all = f"{self._base}all"
        self._start = client.register_script(_START)
        self._claim = client.register_script(_CLAIM)
        self._record = client.register_script(_RECORD)
        self._complete = client.register_script(_COMPLETE)
        self._ack = client.register_script(_ACK)
        self._unack = client.register_script(_UNACK)
        self._resolve = client.register_script(_RESOLVE)

    def _keys(self, fingerprint: str) -> tuple[str, str]:
        return f"{self._base}t:{fingerprint}", f"{self._base}e:{fingerprint}"

    @guarded
    async def start(self, timeline: Timeline) -> bool:
        """On StoreUnavailable: not started; the alert is broadcast instead (an outage must not silence it)."""
        hash_key, events_key = self._keys(timeline.fingerprint)
        alert = event_to_json(timeline.alert)
        args: list[str | int] = [timeline.fingerprint, alert, timeline.policy, repr(timeline.started),
                                 _number(timeline.due), ms(MAX_AGE_S)]  # fmt: skip
        return bool(await self._start(keys=[hash_key, events_key, self._due, self._all], args=args))

    @guarded
    async def get(self, fingerprint: str) -> Timeline | None:
        hash_key, events_key = self._keys(fingerprint)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(hash_key)
            pipe.lrange(events_key, 0, -1)
            fields, events = await pipe.execute()
        return _timeline(fields, events)

    @guarded
    async def recent(self) -> list[Timeline]:
        fingerprints = [text_of(cast(str, f)) for f in await self._client.zrange(self._all, 0, -1)]
        if not fingerprints:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                hash_key, events_key = self._keys(fingerprint)
                pipe.hgetall(hash_key)
                pipe.lrange(events_key, 0, -1)
            answers = await pipe.execute()
        found: list[Timeline] = []
        gone: list[str] = []
        for index, fingerprint in enumerate(fingerprints):
            timeline = _timeline(answers[2 * index], answers[2 * index + 1])
            if timeline is None:
                gone.append(fingerprint)
            else:
                found.append(timeline)
        if gone:
            await self._client.zrem(self._all, *gone)
        return found

    @guarded
    async def due(self, now: float, limit: int) -> list[str]:
        found = await self._client.zrangebyscore(self._due, "-inf", repr(float(now)), start=0, num=limit)
        return [text_of(cast(str, f)) for f in found]

    @guarded
    async def claim(
        self, fingerprint: str, step: int | None, now: float, owner: str, until: float, hurry: bool = False
    ) -> Timeline | None:
        args = ["" if step is None else str(step), repr(float(now)), owner, repr(float(until)), "1" if hurry else "0",
                fingerprint]  # fmt: skip
        claimed = await self._claim(keys=[*self._keys(fingerprint), self._due], args=args)
        if not claimed:
            return None
        flat, events = claimed
        return _timeline(dict(zip(flat[::2], flat[1::2], strict=True)), events)

    @guarded
    async def record(self, fingerprint: str, event: Event) -> None:
        await self._record(keys=list(self._keys(fingerprint)), args=[event_json(event), MAX_EVENTS])

    @guarded
    async def complete(self, fingerprint: str, step: int, owner: str, due: float | None) -> bool:
        hash_key, _ = self._keys(fingerprint)
        done = await self._complete(keys=[hash_key, self._due], args=[fingerprint, str(step), owner, _number(due)])
        return bool(done)

    @guarded
    async def ack(self, fingerprint: str, who: str, now: float) -> Timeline | None:
        event = event_json(Event(now, "acked", name=who))
        if not await self._ack(keys=[*self._keys(fingerprint), self._due], args=[fingerprint, who, event]):
            return None
        return await self.get(fingerprint)

    @guarded
    async def unack(self, fingerprint: str, now: float) -> bool:
        event = event_json(Event(now, "unacked"))
        return bool(await self._unack(keys=[*self._keys(fingerprint), self._due], args=[fingerprint, "", event]))

    @guarded
    async def resolve(self, fingerprint: str, now: float) -> Timeline | None:
        event = event_json(Event(now, "resolved"))
        keys = [*self._keys(fingerprint), self._due]
        if not await self._resolve(keys=keys, args=[fingerprint, event, ms(KEEP_S)]):
            return None
        return await self.get(fingerprint)

    @guarded
    async def remember(self, key: str, value: str, ttl_s: float) -> None:
        await self._client.set(f"{self._base}n:{key}", value, px=ms(ttl_s))

    @guarded
    async def recall(self, key: str) -> str | None:
        value = await self._client.get(f"{self._base}n:{key}")
        return None if value is None else text_of(value)


def _timeline(fields: dict[str, str], events: list[str]) -> Timeline | None:
    if not fields or "a" not in fields:
        return None
    state = fields.get("x", "open")
    due = fields.get("d", "")
    return Timeline(
        alert=event_from_json(fields["a"]),
        policy=fields.get("p", ""),
        started=float(fields.get("st", "0")),
        step=int(fields.get("s", "0")),
        due=float(due) if due else None,
        state="acked" if state == "acked" else "resolved" if state == "resolved" else "open",
        acked_by=fields.get("k") or None,
        events=tuple(event_from(e) for e in events),
    )


class RedisOverrides:
    """`OverrideStore` in Redis: a sorted set per schedule, scored by when each override ends."""

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._client = client
        self._base = f"{prefix}oncall:o:"

    @guarded
    async def add(self, override: Override) -> None:
        key = self._base + override.schedule
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {override_json(override): override.end})
            pipe.zremrangebyrank(key, 0, -(MAX_OVERRIDES + 1))
            await pipe.execute()

    @guarded
    async def current(self, schedule: str, now: float) -> list[Override]:
        key = self._base + schedule
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", repr(float(now)))
            pipe.zrange(key, 0, -1)
            _, kept = await pipe.execute()
        return [override_from(o) for o in kept]
