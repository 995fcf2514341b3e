"""Per-number and global rate limits, and MessageSid idempotency, behind small interfaces.

In memory for one process (the embedded default); a shared store (Redis) can implement the same
interfaces so several instances limit and deduplicate as one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.state.protocols import Admitted, ContextStore, Idempotency, PageStore, RateLimiter, Verdict

Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class TokenBuckets:
    """Token buckets by key: `capacity` texts at once, refilled at `per_minute` a minute."""

    def __init__(self, capacity: float, per_minute: float, max_keys: int = 100_000, clock: Clock = time.monotonic):
        self.capacity = capacity
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> Verdict:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.capacity, now)
                self._buckets[key] = bucket
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                bucket.warned = False
                return Verdict.ALLOW
            if bucket.warned:
                return Verdict.DROP
            bucket.warned = True
            return Verdict.WARN


class InMemoryRateLimiter:
    """A per-number bucket and one global bucket; the global one protects the backends from a flood."""

    def __init__(self, per_number: TokenBuckets, overall: TokenBuckets) -> None:
        self.per_number = per_number
        self.overall = overall

    async def check(self, number: str) -> Verdict:
        verdict = self.per_number.take(number)
        if verdict is not Verdict.ALLOW:
            return verdict
        overall = self.overall.take("*")
        return Verdict.ALLOW if overall is Verdict.ALLOW else Verdict.DROP


class InMemoryIdempotency:
    """Replies by MessageSid for `ttl_s` (a day: Twilio retries within minutes), at most `max_items`."""

    def __init__(self, ttl_s: float = 86_400, max_items: int = 100_000, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._clock = clock
        self._done: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._running: dict[str, asyncio.Future[str | None]] = {}

    async def claim_if_done(self, sid: str) -> str | None:
        done = self._done.get(sid)
        return done[1] if done is not None and self._clock() - done[0] < self.ttl_s else None

    async def claim(self, sid: str) -> str | None:
        now = self._clock()
        done = self._done.get(sid)
        if done is not None and now - done[0] < self.ttl_s:
            return done[1]
        running = self._running.get(sid)
        if running is None:
            self._running[sid] = asyncio.get_running_loop().create_future()
            return None
        reply = await asyncio.shield(running)
        return reply if reply is not None else await self.claim(sid)

    async def finish(self, sid: str, reply: str) -> None:
        if sid in self._done:  # the first reply stays, as in Redis (a late second owner does not replace it)
            reply = self._done[sid][1]
        self._done[sid] = (self._clock(), reply)
        self._done.move_to_end(sid)
        while len(self._done) > self.max_items:
            self._done.popitem(last=False)
        future = self._running.pop(sid, None)
        if future is not None and not future.done():
            future.set_result(reply)

    async def abandon(self, sid: str) -> None:
        future = self._running.pop(sid, None)
        if future is not None and not future.done():
            future.set_result(None)


class LocalAdmission:
    """`Admission` over any rate limiter and idempotency store, one call after another (in memory they
    cost nothing; `bot.state.redis.limits.RedisAdmission` folds them into one script)."""

    def __init__(
        self, limiter: RateLimiter, idempotency: Idempotency, pages: PageStore, contexts: ContextStore
    ) -> None:
        self.limiter = limiter
        self.idempotency = idempotency
        self.pages = pages
        self.contexts = contexts

    async def admit(self, sid: str, number: str) -> Admitted:
        if sid:
            earlier = await self.idempotency.claim_if_done(sid)
            if earlier is not None:
                return Admitted(earlier=earlier)
        verdict = await self.limiter.check(number)
        if verdict is not Verdict.ALLOW:
            return Admitted(verdict=verdict)
        if not sid:
            return Admitted(context=await self.contexts.get(number))
        earlier = await self.idempotency.claim(sid)
        if earlier is not None:
            return Admitted(earlier=earlier)
        return Admitted(claimed=True, context=await self.contexts.get(number))

    async def settle(self, user: str, pages: Sequence[str] | None, sid: str | None, reply: str) -> None:
        if pages is not None:
            await self.pages.keep(user, pages)
        if sid:
            await self.idempotency.finish(sid, reply)
