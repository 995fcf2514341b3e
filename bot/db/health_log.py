"""Backend health over time, for the dashboard: one row per monitor per sample, kept 30 days.

`status` and `/readyz` say how the backends are now; an on-call engineer opening the dashboard after
a night of pages wants to know how they were. `HealthRecorder` asks every monitor every
`health_sample_s` (through the shared `HealthCache`, so it adds no load while people are asking
anyway) and stores the answers in `health_checks`, beside the audit history, with a count per
monitor per hour in `health_hours` for the long windows.

With several workers or instances every one of them runs a recorder, but only the one holding the
lease it is given records (the app passes the rules lease: one process per deployment already
holds it), so the table has one row per monitor per sample, not one per process.

A recorder must never take the app down: a database or lease failure is logged once when it
starts and once when it ends, and the next sample tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    delete,
    insert,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.db.cleaning import clean_text
from bot.db.database import Database, DatabaseUnavailable
from bot.db.schema import DETAIL_MAX, HEALTH_CHECKS, HEALTH_HOURS, MONITOR_MAX
from bot.state.holding import LeaseHolding
from bot.state.protocols import Lease
from monitors.base import Monitor
from monitors.resilience import HealthCache, fan_out

log = logging.getLogger(__name__)

KEEP_S = 30 * 86_400.0
"""Samples older than this are pruned: the dashboard's longest window is 30 days."""
TIMEOUT_S = 5.0
"""Per database call, like the history's: a hung database must not hold the loop forever."""


@dataclass(frozen=True)
class Sample:
    """One monitor's health at one moment, as stored."""

    at: datetime
    monitor: str
    ok: bool
    detail: str | None
    latency_ms: float | None


async def store_samples(database: Database, samples: Sequence[Sample], timeout_s: float = TIMEOUT_S) -> None:
    """Insert samples and add them to their hours' counts, in one transaction. Raises `DatabaseUnavailable`."""
    if not samples:
        return
    rows = [
        {"at": s.at, "monitor": s.monitor[:MONITOR_MAX], "ok": s.ok, "latency_ms": s.latency_ms,
         "detail": clean_text(s.detail or "", DETAIL_MAX) or None}
        for s in samples
    ]  # fmt: skip
    hours: dict[tuple[str, int], list[int]] = {}
    for sample in samples:
        counts = hours.setdefault((sample.monitor[:MONITOR_MAX], hour_of(sample.at)), [0, 0])
        counts[0] += 1
        counts[1] += 1 if sample.ok else 0
    hour_rows = [{"monitor": m, "hour": h, "samples": n, "ups": up} for (m, h), (n, up) in hours.items()]

    async def insert_rows() -> None:
        async with database.engine.begin() as conn:
            await conn.execute(insert(HEALTH_CHECKS), rows)
            add = sqlite_insert(HEALTH_HOURS) if conn.dialect.name == "sqlite" else postgresql_insert(HEALTH_HOURS)
            c = HEALTH_HOURS.c
            upsert = add.on_conflict_do_update(
                index_elements=[c.monitor, c.hour],
                set_={"samples": c.samples + add.excluded.samples, "ups": c.ups + add.excluded.ups},
            )
            await conn.execute(upsert, hour_rows)  # one row per key (summed above): PostgreSQL refuses repeats

    await database.bounded("recording health", insert_rows, timeout_s)


def hour_of(at: datetime) -> int:
    """Whole hours since the epoch: the key of `health_hours`."""
    return math.floor(at.timestamp() / 3600)


async def prune(database: Database, before: datetime, timeout_s: float = TIMEOUT_S) -> int:
    """Delete samples older than `before`, and hours wholly before it; returns how many samples. Raises
    `DatabaseUnavailable`."""

    async def delete_rows() -> int:
        async with database.engine.begin() as conn:
            result = await conn.execute(delete(HEALTH_CHECKS).where(HEALTH_CHECKS.c.at < before))
            await conn.execute(delete(HEALTH_HOURS).where(HEALTH_HOURS.c.hour < hour_of(before)))
            return int(result.rowcount or 0)

    return await database.bounded("pruning health", delete_rows, timeout_s)


