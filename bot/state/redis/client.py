"""The process's one Redis client, failures turned into `StoreUnavailable`, and what every script shares."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

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

from bot.settings import ConfigError
from bot.state.protocols import StoreUnavailable

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


def guarded(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any Redis failure of `method` into StoreUnavailable, at the boundary of this module."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(describe(exc)) from exc

    return guarded


def ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def text_of(value: str | bytes) -> str:
    """Works with clients built with or without decode_responses."""
    return value.decode() if isinstance(value, bytes) else value


def dumps(data: object) -> str:
    # ensure_ascii keeps lone surrogates (which UTF-8 cannot carry) as escapes, so every str round-trips.
    return json.dumps(data, separators=(",", ":"))


def now_arg(clock: Clock | None) -> str:
    """The script's `now`: the injected clock's exact value, or '' for Redis's own clock."""
    return "" if clock is None else repr(clock())


CLOCK_LUA = """
local function clock(arg)
  if arg ~= '' then return tonumber(arg), arg end
  local t = redis.call('TIME')
  local text = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  return tonumber(text), text
end
"""
"""Seconds as a number and as exact text: the injected time, else Redis's clock (one for every instance)."""
