"""The bot's shared state in Redis, so several `operator serve` processes behind a load balancer act as one.

Each class here implements one interface of `bot.state.protocols` with the same behaviour as its in-memory
twin (the same tests run against both), made safe across processes: every read-decide-write is one
Lua script or one MULTI transaction, so two instances can never both own a MessageSid, both take the
last token of a bucket, both accept one silence code or both see an alert resolve.

Conventions:
- One client (one connection pool) per process is passed in; `redis_client` builds it with short
  timeouts and a single retry on a dropped connection, so a dead Redis fails a call in about a second
  instead of stalling a webhook. Built once in the app's lifespan, never at import.
- Every key sits under a prefix ("operator:" by default), values are compact JSON or plain strings.
  Every key expires except the open alerts (kept until resolved, at most `max_alerts`, as in memory)
  and two small counters: nothing grows without bound.
- Rate limits and alert budgets are computed on Redis's own clock (TIME inside the script), one clock
  for every instance; alert and action timestamps, which people read, come from the process's wall
  clock like the in-memory classes. Tests may inject a clock into either.
- Any Redis failure (refused, reset, timed out, read-only replica, wrong password) is raised as
  `StoreUnavailable` with a short text that never holds the URL, host or password. Each method says
  what a caller should assume when that happens; the caller decides what to do.
- A single Redis (or a Sentinel-managed primary) is assumed, 6.2 or later: some scripts touch keys
  they derive (another user's context when trimming, an alert's tombstone), which Redis Cluster forbids.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any, Literal, ParamSpec, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.alerting.model import AlertEvent, Changes, Done, Notification, OpenAlert, Proposal, Severity
from bot.charts.media import check_media, new_token, valid_token
from bot.settings import ConfigError, Settings
from bot.state.memory.delivery import check_budget
from bot.state.protocols import DEDUP_TTL_S, Decision, ReplyPending, StoreUnavailable, Verdict
from bot.state.stores import Stores
from intents.models import Context, Intent, SlotValue

P = ParamSpec("P")
T = TypeVar("T")
Clock = Callable[[], float]

DEFAULT_PREFIX = "operator:"
TIMEOUT_S = 0.5
"""Socket connect and read timeout: a loopback or same-zone Redis answers in well under a millisecond."""
HEALTH_CHECK_S = 5
"""A pooled connection idle longer than this is pinged before use, so one left dead by a restart is replaced."""
KEY_MARGIN_MS = 1000
"""Extra life for keys whose expiry the scripts also check by time, so a key never vanishes early."""


def redis_client(url: str, *, timeout_s: float = TIMEOUT_S) -> Redis:
    """The process's one client (one connection pool) for `url`, tuned to fail fast.

    One retry, only when the connection failed (a pooled connection that a Redis restart left dead),
    never on a timeout, which may mean the command ran. Raises ConfigError for a URL that is not a
    Redis URL, without repeating it (it may hold a password).
    """
    try:
        return Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=HEALTH_CHECK_S,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=True,
            encoding_errors="surrogatepass",  # a lone surrogate in a webhook's JSON must not crash a write
            client_name="operator",
        )
    except ValueError:
        # No `from exc`: redis-py's message may quote parts of the URL, and a traceback would print it.
        raise ConfigError("REDIS_URL is not a Redis URL (redis://, rediss:// or unix://)") from None


def describe(exc: BaseException) -> str:
    """A short, safe description of a Redis failure: the kind, never the message (which names the host)."""
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return "Redis refused the credentials"
    if isinstance(exc, BusyLoadingError):
        return "Redis is still loading its data"
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "Redis did not answer in time"
    if isinstance(exc, RedisConnectionError | OSError):
        return "Redis is unreachable (connection refused or lost)"
    if isinstance(exc, ReadOnlyError):
        return "Redis refused a write: it is a read-only replica"
    if isinstance(exc, OutOfMemoryError):
        return "Redis refused a write: out of memory"
    if isinstance(exc, NoPermissionError):
        return "Redis refused the command: not permitted for this user"
    if isinstance(exc, ResponseError):
        return "Redis refused the command"
    return "Redis failed"


def _guarded(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any Redis failure of `method` into StoreUnavailable, at the boundary of this module."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(describe(exc)) from exc

    return guarded


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _text(value: str | bytes) -> str:
    """Works with clients built with or without decode_responses."""
    return value.decode() if isinstance(value, bytes) else value


def _dumps(data: object) -> str:
    # ensure_ascii keeps lone surrogates (which UTF-8 cannot carry) as escapes, so every str round-trips.
    return json.dumps(data, separators=(",", ":"))


def _now_arg(clock: Clock | None) -> str:
    """The script's `now`: the injected clock's exact value, or '' for Redis's own clock."""
    return "" if clock is None else repr(clock())


