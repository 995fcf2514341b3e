"""The process's one Redis client, failures turned into `StoreUnavailable`, and what every script shares."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
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


class Batched:
    """Script calls made in one turn of the event loop, sent to Redis together: one pipeline, one round
    trip for all of them (automatic pipelining).

    With Redis, what a worker spends per text is mostly round trips: redis-py costs about as much CPU per
    command as the rest of a short answer (~130 us here). The webhook's two calls per text (`admit` and
    `settle`) go through this: alone they cost what they did; under load, texts arriving together share
    one round trip. Each caller still gets its own answer or its own error; a script Redis has forgotten
    (a restart, SCRIPT FLUSH) is loaded again and run for just that caller.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queue: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((script, list(keys), list(args), future))
        return await future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._execute(batch)
        except Exception as exc:  # the connection failed: every caller of this batch hears it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (script, keys, args, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller gave up waiting (its own deadline)
                continue
            if isinstance(result, NoScriptError):
                self._retry(script, keys, args, future)
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        if len(batch) == 1:
            script, keys, args, _ = batch[0]
            try:
                return [await self._client.evalsha(script.sha, len(keys), *keys, *args)]
            except ResponseError as exc:  # NOSCRIPT among them: answered per caller, like a pipeline's
                return [exc]
        async with self._client.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    def _retry(self, script: AsyncScript, keys: list[str], args: list[Any], future: asyncio.Future[Any]) -> None:
        async def again() -> None:
            try:
                result = await script(keys=keys, args=args)  # loads the script first when Redis lost it
            except Exception as exc:  # handed to the caller, which turns it into StoreUnavailable
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

        task = asyncio.ensure_future(again())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
