"""Conversation context and "more" pages in Redis, per user, expiring like the in-memory ones."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from bot.state.redis.client import DEFAULT_PREFIX, guarded, ms, text_of
from bot.state.redis.codecs import context_from_json, context_to_json
from intents.models import Context

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

    def key(self, user: str) -> str:
        return self._prefix + user

    def decode(self, raw: str | bytes) -> Context:
        """A stored context (`RedisAdmission` reads it in its own script), empty when unreadable."""
        try:
            return context_from_json(raw)
        except (ValueError, TypeError):
            return Context()  # written by another version: forgetting a conversation is harmless

    @guarded
    async def get(self, user: str) -> Context:
        """The user's context (empty when none). On StoreUnavailable: assume no context, i.e. answer the
        text as a full command and say follow-ups are unavailable."""
        raw = await self._client.get(self._prefix + user)
        return Context() if raw is None else self.decode(raw)

    @guarded
    async def put(self, user: str, context: Context) -> None:
        """On StoreUnavailable: the context was probably not kept; the reply still goes out."""
        value = "" if context.empty else context_to_json(context)
        await self._put(keys=[self._prefix + user, self._index, self._counter],
                        args=[value, ms(self.ttl_s), self.max_users, user, self._prefix])  # fmt: skip

    @guarded
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

    def key(self, user: str) -> str:
        return self._prefix + user

    @guarded
    async def keep(self, user: str, pages: Sequence[str]) -> None:
        """Replace the user's pending pages. On StoreUnavailable: "more" will find nothing (or the old pages)."""
        key = self._prefix + user
        if not pages:  # most replies fit one text: a plain DEL, half the cost of a transaction
            await self._client.delete(key)
            return
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.rpush(key, *pages)
            pipe.pexpire(key, ms(self.ttl_s))
            await pipe.execute()

    @guarded
    async def next(self, user: str) -> tuple[str, int] | None:
        """The next page and how many remain. On StoreUnavailable: nothing is known to be taken; say
        "more" is unavailable rather than "nothing more"."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.lpop(self._prefix + user)
            pipe.llen(self._prefix + user)
            page, remaining = await pipe.execute()
        return None if page is None else (text_of(page), int(remaining))
