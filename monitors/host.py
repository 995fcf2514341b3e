"""The local host through psutil: the embedded default, so a fresh install answers with real numbers.

It knows only this machine, now: no services, no history. A question about a service or a time
range gets this host's current value and says so, rather than pretending.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import psutil
from pydantic import BaseModel, Field

from monitors.base import Health, Kind, MetricQuery, MetricResult, Query, Result, Sample
from monitors.errors import BackendError, BackendQueryError
from monitors.formatting import human
from monitors.registry import BuildContext

SUPPORTED = {"cpu": "%", "memory": "%", "disk": "%", "up": ""}


class HostConfig(BaseModel):
    path: str = "/"
    """The filesystem whose usage is "disk"."""
    timeout_s: float = Field(2.0, gt=0, le=30)


class Host:
    display = "Host"
    system = "host"
    kinds = frozenset({Kind.METRICS})

    def __init__(self, name: str, config: HostConfig) -> None:
        self.name = name
        self.path = config.path
        self.timeout_s = config.timeout_s
        psutil.cpu_percent(interval=None)  # start the CPU clock: each reading averages since the one before

    async def health(self) -> Health:
        cpu, memory, disk = await asyncio.to_thread(self._readings)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return Health(
            True, f"cpu {human(cpu, '%')}, mem {human(memory, '%')}, disk {human(disk, '%')}, load {load:.2f}"
        )

    async def query(self, request: Query) -> Result:
        if not isinstance(request, MetricQuery) or request.raw or request.metric not in SUPPORTED:
            raise BackendQueryError(self.display, "only cpu, memory, disk and up for this host")
        cpu, memory, disk = await asyncio.to_thread(self._readings)
        value = {"cpu": cpu, "memory": memory, "disk": disk, "up": 1.0}[request.metric]
        return MetricResult(request, samples=(Sample({}, value),), unit=SUPPORTED[request.metric])

    def format(self, result: Result) -> str:
        assert isinstance(result, MetricResult)
        query = result.query
        value = result.samples[0].value if result.samples else float("nan")
        shown = "up" if query.metric == "up" else human(value, result.unit)
        caveats = [c for c in (
            f"no per-service data for {query.service}" if query.service else "",
            "no history, value now" if query.range_s else "",
        ) if c]  # fmt: skip
        note = f" ({'; '.join(caveats)})" if caveats else ""
        return f"this host {query.metric.replace('_', ' ')}: {shown}{note}"

    def _readings(self) -> tuple[float, float, float]:
        try:
            # Non-blocking: the CPU share since the previous reading (the health cache spaces them ~10 s).
            return (psutil.cpu_percent(interval=None), psutil.virtual_memory().percent,
                    psutil.disk_usage(self.path).percent)  # fmt: skip
        except (OSError, psutil.Error) as exc:
            raise BackendError(self.display, "cannot read host figures") from exc


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Host:
    return Host(name, HostConfig(**config))