_CLOCK_LUA = """
local function clock(arg)
  if arg ~= '' then return tonumber(arg), arg end
  local t = redis.call('TIME')
  local text = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  return tonumber(text), text
end
"""
"""Seconds as a number and as exact text: the injected time, else Redis's clock (one for every instance)."""


# --- conversation context -------------------------------------------------------------------------


def context_to_json(context: Context) -> str:
    """Compact JSON for a Context; defaults are left out (most contexts are two or three fields)."""
    data: dict[str, object] = {}
    if context.intent is not None:
        data["i"] = context.intent.value
    if context.slots:
        data["s"] = {name: list(value) if isinstance(value, tuple) else value for name, value in context.slots.items()}
    if context.suggestion is not None:
        data["g"] = context.suggestion
    if context.pending_code is not None:
        data["c"] = context.pending_code
    if context.alerts:
        data["a"] = list(context.alerts)
    return _dumps(data)


def context_from_json(text: str | bytes) -> Context:
    """The Context `context_to_json` wrote. Raises ValueError for anything else (a foreign or older value)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("context is not an object")
    intent = data.get("i")
    slots: dict[str, SlotValue] = {}
    for name, value in _object(data.get("s", {})).items():
        if isinstance(value, list):
            slots[name] = _strings(value)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            slots[name] = value
        else:
            raise ValueError("slot value of an unknown type")
    return Context(
        intent=None if intent is None else Intent(intent),
        slots=slots,
        suggestion=_optional_str(data.get("g")),
        pending_code=_optional_str(data.get("c")),
        alerts=_strings(data.get("a", [])),
    )


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _optional_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("expected a string")
    return value


_CONTEXT_PUT = """
-- KEYS[1] the user's context, KEYS[2] users by last write (sorted set), KEYS[3] the write counter
-- ARGV[1] context JSON ('' clears it), ARGV[2] ttl ms, ARGV[3] most users kept, ARGV[4] the user,
-- ARGV[5] the key prefix of contexts
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
-- A counter, not the time: writes in the same millisecond keep their order. Users whose context expired
-- are the oldest entries (every context lives ttl from its last write), so trimming drops them first.
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  for _, user in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    redis.call('DEL', ARGV[5] .. user)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
return extra
"""


class RedisContextStore:
    """Per-user Context, expiring `ttl_s` after the last write, at most `max_users` kept (oldest write dropped)."""

    def __init__(self, client: Redis, ttl_s: float = 900.0, max_users: int = 10_000, *,
                 prefix: str = DEFAULT_PREFIX) -> None:  # fmt: skip
        if ttl_s <= 0 or max_users <= 0:
            raise ValueError("ttl_s and max_users must be positive")
        self.ttl_s = ttl_s
        self.max_users = max_users
        self._client = client
        self._prefix = f"{prefix}ctx:"
        self._index = f"{prefix}ctx-index"
        self._counter = f"{prefix}ctx-writes"
        self._put = client.register_script(_CONTEXT_PUT)

    @_guarded
    async def get(self, user: str) -> Context:
        """The user's context (empty when none). On StoreUnavailable: assume no context, i.e. answer the
        text as a full command and say follow-ups are unavailable."""
        raw = await self._client.get(self._prefix + user)
        if raw is None:
            return Context()
        try:
            return context_from_json(raw)
        except (ValueError, TypeError):
            return Context()  # written by another version: forgetting a conversation is harmless

    @_guarded
    async def put(self, user: str, context: Context) -> None:
        """On StoreUnavailable: the context was probably not kept; the reply still goes out."""
        value = "" if context.empty else context_to_json(context)
        await self._put(keys=[self._prefix + user, self._index, self._counter],
                        args=[value, _ms(self.ttl_s), self.max_users, user, self._prefix])  # fmt: skip

    @_guarded
    async def clear(self, user: str) -> None:
        """On StoreUnavailable: the old context may linger until its TTL; tell the user the reset failed."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self._prefix + user)
            pipe.zrem(self._index, user)
            await pipe.execute()


