"""The local host through psutil: the embedded default, so a fresh install answers with real numbers.

It knows only this machine, now: no services, no history. A question about a service or a time
range gets this host's current value and says so, rather than pretending.

CPU is a share of time, so it needs a window. `psutil.cpu_percent(interval=None)` measures since
the previous call, which made "cpu" texted twice in a second read 0.0% and then 50.0%. Instead a
sampler, started with the monitor (`start`, from the runtime) and stopped with it, records the CPU
time counters every `sample_s` and keeps the last `window_s`; a reading compares the oldest kept
counters with the counters now, so it always covers up to a minute and never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from monitors.base import Health, Kind, MetricQuery, MetricResult, Query, Result, Sample
from monitors.errors import BackendError, BackendQueryError
from monitors.formatting import duration, human
from monitors.registry import BuildContext

SUPPORTED = {"cpu": "%", "memory": "%", "disk": "%", "up": "s"}
"""What this host answers; "up" is its uptime in seconds."""
MIN_WINDOW_S = 1.0
"""A CPU share over less than this is noise: the first reading after start waits for it (once)."""

Clock = Callable[[], float]
CpuTimes = Callable[[], Any]


class HostConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/"
    """The filesystem whose usage is "disk"."""
    timeout_s: float = Field(2.0, gt=0, le=30)
    sample_s: float = Field(5.0, gt=0, le=60)
    """How often the CPU counters are recorded."""
    window_s: float = Field(60.0, gt=0, le=3600)
    """How far back a CPU reading looks (at most)."""


def _busy_and_total(times: Any) -> tuple[float, float]:
    """psutil's own split of the counters: guest time is already inside user time on Linux."""
    total = sum(times)
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class CpuWindow:
    """CPU counters recorded every `sample_s`, the last `window_s` kept; the busy share from the oldest
    kept record to now. Reading never blocks: the counters are one read of /proc/stat."""

    def __init__(
        self, sample_s: float = 5.0, window_s: float = 60.0, *, clock: Clock = time.monotonic,
        read: CpuTimes = psutil.cpu_times,
    ) -> None:  # fmt: skip
        self.sample_s = sample_s
        self.window_s = window_s
        self._clock = clock
        self._read = read
        self._samples: deque[tuple[float, tuple[float, float]]] = deque()

    def sample(self) -> None:
        """Records the counters now and forgets those no longer needed for a `window_s` window."""
        now = self._clock()
        self._samples.append((now, _busy_and_total(self._read())))
        while len(self._samples) > 1 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def age_s(self) -> float:
        """How far back a reading now would look (0 with nothing recorded)."""
        return self._clock() - self._samples[0][0] if self._samples else 0.0

    def percent(self) -> tuple[float, float]:
        """(busy %, seconds covered) from the oldest kept record to the counters now."""
        if not self._samples:
            self.sample()
        since, (busy0, total0) = self._samples[0]
        busy1, total1 = _busy_and_total(self._read())
        spent = total1 - total0
        share = 0.0 if spent <= 0 else min(100.0, max(0.0, 100.0 * (busy1 - busy0) / spent))
        return share, self._clock() - since

    async def run(self) -> None:
        """Samples until cancelled (the monitor's `stop`)."""
        while True:
            self.sample()
            await asyncio.sleep(self.sample_s)


class Host:
    display = "Host"
    system = "host"
    kinds = frozenset({Kind.METRICS})

    def __init__(self, name: str, config: HostConfig, *, cpu: CpuWindow | None = None,
                 boot_time: Callable[[], float] = psutil.boot_time, now: Clock = time.time) -> None:  # fmt: skip
        self.name = name
        self.path = config.path
        self.timeout_s = config.timeout_s
        self.cpu = cpu or CpuWindow(config.sample_s, config.window_s)
        self._boot_time = boot_time
        self._now = now
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts the CPU sampler (the runtime calls this once the event loop runs)."""
        if self._sampler is None:
            self._sampler = asyncio.create_task(self.cpu.run(), name=f"{self.name} cpu sampler")

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None

    @property
    def sampling(self) -> bool:
        return self._sampler is not None and not self._sampler.done()

    async def health(self) -> Health:
        cpu, window, memory, disk = await self._readings()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return Health(
            True, f"cpu {human(cpu, '%')}, mem {human(memory, '%')}, disk {human(disk, '%')}, load {load:.2f}"
        )

    async def query(self, request: Query) -> Result:
        if not isinstance(request, MetricQuery) or request.raw or request.metric not in SUPPORTED:
            raise BackendQueryError(self.display, "only cpu, memory, disk and up for this host")
        if request.metric == "up":
            value = self._uptime_s()
            return MetricResult(request, samples=(Sample({}, value),), unit=SUPPORTED["up"])
        cpu, window, memory, disk = await self._readings()
        value = {"cpu": cpu, "memory": memory, "disk": disk}[request.metric]
        labels = {"window_s": f"{window:.0f}"} if request.metric == "cpu" else {}
        return MetricResult(request, samples=(Sample(labels, value),), unit=SUPPORTED[request.metric])

    def format(self, result: Result) -> str:
        assert isinstance(result, MetricResult)
        query = result.query
        sample = result.samples[0] if result.samples else Sample({}, float("nan"))
        caveats = [c for c in (
            f"no per-service data for {query.service}" if query.service else "",
            "no history, value now" if query.range_s else "",
        ) if c]  # fmt: skip
        if query.metric == "up":
            note = f" ({'; '.join(caveats)})" if caveats else ""
            return f"this host: up {uptime(sample.value)}{note}"
        if "window_s" in sample.labels:
            caveats.insert(0, f"last {duration(float(sample.labels['window_s']))}")
        note = f" ({'; '.join(caveats)})" if caveats else ""
        return f"this host {query.metric.replace('_', ' ')}: {human(sample.value, result.unit)}{note}"

    def _uptime_s(self) -> float:
        try:
            return max(0.0, self._now() - self._boot_time())
        except (OSError, psutil.Error) as exc:
            raise BackendError(self.display, "cannot read the boot time") from exc

    async def _readings(self) -> tuple[float, float, float, float]:
        """(cpu %, the seconds it covers, memory %, disk %). Right after start the CPU window is shorter
        than `MIN_WINDOW_S`; this waits for the rest of it (asleep, never blocking the loop)."""
        if not self.sampling and not self.cpu.age_s():
            self.cpu.sample()  # used without start (a one-off command): a window from now
        short = MIN_WINDOW_S - self.cpu.age_s()
        if short > 0:
            await asyncio.sleep(short)
        return await asyncio.to_thread(self._read)

    def _read(self) -> tuple[float, float, float, float]:
        try:
            cpu, window = self.cpu.percent()
            return cpu, window, psutil.virtual_memory().percent, psutil.disk_usage(self.path).percent
        except (OSError, psutil.Error) as exc:
            raise BackendError(self.display, "cannot read host figures") from exc


def uptime(seconds: float) -> str:
    """ "3d 4h", "5h 12m", "7m", "40s": two units at most."""
    seconds = int(max(0.0, seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Host:
    return Host(name, HostConfig(**config))
