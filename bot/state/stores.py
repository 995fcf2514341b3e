"""The shared state of one process, built once in the app's lifespan: in memory, or in Redis when REDIS_URL is set."""

from __future__ import annotations

from bot.settings import Settings
from bot.state.memory.delivery import Deduplicator, LocalBudget, LocalDedup, SendBudget
from bot.state.protocols import (
    DEDUP_TTL_S,
    Stores,
)


def local_stores(settings: Settings) -> Stores:
    """The embedded default: everything in this process's memory."""
    from bot.state.memory.actions import Actions
    from bot.state.memory.alerts import AlertBook
    from bot.state.memory.context import InMemoryContextStore
    from bot.state.memory.lease import FileLease
    from bot.state.memory.limits import InMemoryIdempotency, InMemoryRateLimiter, LocalAdmission, TokenBuckets
    from bot.state.memory.media import InMemoryMediaStore
    from bot.state.memory.oncall import InMemoryEscalations, InMemoryOverrides
    from bot.state.memory.pages import InMemoryPageStore

    limiter = InMemoryRateLimiter(
        TokenBuckets(settings.rate_burst, settings.rate_per_minute),
        TokenBuckets(settings.global_rate_per_minute / 6, settings.global_rate_per_minute),
    )
    idempotency = InMemoryIdempotency()
    pages = InMemoryPageStore(settings.context_ttl_s, settings.context_max_users)
    contexts = InMemoryContextStore(settings.context_ttl_s, settings.context_max_users)
    return Stores(
        contexts=contexts,
        pages=pages,
        limiter=limiter,
        idempotency=idempotency,
        admission=LocalAdmission(limiter, idempotency, pages, contexts),
        dedup=LocalDedup(Deduplicator(DEDUP_TTL_S)),
        budget=LocalBudget(SendBudget(settings.alert_budget_texts, settings.alert_budget_window_s)),
        alerts=AlertBook(),
        actions=Actions(undo_window_s=settings.undo_window_s),
        rules_lease=FileLease(settings.rules_lock_path),
        media=InMemoryMediaStore(settings.media_ttl_s),
        escalations=InMemoryEscalations(),
        overrides=InMemoryOverrides(),
    )


async def open_stores(settings: Settings) -> Stores:
    """Redis when REDIS_URL is set (several instances act as one), else this process's memory."""
    if not settings.redis_url:
        return local_stores(settings)
    from bot.state.redis.stores import open_redis_stores

    return await open_redis_stores(settings.redis_url, settings)