# --- "more" pages -----------------------------------------------------------------------------------


class RedisPageStore:
    """Each user's pending pages as a list with a TTL; "more" pops the next one."""

    def __init__(self, client: Redis, ttl_s: float = 900.0, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.ttl_s = ttl_s
        self._client = client
        self._prefix = f"{prefix}pages:"

    @_guarded
    async def keep(self, user: str, pages: Sequence[str]) -> None:
        """Replace the user's pending pages. On StoreUnavailable: "more" will find nothing (or the old pages)."""
        key = self._prefix + user
        if not pages:  # most replies fit one text: a plain DEL, half the cost of a transaction
            await self._client.delete(key)
            return
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.rpush(key, *pages)
            pipe.pexpire(key, _ms(self.ttl_s))
            await pipe.execute()

    @_guarded
    async def next(self, user: str) -> tuple[str, int] | None:
        """The next page and how many remain. On StoreUnavailable: nothing is known to be taken; say
        "more" is unavailable rather than "nothing more"."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.lpop(self._prefix + user)
            pipe.llen(self._prefix + user)
            page, remaining = await pipe.execute()
        return None if page is None else (_text(page), int(remaining))


# --- pictures for MMS ------------------------------------------------------------------------------


class RedisMediaStore:
    """Rendered charts, for whichever instance Twilio's fetch of `/media/{token}.png` reaches.

    Kept as "content type, newline, base64": the client decodes replies as text (every other store is
    text), and a 60 KiB chart costs 80 KiB for its few minutes. Capped at `max_bytes` per item.
    """

    def __init__(
        self, client: Redis, ttl_s: float, *, max_bytes: int = 2 * 2**20, prefix: str = DEFAULT_PREFIX
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0:
            raise ValueError("ttl_s and max_bytes must be positive")
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._client = client
        self._prefix = f"{prefix}media:"

    @_guarded
    async def put(self, data: bytes, content_type: str = "image/png") -> str:
        """On StoreUnavailable: the chart cannot be served; the caller sends the text version instead."""
        check_media(data, content_type)
        if len(data) > self.max_bytes:
            raise ValueError(f"media larger than {self.max_bytes} bytes")
        token = new_token()
        value = f"{content_type}\n{base64.b64encode(data).decode('ascii')}"
        await self._client.set(self._prefix + token, value, px=_ms(self.ttl_s))
        return token

    @_guarded
    async def get(self, token: str) -> tuple[bytes, str] | None:
        """On StoreUnavailable: the route answers 503, and Twilio retries the fetch."""
        if not valid_token(token):
            return None
        raw = await self._client.get(self._prefix + token)
        if raw is None:
            return None
        content_type, _, encoded = _text(raw).partition("\n")
        try:
            return base64.b64decode(encoded, validate=True), content_type
        except ValueError:
            return None  # not written by this store


# --- rate limits ------------------------------------------------------------------------------------

_RATE_CHECK = (
    _CLOCK_LUA
    + """
-- KEYS[1] the number's bucket, KEYS[2] the global bucket (hashes: tokens, at, warned)
-- ARGV[1] capacity, ARGV[2] tokens a second, ARGV[3] global capacity, ARGV[4] global tokens a second,
-- ARGV[5] now in seconds ('' = Redis's clock)
local now = clock(ARGV[5])
local function take(key, capacity, rate)
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
local verdict = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if verdict ~= 'allow' then return verdict end
if take(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4])) == 'allow' then return 'allow' end
return 'drop'
"""
)


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
        self._clock = clock
        self._check = client.register_script(_RATE_CHECK)

    @_guarded
    async def check(self, number: str) -> Verdict:
        """On StoreUnavailable: nothing was counted; a caller may let the text through (the backends have
        their own limits) or drop it, but should not warn the user about a limit it could not check."""
        verdict = await self._check(keys=[self._prefix + number, self._prefix + "*"],
                                    args=[*self._args, _now_arg(self._clock)])  # fmt: skip
        return Verdict(_text(verdict))


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

    @_guarded
    async def claim_if_done(self, sid: str) -> str | None:
        """On StoreUnavailable: unknown whether it was answered; go on to `claim` (which will fail alike)."""
        value = await self._client.get(self._prefix + sid)
        text = None if value is None else _text(value)
        return text[1:] if text is not None and text.startswith("d") else None

    @_guarded
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
            value = await self._claim(keys=[key], args=[marker, _ms(self.running_ttl_s)])
            if value is None:
                self._owned[sid] = marker
                return None
            text = _text(value)
            if text.startswith("d"):
                return text[1:]
            if time.monotonic() >= deadline:
                raise ReplyPending("another instance is still answering this message")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_max_s)

    @_guarded
    async def finish(self, sid: str, reply: str) -> None:
        """On StoreUnavailable: the reply was probably not kept; a repeat of the webhook will run again."""
        self._owned.pop(sid, None)
        await self._finish(keys=[self._prefix + sid], args=["d" + reply, _ms(self.ttl_s)])

    @_guarded
    async def abandon(self, sid: str) -> None:
        """On StoreUnavailable: the claim lapses by itself after `running_ttl_s`."""
        marker = self._owned.pop(sid, None)
        if marker is not None:
            await self._abandon(keys=[self._prefix + sid], args=[marker])


# --- alert deliveries and send budgets ---------------------------------------------------------------


class RedisDedup:
    """Delivery keys remembered for `ttl_s` (SET NX): the first instance to see a delivery handles it."""

    def __init__(self, client: Redis, ttl_s: float = DEDUP_TTL_S, *, prefix: str = DEFAULT_PREFIX) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.ttl_s = ttl_s
        self._client = client
        self._prefix = f"{prefix}dedup:"

    @_guarded
    async def seen(self, key: str) -> bool:
        """On StoreUnavailable: unknown; treat it as new (a repeat may text twice, which beats never)."""
        if not key:
            return False
        digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()  # keys can be long
        first = await self._client.set(self._prefix + digest, "1", nx=True, px=_ms(self.ttl_s))
        return not first


_BUDGET_TAKE = (
    _CLOCK_LUA
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

    @_guarded
    async def take(self, number: str) -> Decision:
        """On StoreUnavailable: nothing was counted; a caller should send (an outage must not silence pages)."""
        key = self._prefix + number
        args: list[str | int] = [self.max_texts, repr(float(self.window_s)), _now_arg(self._clock)]
        decision = _text(await self._take(keys=[key, key + ":summary"], args=args))
        if decision not in ("send", "summary", "hold"):
            raise StoreUnavailable("Redis answered something unexpected")
        return cast(Decision, decision)


# --- open alerts --------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime | None) -> str:
    """Exact integer microseconds (as text) for comparing times in a script; naive times are read as UTC."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return str((aware - _EPOCH) // timedelta(microseconds=1))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_iso(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def event_to_json(event: AlertEvent) -> str:
    return _dumps({"f": event.fingerprint, "n": event.name, "l": dict(event.labels), "st": event.status,
                   "sv": int(event.severity), "su": event.summary, "s": _iso(event.starts_at),
                   "e": _iso(event.ends_at), "src": event.source})  # fmt: skip


