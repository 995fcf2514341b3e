"""What a command handler may use, typed: built once per process by `open_runtime`, handed to every handler.

Handlers take exactly this and nothing else, so mypy sees that `alerts` is a Redis alert store when
Redis is configured and an in-memory one otherwise, and a test builds one with the parts it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.charts.renderer import ChartRenderer
from bot.observability import Metrics
from bot.oncall.service import OnCall
from bot.settings import Settings
from bot.state.protocols import ActionStore, AlertStore, MediaStore, PageStore, Subscriptions
from intents.models import Intent
from monitors.registry import MonitorRegistry
from monitors.resilience import HealthCache


class CommandInfo(Protocol):
    @property
    def usage(self) -> str: ...

    @property
    def help(self) -> str: ...


class Commands(Protocol):
    """The command registry as `help` reads it (structural, so this module needs nothing from the handlers)."""

    def get(self, intent: Intent) -> CommandInfo | None: ...


@dataclass(frozen=True)
class Services:
    settings: Settings
    monitors: MonitorRegistry
    commands: Commands
    """The registry the handlers are in (`help` lists it)."""
    health_cache: HealthCache
    alerts: AlertStore
    """Open alerts, acks and the tombstones of resolved ones (shared by every instance with Redis)."""
    actions: ActionStore
    """Silences waiting for their code, and what each person can still undo."""
    subscriptions: Subscriptions
    pages: PageStore | None = None
    """The rest of long answers, for "more"; None where nothing pages (tests)."""
    media: MediaStore | None = None
    """Where charts wait for Twilio to fetch them; None sends charts as text (the terminal)."""
    charts: ChartRenderer | None = None
    metrics: Metrics | None = None
    oncall: OnCall | None = None
    """Schedules, overrides and escalations; None when no `schedules:` or `escalation:` is configured."""
