"""Running the threshold rules inside `operator serve`: in exactly one process of the machine.

Each uvicorn worker builds the app, but rules must be evaluated (and texted) once: the first worker
to take an exclusive lock on a file beside the history evaluates them; the others keep trying at
every tick, so when that worker dies (and the kernel drops its lock) another takes over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bot.alerting.model import Notification
from bot.alerting.rules.model import RuleEngine, RuleFileError, load_rules, make_evaluator, run_rules
from bot.settings import ConfigError, Settings
from bot.state.memory.lease import FileLease
from bot.state.protocols import Lease, StoreUnavailable
from monitors.base import Kind
from monitors.registry import MonitorRegistry

log = logging.getLogger(__name__)


class LeasedRuleEngine(RuleEngine):
    """Ticks only while this process holds the lease (an empty tick otherwise)."""

    lease: Lease
    holding: bool = False

    async def tick(self) -> list[Notification]:
        try:
            held = await self.lease.hold()
        except StoreUnavailable:
            held = False  # without the shared store, nobody may be sure they are the only one
        if held != self.holding:
            self.holding = held
            log.info("rules lease %s", "taken: evaluating the rules here" if held else "lost")
        return await super().tick() if held else []


@asynccontextmanager
async def rules_running(
    settings: Settings,
    monitors: MonitorRegistry,
    sink: Callable[[Notification], Awaitable[object]],
    lease: Lease | None = None,
) -> AsyncIterator[LeasedRuleEngine | None]:
    """The rules loop for as long as the context lasts (nothing when no rules file is configured)."""
    if settings.rules_file is None:
        yield None
        return
    try:
        rules = load_rules(settings.rules_file, templates=settings.metric_templates(), users=settings.users)
    except RuleFileError as exc:
        raise ConfigError(str(exc)) from exc
    prometheus = next((m for m in monitors.for_kind(Kind.METRICS) if monitors.type_of(m) == "prometheus"), None)
    if prometheus is None:
        raise ConfigError("rules_file is set but no prometheus monitor is configured to evaluate it")
    engine = LeasedRuleEngine(rules, make_evaluator(prometheus))
    engine.lease = (
        lease
        if lease is not None
        else FileLease(settings.history_path.expanduser().resolve().parent / ".operator-rules.lock")
    )

    async def deliver(notification: Notification) -> None:
        await sink(notification)

    stop = asyncio.Event()
    task = asyncio.ensure_future(run_rules(engine, settings.rules_interval_s, deliver, stop))
    try:
        yield engine
    finally:
        stop.set()
        await task
        await engine.lease.release()