def event_from_json(text: str | bytes) -> AlertEvent:
    data = _object(json.loads(text))
    status = data["st"]
    if status not in ("firing", "resolved"):
        raise ValueError("unknown alert status")
    labels = _object(data["l"])
    return AlertEvent(
        fingerprint=str(data["f"]),
        name=str(data["n"]),
        labels={str(k): str(v) for k, v in labels.items()},
        status=status,
        severity=Severity(cast(int, data["sv"])),
        summary=str(data["su"]),
        starts_at=_from_iso(data.get("s")),
        ends_at=_from_iso(data.get("e")),
        source=str(data["src"]),
    )


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

    @_guarded
    async def update(self, notification: Notification) -> Changes:
        """What this notification changed. On StoreUnavailable: unknown; the notification itself is the
        best guess (text its firing and resolved alerts)."""
        args: list[str | int] = [repr(self._clock()), repr(float(self.tombstone_s)), self.max_alerts, self._tombs,
                                 _ms(self.tombstone_s) + KEY_MARGIN_MS]  # fmt: skip
        for event in notification.alerts:
            ended = _micros(event.ends_at or event.starts_at) if event.status == "resolved" else ""
            args += [event.fingerprint, event.status, _micros(event.starts_at), ended, event_to_json(event)]
        codes = await self._update(keys=self._keys, args=args)
        firing: list[AlertEvent] = []
        resolved: list[AlertEvent] = []
        quiet: list[AlertEvent] = []
        lists = {"f": firing, "r": resolved, "q": quiet}
        for event, code in zip(notification.alerts, codes, strict=True):
            lists[_text(code)].append(event)
        return Changes(tuple(firing), tuple(resolved), tuple(quiet))

    @_guarded
    async def get(self, fingerprint: str) -> OpenAlert | None:
        """On StoreUnavailable: unknown; say alert state is unavailable rather than "no such alert"."""
        events, first, acks = self._keys[:3]
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hget(events, fingerprint)
            pipe.hget(first, fingerprint)
            pipe.hget(acks, fingerprint)
            event, seen, ack = await pipe.execute()
        return None if event is None or seen is None else _open_alert(event, seen, ack)

    @_guarded
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
                found.append(_open_alert(event, seen, acks.get(fingerprint)))
        return found

    async def by_name(self, name: str) -> list[OpenAlert]:
        """On StoreUnavailable: as `open_alerts`."""
        wanted = name.lower()
        return [a for a in await self.open_alerts() if a.event.name.lower() == wanted]

    @_guarded
    async def ack(self, fingerprint: str, who: str) -> OpenAlert | None:
        """On StoreUnavailable: not acknowledged; tell the person to try again."""
        found = await self._ack(keys=self._keys[:3], args=[fingerprint, who, repr(self._clock())])
        if not found:
            return None
        event, seen, ack = found
        return _open_alert(event, seen, ack)

    @_guarded
    async def unack(self, fingerprint: str) -> bool:
        """On StoreUnavailable: the ack stays; tell the person to try again."""
        return bool(await self._unack(keys=self._keys[:3], args=[fingerprint]))


