"""Running the threshold rules inside `operator serve`: in exactly one process of the machine.

Each uvicorn worker builds the app, but rules must be evaluated (and texted) once: the first worker
to take an exclusive lock on a file beside the history evaluates them; the others keep trying at
every tick, so when that worker dies (and the kernel drops its lock) another takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bot.alerting.model import Notification
from bot.alerting.rules.check import make_evaluator
from bot.alerting.rules.engine import RuleEngine, brief
from bot.alerting.rules.model import RuleFileError, Sink, load_rules
from bot.settings import ConfigError, Settings
from bot.state.holding import LeaseHolding
from bot.state.memory.lease import FileLease
from bot.state.protocols import Lease
from monitors.base import Kind
from monitors.registry import MonitorRegistry

log = logging.getLogger(__name__)


class LeasedRuleEngine(RuleEngine):
    """Ticks only while this process holds the lease (an empty tick otherwise)."""

    holding: LeaseHolding

    async def tick(self) -> list[Notification]:
        return await super().tick() if await self.holding.check() else []


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
    lease = lease if lease is not None else FileLease(settings.rules_lock_path)
    engine.holding = LeaseHolding(lease, log, "rules lease taken: evaluating the rules here", "rules lease lost")

    async def deliver(notification: Notification) -> None:
        await sink(notification)

    stop = asyncio.Event()
    task = asyncio.ensure_future(run_rules(engine, settings.rules_interval_s, deliver, stop))
    try:
        yield engine
    finally:
        stop.set()
        await task
        await lease.release()


# --- the background loop ----------------------------------------------------------------------------


async def run_rules(engine: RuleEngine, interval_s: float, sink: Sink, stop: asyncio.Event) -> None:
    """Tick every `interval_s` until `stop` is set, handing each notification to `sink`.

    Ticks run one after another, never two at once; a tick that overruns its interval makes the loop
    skip the slots it missed rather than run a burst of catch-up ticks. This is a background task's
    outermost frame: a failed tick or delivery is logged (type and scrubbed message, no traceback)
    and the loop carries on.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not stop.is_set():
        try:
            notifications = await engine.tick()
        except Exception as exc:  # the outermost loop: one bad tick must not end alerting
            log.error("rules tick failed: %s", brief(exc))
            notifications = []
        for notification in notifications:
            try:
                await sink(notification)
            except Exception as exc:  # the outermost loop: a failed delivery must not stop the others
                log.error("rule %s: notification not delivered: %s", notification.group_key, brief(exc))
        now = loop.time()
        next_at += interval_s
        if next_at <= now:
            next_at += math.ceil((now - next_at) / interval_s + 1e-9) * interval_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(next_at - now):
                await stop.wait()
