"""Every Redis store on one client: what `open_stores` returns when REDIS_URL is set."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import (
    RedisError,
)

from bot.settings import Settings
from bot.state.protocols import DEDUP_TTL_S, Stores, StoreUnavailable
from bot.state.redis.actions import RedisActions
from bot.state.redis.alerts import RedisAlertBook, RedisBudget, RedisDedup
from bot.state.redis.client import DEFAULT_PREFIX, describe, guarded, redis_client
from bot.state.redis.conversation import RedisContextStore, RedisPageStore
from bot.state.redis.lease import RedisLease, lease_ttl_s
from bot.state.redis.limits import RedisAdmission, RedisIdempotency, RedisRateLimiter
from bot.state.redis.media import RedisMediaStore
from bot.state.redis.oncall import RedisEscalations, RedisOverrides


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

    @guarded
    async def ping(self) -> None:
        await self.client.ping()


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
    limiter = RedisRateLimiter(
        client,
        settings.rate_burst,
        settings.rate_per_minute,
        global_capacity=settings.global_rate_per_minute / 6,
        global_per_minute=settings.global_rate_per_minute,
        prefix=prefix,
    )
    idempotency = RedisIdempotency(client, prefix=prefix)
    pages = RedisPageStore(client, settings.context_ttl_s, prefix=prefix)
    contexts = RedisContextStore(client, settings.context_ttl_s, settings.context_max_users, prefix=prefix)
    return RedisStores(
        contexts=contexts,
        pages=pages,
        limiter=limiter,
        idempotency=idempotency,
        admission=RedisAdmission(client, limiter, idempotency, pages, contexts),
        dedup=RedisDedup(client, DEDUP_TTL_S, prefix=prefix),
        budget=RedisBudget(client, settings.alert_budget_texts, settings.alert_budget_window_s, prefix=prefix),
        alerts=RedisAlertBook(client, prefix=prefix),
        actions=RedisActions(client, undo_window_s=settings.undo_window_s, prefix=prefix),
        rules_lease=RedisLease(client, "rules", lease_ttl_s(settings.rules_interval_s), prefix=prefix),
        media=RedisMediaStore(client, settings.media_ttl_s, prefix=prefix),
        escalations=RedisEscalations(client, prefix=prefix),
        overrides=RedisOverrides(client, prefix=prefix),
        client=client,
    )