def _open_alert(event: str | bytes, first_seen: str | bytes, ack: str | bytes | None) -> OpenAlert:
    acked_by = acked_at = None
    if ack is not None:
        at, _, who = _text(ack).partition(" ")
        acked_by, acked_at = who, float(at)
    return OpenAlert(event_from_json(event), float(_text(first_seen)), acked_by, acked_at)


# --- pending silences and undo -------------------------------------------------------------------------

_PROPOSAL_ACCEPT = """
-- KEYS[1] the user's proposal (hash: code, at, body); ARGV[1] now, ARGV[2] ttl seconds, ARGV[3] code,
-- ARGV[4] '1' when a code was given. Returns the proposal's JSON when taken.
local p = redis.call('HMGET', KEYS[1], 'code', 'at', 'body')
if not p[1] then return false end
if tonumber(ARGV[1]) - tonumber(p[2]) > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return false
end
if ARGV[4] == '1' and ARGV[3] ~= p[1] then return false end
redis.call('DEL', KEYS[1])
return p[3]
"""


def _proposal_json(proposal: Proposal) -> str:
    return _dumps({"c": proposal.code, "f": proposal.fingerprint, "d": proposal.description,
                   "s": proposal.duration_s, "t": proposal.text, "a": proposal.at})  # fmt: skip


