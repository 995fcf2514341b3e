"""The process-wide resources of a running bot, opened once and closed once.

One `httpx.AsyncClient` for every backend, the monitors built on it, the health cache and the
conversation path. `operator chat` and (later) the web app's lifespan both use `open_runtime`,
so nothing is created at import and nothing per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bot.charts.renderer import ChartRenderer
from bot.core.commands import default_registry
from bot.core.conversation import Conversation
from bot.core.roles import build_parser, build_store
from bot.settings import ConfigError, Settings
from bot.state.memory.actions import Actions
from bot.state.memory.alerts import AlertBook
from bot.state.memory.subscriptions import InMemorySubscriptions
from bot.state.protocols import ContextStore
from intents import Parser
from monitors.http import new_client
from monitors.registry import BuildContext, MonitorConfigError, MonitorRegistry, build_monitors
from monitors.resilience import HealthCache


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    client: httpx.AsyncClient
    monitors: MonitorRegistry
    conversation: Conversation


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    parser: Parser | None = None,
    client: httpx.AsyncClient | None = None,
    extra: Mapping[str, Any] | None = None,
    contexts: ContextStore | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a running bot shares; the client is closed on exit (unless it was given)."""
    own_client = client is None
    http = client or new_client()
    renderer = ChartRenderer()
    try:
        context = BuildContext(http, settings.metric_templates(), settings.secrets())
        try:
            monitors = build_monitors(settings.monitors, context)
        except MonitorConfigError as exc:
            raise ConfigError(str(exc)) from exc
        resources = {
            "settings": settings,
            "monitors": monitors,
            "health_cache": HealthCache(settings.health_cache_ttl_s),
            "alert_book": AlertBook(),
            "actions": Actions(undo_window_s=settings.undo_window_s),
            "subscriptions": InMemorySubscriptions(),
            "charts": renderer,
            **(extra or {}),
        }
        store = contexts if contexts is not None else build_store(settings)
        conversation = Conversation(parser or build_parser(settings), store, default_registry(), resources)
        yield Runtime(settings, http, monitors, conversation)
    finally:
        renderer.close()
        if own_client:
            await http.aclose()
