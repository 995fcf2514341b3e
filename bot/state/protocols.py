"""The shared state of a running bot, as interfaces: one process keeps it in memory (the embedded
default); several processes behind a load balancer keep it in Redis (`bot.state.redis.stores`).

Every piece that decides something per user or per message lives behind one of these, so that which
process receives a webhook never changes the answer: conversation context, "more" pages, rate
limits, MessageSid idempotency, alert deduplication, send budgets, open alerts and acks, pending
silences and undo, and the lease on rule evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from bot.alerting.actions import Done, Proposal
from bot.alerting.model import Notification
from bot.alerting.recipients import Deduplicator, SendBudget
from bot.alerting.state import Changes, OpenAlert
from bot.charts.media import MediaStore
from bot.settings import Settings
from bot.state.memory.context import ContextStore
from bot.state.memory.limits import Idempotency, RateLimiter
from bot.state.memory.pages import PageStore

DEDUP_TTL_S = 600.0
"""Shorter than Alertmanager's repeat_interval (4 h by default): its retries are dropped, its reminders are not."""

Decision = Literal["send", "summary", "hold"]


class StoreUnavailable(Exception):
    """The shared store cannot be reached; the message is short and safe (never its URL)."""


class ReplyPending(StoreUnavailable):
    """Another instance owns this MessageSid and has not answered in time: answer nothing, it will."""


class DedupStore(Protocol):
    async def seen(self, key: str) -> bool:
        """False the first time `key` is offered (and remember it); True for a repeat within the TTL."""
        ...


class BudgetStore(Protocol):
    async def take(self, number: str) -> Decision: ...


class AlertStore(Protocol):
    async def update(self, notification: Notification) -> Changes: ...

    async def get(self, fingerprint: str) -> OpenAlert | None: ...

    async def open_alerts(self) -> list[OpenAlert]: ...

    async def by_name(self, name: str) -> list[OpenAlert]: ...

    async def ack(self, fingerprint: str, who: str) -> OpenAlert | None: ...

    async def unack(self, fingerprint: str) -> bool: ...


class ActionStore(Protocol):
    async def propose(self, user: str, fingerprint: str, description: str, duration_s: int, text: str) -> Proposal: ...

    async def accept(self, user: str, code: str | None) -> Proposal | None: ...

    async def pending_code(self, user: str) -> str | None: ...

    async def done(
        self, user: str, kind: Literal["silence", "ack"], fingerprint: str, description: str,
        silence_id: str | None = None,
    ) -> Done: ...  # fmt: skip

    async def keep(self, user: str, done: Done) -> None: ...

    async def undoable(self, user: str) -> Done | None: ...


class Lease(Protocol):
    """Held by at most one process at a time; taken over when the holder stops renewing it."""

    async def hold(self) -> bool:
        """True while this process holds the lease (taking or renewing it as needed)."""
        ...

    async def release(self) -> None: ...


class LocalDedup:
    def __init__(self, inner: Deduplicator) -> None:
        self.inner = inner

    async def seen(self, key: str) -> bool:
        return self.inner.seen(key)


class LocalBudget:
    def __init__(self, inner: SendBudget) -> None:
        self.inner = inner

    async def take(self, number: str) -> Decision:
        return self.inner.take(number)


@dataclass
class Stores:
    """Everything a process shares with its siblings, built once in the app's lifespan."""

    contexts: ContextStore
    pages: PageStore
    limiter: RateLimiter
    idempotency: Idempotency
    dedup: DedupStore
    budget: BudgetStore
    alerts: AlertStore
    actions: ActionStore
    rules_lease: Lease
    media: MediaStore
    shared: bool = False
    """True for Redis: several instances act as one."""

    async def close(self) -> None:
        """Release what must not outlive the process (the rules lease)."""
        await self.rules_lease.release()

    async def ping(self) -> None:
        """For /readyz: raises StoreUnavailable when the shared store cannot be reached (never, in memory)."""


CONTEXT_UNAVAILABLE = "(Conversation memory is unavailable right now: follow-ups won't work, full commands do.)"
"""Added to a reply that needed the user's context while the shared store is down."""
STATE_UNAVAILABLE = "Sorry, alert state is unavailable right now, so that can't be done. Try again in a minute."


def local_stores(settings: Settings) -> Stores:
    """The embedded default: everything in this process's memory."""
    from bot.alerting.actions import Actions
    from bot.alerting.rules.loop import FileLease
    from bot.alerting.state import AlertBook
    from bot.charts.media import InMemoryMediaStore
    from bot.state.memory.context import InMemoryContextStore
    from bot.state.memory.limits import InMemoryIdempotency, InMemoryRateLimiter, TokenBuckets
    from bot.state.memory.pages import InMemoryPageStore

    return Stores(
        contexts=InMemoryContextStore(settings.context_ttl_s, settings.context_max_users),
        pages=InMemoryPageStore(settings.context_ttl_s, settings.context_max_users),
        limiter=InMemoryRateLimiter(
            TokenBuckets(settings.rate_burst, settings.rate_per_minute),
            TokenBuckets(settings.global_rate_per_minute / 6, settings.global_rate_per_minute),
        ),
        idempotency=InMemoryIdempotency(),
        dedup=LocalDedup(Deduplicator(DEDUP_TTL_S)),
        budget=LocalBudget(SendBudget(settings.alert_budget_texts, settings.alert_budget_window_s)),
        alerts=AlertBook(),
        actions=Actions(undo_window_s=settings.undo_window_s),
        rules_lease=FileLease(settings.history_path.expanduser().resolve().parent / ".operator-rules.lock"),
        media=InMemoryMediaStore(settings.media_ttl_s),
    )


async def open_stores(settings: Settings) -> Stores:
    """Redis when REDIS_URL is set (several instances act as one), else this process's memory."""
    if not settings.redis_url:
        return local_stores(settings)
    from bot.state.redis.stores import open_redis_stores

    return await open_redis_stores(settings.redis_url, settings)