def _proposal_from(text: str | bytes) -> Proposal:
    data = _object(json.loads(text))
    return Proposal(str(data["c"]), str(data["f"]), str(data["d"]), int(cast(int, data["s"])), str(data["t"]),
                    float(cast(float, data["a"])))  # fmt: skip


def _done_json(done: Done) -> str:
    return _dumps({"k": done.kind, "f": done.fingerprint, "d": done.description, "a": done.at, "i": done.silence_id})


def _done_from(text: str | bytes) -> Done:
    data = _object(json.loads(text))
    kind = data["k"]
    if kind not in ("silence", "ack"):
        raise ValueError("unknown kind of action")
    silence_id = data.get("i")
    return Done(kind, str(data["f"]), str(data["d"]), float(cast(float, data["a"])),
                None if silence_id is None else str(silence_id))  # fmt: skip


class RedisActions:
    """Silences waiting for "Y <code>" and the last write each person may undo, for every instance.

    As `bot.alerting.actions.Actions`: a new proposal replaces the old one; a code works once, within
    `proposal_ttl_s` (accept takes the proposal in one script, so two instances cannot both act on it);
    a done write can be undone once within `undo_window_s`.
    """

    def __init__(
        self, client: Redis, proposal_ttl_s: float = 300.0, undo_window_s: float = 300.0, *,
        prefix: str = DEFAULT_PREFIX, clock: Clock = time.time,
    ) -> None:  # fmt: skip
        self.proposal_ttl_s = proposal_ttl_s
        self.undo_window_s = undo_window_s
        self._client = client
        self._clock = clock
        self._proposals = f"{prefix}proposal:"
        self._done = f"{prefix}undo:"
        self._accept = client.register_script(_PROPOSAL_ACCEPT)

    @_guarded
    async def propose(self, user: str, fingerprint: str, description: str, duration_s: int, text: str) -> Proposal:
        """On StoreUnavailable: nothing is pending; tell the person the silence cannot be set up now."""
        proposal = Proposal(f"{secrets.randbelow(9000) + 1000}", fingerprint, description, duration_s, text,
                            self._clock())  # fmt: skip
        key = self._proposals + user
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"code": proposal.code, "at": repr(proposal.at), "body": _proposal_json(proposal)})
            pipe.pexpire(key, _ms(self.proposal_ttl_s) + KEY_MARGIN_MS)
            await pipe.execute()
        return proposal

    @_guarded
    async def accept(self, user: str, code: str | None) -> Proposal | None:
        """On StoreUnavailable: nothing was taken or done; tell the person to reply again shortly."""
        body = await self._accept(keys=[self._proposals + user],
                                  args=[repr(self._clock()), repr(float(self.proposal_ttl_s)), code or "",
                                        "0" if code is None else "1"])  # fmt: skip
        return None if body is None else _proposal_from(body)

    @_guarded
    async def pending_code(self, user: str) -> str | None:
        """On StoreUnavailable: unknown; treat as none pending."""
        code, at = await self._client.hmget(self._proposals + user, ["code", "at"])
        if code is None or at is None or self._clock() - float(_text(at)) > self.proposal_ttl_s:
            return None
        return _text(code)

    async def done(
        self, user: str, kind: Literal["silence", "ack"], fingerprint: str, description: str,
        silence_id: str | None = None,
    ) -> Done:  # fmt: skip
        """Remember a write `user` may undo. On StoreUnavailable: the write happened but cannot be undone by
        "undo"; say so (the silence id still ends it)."""
        done = Done(kind, fingerprint, description, self._clock(), silence_id)
        await self.keep(user, done)
        return done

    @_guarded
    async def keep(self, user: str, done: Done) -> None:
        """On StoreUnavailable: as `done`."""
        await self._client.set(self._done + user, _done_json(done), px=_ms(self.undo_window_s) + KEY_MARGIN_MS)

    @_guarded
    async def undoable(self, user: str) -> Done | None:
        """The last write if within the window (taken: undo works once). On StoreUnavailable: unknown;
        tell the person undo is unavailable now (not "nothing to undo")."""
        body = await self._client.getdel(self._done + user)
        if body is None:
            return None
        done = _done_from(body)
        return None if self._clock() - done.at > self.undo_window_s else done


