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
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.db.history import History, HistoryUnavailable, UtcDateTime, clean_text
from bot.state.protocols import Lease, StoreUnavailable
from monitors.base import Monitor
from monitors.resilience import HealthCache, fan_out

log = logging.getLogger(__name__)

MONITOR_MAX = 64
DETAIL_MAX = 200
KEEP_S = 30 * 86_400.0
"""Samples older than this are pruned: the dashboard's longest window is 30 days."""
TIMEOUT_S = 5.0
"""Per database call, like the history's: a hung database must not hold the loop forever."""

METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)
"""Its own metadata (revision 0002 creates it), with the history's naming convention."""

HEALTH_CHECKS = Table(
    "health_checks",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),  # windows and pruning are by time
    Column("monitor", String(MONITOR_MAX), nullable=False),
    Column("ok", Boolean(), nullable=False),
    Column("detail", String(DETAIL_MAX)),
    Column("latency_ms", Float()),
)
"""`latency_ms` is how long the health check took; NULL when the answer came from the health cache
(someone else had just asked) and so says nothing about this sample."""
Index("ix_health_checks_monitor_at", HEALTH_CHECKS.c.monitor, HEALTH_CHECKS.c.at)  # each monitor's newest sample

HEALTH_HOURS = Table(
    "health_hours",
    METADATA,
    Column("monitor", String(MONITOR_MAX), primary_key=True),
    Column("hour", BigInteger(), primary_key=True),
    Column("samples", Integer(), nullable=False),
    Column("ups", Integer(), nullable=False),
)
"""Samples and how many were up, per monitor per hour (`hour` counts whole hours since the epoch, UTC),
kept beside the samples as they are stored. A 30-day window is 720 of these per monitor instead of
43,200 samples: the week and month views read them; a day or less reads the samples."""


@dataclass(frozen=True)
class Sample:
    """One monitor's health at one moment, as stored."""

    at: datetime
    monitor: str
    ok: bool
    detail: str | None
    latency_ms: float | None


async def store_samples(history: History, samples: Sequence[Sample], timeout_s: float = TIMEOUT_S) -> None:
    """Insert samples and add them to their hours' counts, in one transaction. Raises `HistoryUnavailable`."""
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
        async with history.engine.begin() as conn:
            await conn.execute(insert(HEALTH_CHECKS), rows)
            add = sqlite_insert(HEALTH_HOURS) if conn.dialect.name == "sqlite" else postgresql_insert(HEALTH_HOURS)
            c = HEALTH_HOURS.c
            upsert = add.on_conflict_do_update(
                index_elements=[c.monitor, c.hour],
                set_={"samples": c.samples + add.excluded.samples, "ups": c.ups + add.excluded.ups},
            )
            await conn.execute(upsert, hour_rows)  # one row per key (summed above): PostgreSQL refuses repeats

    await history.bounded("recording health", insert_rows, timeout_s)


def hour_of(at: datetime) -> int:
    """Whole hours since the epoch: the key of `health_hours`."""
    return math.floor(at.timestamp() / 3600)


async def prune(history: History, before: datetime, timeout_s: float = TIMEOUT_S) -> int:
    """Delete samples older than `before`, and hours wholly before it; returns how many samples. Raises
    `HistoryUnavailable`."""

    async def delete_rows() -> int:
        async with history.engine.begin() as conn:
            result = await conn.execute(delete(HEALTH_CHECKS).where(HEALTH_CHECKS.c.at < before))
            await conn.execute(delete(HEALTH_HOURS).where(HEALTH_HOURS.c.hour < hour_of(before)))
            return int(result.rowcount or 0)

    return await history.bounded("pruning health", delete_rows, timeout_s)


class HealthRecorder:
    """Samples every monitor's health into `health_checks` while it holds `lease`.

    `sample()` is one round (the loop's body, and what tests call); `run(stop)` is the loop.
    """

    def __init__(
        self,
        history: History,
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
        self.history = history
        self.monitors = monitors
        self.cache = cache
        self.lease = lease
        self.interval_s = interval_s
        self.deadline_s = deadline_s
        self.keep_s = keep_s
        self.timeout_s = timeout_s
        self._now = now
        self.holding = False
        self.failing: str | None = None
        """The reason of the current failure episode (logged once at its start), or None."""

    async def sample(self) -> int:
        """One round: check every monitor and record one row each, if this process holds the lease.

        Returns the rows recorded (0 when another process holds the lease). Raises `HistoryUnavailable`.
        """
        if not await self._hold():
            return 0
        monitors = list(self.monitors)
        at = self._now()
        samples = list(await asyncio.gather(*(self._check(monitor, at) for monitor in monitors)))
        await store_samples(self.history, samples, self.timeout_s)
        await prune(self.history, at - timedelta(seconds=self.keep_s), self.timeout_s)
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
            except HistoryUnavailable as exc:
                self._failed(str(exc))
            except Exception as exc:  # the loop's outermost frame: one bad round must not end the recording
                self._failed(f"health recording failed ({type(exc).__name__})")
            else:
                self._recovered()

    async def _hold(self) -> bool:
        try:
            held = await self.lease.hold()
        except StoreUnavailable:
            held = False  # without the shared store nobody can be sure to be the only recorder
        if held != self.holding:
            self.holding = held
            log.info("health history: %s", "recording here" if held else "another process records it")
        return held

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
    history: History,
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
    recorder = HealthRecorder(history, monitors, cache, lease, interval_s=interval_s, deadline_s=deadline_s)
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
