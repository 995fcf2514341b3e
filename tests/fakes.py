"""Test doubles of our own protocols (never of libraries): monitors whose behaviour a test scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.commands import default_registry
from bot.core.commands.registry import CommandRegistry
from bot.core.services import Services
from bot.settings import Settings
from bot.sms.outbound import Delivery
from bot.sms.privacy import mask_number
from bot.state.memory.subscriptions import InMemorySubscriptions
from bot.state.stores import local_stores
from monitors.base import (
    Alert,
    AlertList,
    AlertQuery,
    Health,
    Kind,
    LogQuery,
    LogResult,
    MetricQuery,
    MetricResult,
    Query,
    Result,
    Sample,
)
from monitors.registry import MonitorRegistry
from monitors.resilience import HealthCache


@dataclass
class Scripted:
    """A monitor that waits `delay_s` and then answers or raises what the test says."""

    name: str
    delay_s: float = 0.0
    error: Exception | None = None
    display: str = ""
    system: str = "test"
    kinds: frozenset[Kind] = frozenset({Kind.METRICS})
    timeout_s: float = 1.0
    calls: int = field(default=0)

    def __post_init__(self) -> None:
        self.display = self.display or self.name.title()

    async def health(self) -> Health:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return Health(True, f"fine after {self.delay_s:g}s")

    answer: Result | None = None
    """What `query` returns (default: an empty result of the query's kind)."""
    queries: list[Query] = field(default_factory=list)

    async def query(self, request: Query) -> Result:
        self.queries.append(request)
        await self.health()
        if self.answer is not None:
            return self.answer
        if isinstance(request, AlertQuery):
            return AlertList(request)
        if isinstance(request, LogQuery):
            return LogResult(request)
        assert isinstance(request, MetricQuery)
        return MetricResult(request, samples=(Sample({}, 42.0),))

    def format(self, result: Result) -> str:
        return f"{self.display} says {type(result).__name__}"


@dataclass
class ScriptedWriter(Scripted):
    """An alerting monitor that can also silence (an `AlertWriter`), slow or failing as scripted."""

    kinds: frozenset[Kind] = frozenset({Kind.ALERTS})
    silences: list[tuple[str, int]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    async def create_silence(self, alert: Alert, duration_s: int, created_by: str, comment: str) -> str:
        await self.health()
        self.silences.append((alert.name, duration_s))
        return f"silence-{len(self.silences)}"

    async def expire_silence(self, silence_id: str) -> None:
        await self.health()
        self.expired.append(silence_id)


@dataclass
class RecordingSender:
    """A `Sender` that keeps what it was asked to send; answers `outcome` or an accepted Delivery."""

    sent: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    outcome: Delivery | None = None

    async def send(self, to: str, body: str, media_urls: Sequence[str] = ()) -> Delivery:
        self.sent.append((to, body, tuple(media_urls)))
        return self.outcome or Delivery(mask_number(to), f"SM{len(self.sent):032x}", "queued", 1)


@dataclass
class RecordingCaller:
    """A `Caller` that keeps the calls it was asked to place; answers `outcome` or an accepted Delivery."""

    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    outcome: Delivery | None = None

    async def call(self, to: str, url: str, status_callback: str | None = None) -> Delivery:
        self.calls.append((to, url, status_callback))
        return self.outcome or Delivery(mask_number(to), f"CA{len(self.calls):032x}", "queued", 1)


def in_memory_services(
    settings: Settings,
    monitors: MonitorRegistry | None = None,
    commands: CommandRegistry | None = None,
    **parts: Any,
) -> Services:
    """Services on in-memory stores, for a conversation built by hand (the app builds its own in its lifespan)."""
    stores = local_stores(settings)
    return Services(
        settings=settings, monitors=monitors if monitors is not None else MonitorRegistry(),
        commands=commands if commands is not None else default_registry(), health_cache=HealthCache(),
        alerts=stores.alerts, actions=stores.actions, subscriptions=InMemorySubscriptions(), pages=stores.pages,
        **parts,
    )  # fmt: skip