# --- the lease on rule evaluation ----------------------------------------------------------------------

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

    @_guarded
    async def hold(self) -> bool:
        """On StoreUnavailable: assume the lease is lost (another process may take it once it lapses), so
        stop the work it guards until `hold()` succeeds again."""
        return bool(await self._hold(keys=[self._key], args=[self._token, _ms(self.ttl_s)]))

    @_guarded
    async def release(self) -> None:
        """On StoreUnavailable: nothing to do; the lease lapses by itself after `ttl_s`."""
        await self._release(keys=[self._key], args=[self._token])


# --- everything together ---------------------------------------------------------------------------------


@dataclass
class RedisStores(Stores):
    """The shared stores and the client they use; `close()` also closes the client's connections."""

    shared: bool = True
    client: Redis = field(kw_only=True, repr=False)

    async def close(self) -> None:
        try:
            await super().close()
        except StoreUnavailable:
            pass  # the lease lapses by itself after its TTL
        finally:
            await self.client.aclose()

    @_guarded
    async def ping(self) -> None:
        await self.client.ping()


def lease_ttl_s(rules_interval_s: float) -> float:
    """Three missed ticks before another process takes over rule evaluation (never under 10 s)."""
    return max(10.0, 3 * rules_interval_s)


async def open_redis_stores(url: str, settings: Settings, *, prefix: str = DEFAULT_PREFIX) -> RedisStores:
    """Every shared store on one client for `url`, with the settings' limits and windows.

    Pings Redis first: StoreUnavailable (no URL in it) if it cannot be reached, ConfigError if `url` is not
    a Redis URL. The caller owns the result and calls `close()` at shutdown.
    """
    client = redis_client(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StoreUnavailable(describe(exc)) from exc
    return RedisStores(
        contexts=RedisContextStore(client, settings.context_ttl_s, settings.context_max_users, prefix=prefix),
        pages=RedisPageStore(client, settings.context_ttl_s, prefix=prefix),
        limiter=RedisRateLimiter(
            client,
            settings.rate_burst,
            settings.rate_per_minute,
            global_capacity=settings.global_rate_per_minute / 6,
            global_per_minute=settings.global_rate_per_minute,
            prefix=prefix,
        ),
        idempotency=RedisIdempotency(client, prefix=prefix),
        dedup=RedisDedup(client, DEDUP_TTL_S, prefix=prefix),
        budget=RedisBudget(client, settings.alert_budget_texts, settings.alert_budget_window_s, prefix=prefix),
        alerts=RedisAlertBook(client, prefix=prefix),
        actions=RedisActions(client, undo_window_s=settings.undo_window_s, prefix=prefix),
        rules_lease=RedisLease(client, "rules", lease_ttl_s(settings.rules_interval_s), prefix=prefix),
        media=RedisMediaStore(client, settings.media_ttl_s, prefix=prefix),
        client=client,
    )