class HealthRecorder:
    """Samples every monitor's health into `health_checks` while it holds `lease`.

    `sample()` is one round (the loop's body, and what tests call); `run(stop)` is the loop.
    """

    def __init__(
        self,
        database: Database,
        monitors: Iterable[Monitor],
        cache: HealthCache,
        lease: Lease,
        *,
        interval_s: float,
        deadline_s: float,
        keep_s: float = KEEP_S,
        timeout_s: float = TIMEOUT_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.monitors = monitors
        self.cache = cache
        self.holding = LeaseHolding(lease, log, "health history: recording here",
                                    "health history: another process records it")  # fmt: skip
        self.interval_s = interval_s
        self.deadline_s = deadline_s
        self.keep_s = keep_s
        self.timeout_s = timeout_s
        self._now = now
        self.failing: str | None = None
        """The reason of the current failure episode (logged once at its start), or None."""

    async def sample(self) -> int:
        """One round: check every monitor and record one row each, if this process holds the lease.

        Returns the rows recorded (0 when another process holds the lease). Raises `DatabaseUnavailable`.
        """
        if not await self.holding.check():
            return 0
        monitors = list(self.monitors)
        at = self._now()
        samples = list(await asyncio.gather(*(self._check(monitor, at) for monitor in monitors)))
        await store_samples(self.database, samples, self.timeout_s)
        await prune(self.database, at - timedelta(seconds=self.keep_s), self.timeout_s)
        return len(samples)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every `interval_s` until `stop` is set; never raises (but cancellation).

        The first sample is one interval after the start, not at once: a deploy restarting every worker
        should not ask every backend at the same moment, and a process that lives only seconds (a test,
        a failed start) records nothing.
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set():
                return
            try:
                await self.sample()
            except DatabaseUnavailable as exc:
                self._failed(str(exc))
            except Exception as exc:  # the loop's outermost frame: one bad round must not end the recording
                self._failed(f"health recording failed ({type(exc).__name__})")
            else:
                self._recovered()

    async def _check(self, monitor: Monitor, at: datetime) -> Sample:
        """One monitor through `fan_out` (alone, so its own time is measured), as a sample."""
        started = time.perf_counter()
        [checked] = await fan_out([monitor], self.cache, self.deadline_s)
        took_ms = (time.perf_counter() - started) * 1000
        ok = checked.health is not None and checked.health.ok
        if checked.health is not None:
            detail = checked.health.detail
        else:
            detail = str(checked.error) if checked.error is not None else "no answer"
        return Sample(at, monitor.name, ok, detail, None if checked.age_s > 0 else round(took_ms, 1))

    def _failed(self, reason: str) -> None:
        if self.failing is None:
            log.error("health history: %s; will keep trying", reason)
        self.failing = reason

    def _recovered(self) -> None:
        if self.failing is not None:
            log.info("health history: recording again")
        self.failing = None


@contextlib.asynccontextmanager
async def health_recording(
    database: Database,
    monitors: Iterable[Monitor],
    cache: HealthCache,
    lease: Lease,
    *,
    interval_s: float,
    deadline_s: float,
) -> AsyncIterator[HealthRecorder]:
    """A recorder running in the background for as long as the context lasts (stopped on exit).

    The lease is not released here: it is shared (the rules lease), and its owner releases it.
    """
    recorder = HealthRecorder(database, monitors, cache, lease, interval_s=interval_s, deadline_s=deadline_s)
    stop = asyncio.Event()
    task = asyncio.ensure_future(recorder.run(stop))
    try:
        yield recorder
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, recorder.deadline_s + 2 * recorder.timeout_s)
        except TimeoutError:
            log.warning("health history: the last sample was cut short at shutdown")
