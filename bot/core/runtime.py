"""The process-wide parts of a running bot, opened once and closed once.

One `httpx.AsyncClient` for every backend, the monitors built on it, the services handlers use and
the conversation path. `operator chat` and the web app's lifespan both use `open_runtime`, so nothing
is created at import and nothing per request; what the caller has already opened (the shared stores,
the subscriptions' database) is handed in and used as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from bot.charts.renderer import ChartRenderer
from bot.core.commands import default_registry
from bot.core.conversation import Conversation
from bot.core.services import Services
from bot.db.audit import AuditWriter
from bot.observability import Metrics
from bot.oncall.service import OnCall
from bot.settings import ConfigError, Settings
from bot.sms.outbound import TwilioSender, build_sender
from bot.state.memory.context import InMemoryContextStore
from bot.state.memory.subscriptions import InMemorySubscriptions
from bot.state.protocols import Stores, Subscriptions
from bot.state.stores import local_stores
from intents import Parser
from monitors.http import new_client
from monitors.registry import BuildContext, MonitorConfigError, MonitorRegistry, build_monitors
from monitors.resilience import HealthCache


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    client: httpx.AsyncClient
    services: Services
    conversation: Conversation
    sender: TwilioSender | None = None
    """Texts and calls the bot starts itself, through Twilio's REST API; None without Twilio credentials."""

    @property
    def monitors(self) -> MonitorRegistry:
        return self.services.monitors


def build_parser(settings: Settings) -> Parser:
    return Parser(settings.catalog())


def build_store(settings: Settings) -> InMemoryContextStore:
    return InMemoryContextStore(ttl_s=settings.context_ttl_s, max_users=settings.context_max_users)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    parser: Parser | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    stores: Stores | None = None,
    subscriptions: Subscriptions | None = None,
    metrics: Metrics | None = None,
    media: bool = True,
    audit: AuditWriter | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a running bot shares; the client is closed on exit (unless it was given).

    Without `stores` the process keeps its state in memory (the terminal, tests); without
    `subscriptions` choices last as long as the process. `media=False` sends charts as text. Monitors
    with background work (the host's CPU sampler) run from entry to exit.
    """
    own_client = client is None
    http = client or new_client()
    renderer = ChartRenderer()
    try:
        context = BuildContext(http, settings.metric_templates(), settings.secrets())
        try:
            monitors = build_monitors(settings.monitors, context)
        except MonitorConfigError as exc:
            raise ConfigError(str(exc)) from exc
        state = stores if stores is not None else local_stores(settings)
        commands = default_registry()
        chosen = subscriptions if subscriptions is not None else InMemorySubscriptions()
        sender = build_sender(settings, http)
        oncall = None
        if settings.schedules or settings.escalation:
            oncall = OnCall(settings, escalations=state.escalations, overrides=state.overrides, alerts=state.alerts,
                            contexts=state.contexts, subscriptions=chosen, budget=state.budget, sender=sender,
                            caller=sender, writer=monitors.alert_writer, audit=audit, metrics=metrics)  # fmt: skip
        services = Services(
            settings=settings,
            monitors=monitors,
            commands=commands,
            health_cache=HealthCache(settings.health_cache_ttl_s),
            alerts=state.alerts,
            actions=state.actions,
            subscriptions=chosen,
            pages=state.pages,
            media=state.media if media else None,
            charts=renderer,
            metrics=metrics,
            oncall=oncall,
        )
        conversation = Conversation(parser or build_parser(settings), state.contexts, commands, services)
        await monitors.start()
        try:
            yield Runtime(settings, http, services, conversation, sender)
        finally:
            await monitors.stop()
    finally:
        renderer.close()
        if own_client:
            await http.aclose()
