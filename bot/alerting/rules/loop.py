"""Running the threshold rules inside `operator serve`: in exactly one process of the machine.

Each uvicorn worker builds the app, but rules must be evaluated (and texted) once: the first worker
to take an exclusive lock on a file beside the history evaluates them; the others keep trying at
every tick, so when that worker dies (and the kernel drops its lock) another takes over.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.alerting.model import Notification
from bot.alerting.rules.model import RuleEngine, RuleFileError, load_rules, make_evaluator, run_rules
from bot.settings import ConfigError, Settings
from bot.state.protocols import Lease, StoreUnavailable
from monitors.base import Kind
from monitors.registry import MonitorRegistry

log = logging.getLogger(__name__)


class FileLease:
    """An exclusive, non-blocking lock on a file, held until release or process death: the lease for the
    workers of one machine (several machines share a Redis lease instead)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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
