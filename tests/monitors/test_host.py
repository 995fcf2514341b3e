"""The host monitor: CPU over a real window sampled in the background, its lifecycle, and uptime."""

from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest

from bot.core.runtime import open_runtime
from bot.settings import load_settings
from monitors.base import MetricQuery
from monitors.host import CpuWindow, Host, HostConfig, uptime
from monitors.registry import BuildContext, build_monitors
from monitors.resilience import Guarded

pytestmark = pytest.mark.anyio

Times = namedtuple("Times", "user system idle iowait guest guest_nice")


class FakeCpu:
    """CPU counters that advance as the test says; a clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.busy = 0.0
        self.idle = 0.0

    def run(self, seconds: float, busy_share: float) -> None:
        self.now += seconds
        self.busy += seconds * busy_share
        self.idle += seconds * (1 - busy_share)

    def read(self) -> Times:
        return Times(self.busy, 0.0, self.idle, 0.0, 0.0, 0.0)

    def clock(self) -> float:
        return self.now


def test_two_readings_a_second_apart_cover_the_same_minute() -> None:
    fake = FakeCpu()
    window = CpuWindow(5.0, 60.0, clock=fake.clock, read=fake.read)
    for _ in range(12):  # a minute at 50% busy, sampled every 5 s
        window.sample()
        fake.run(5.0, 0.5)
    first, covered = window.percent()
    fake.run(1.0, 0.5)
    second, _ = window.percent()
    assert (first, second) == (50.0, 50.0)
    assert 60.0 <= covered <= 65.0


def test_the_window_forgets_what_is_older_than_a_minute() -> None:
    fake = FakeCpu()
    window = CpuWindow(5.0, 60.0, clock=fake.clock, read=fake.read)
    for _ in range(12):  # a busy minute …
        window.sample()
        fake.run(5.0, 1.0)
    for _ in range(13):  # … then an idle one
        window.sample()
        fake.run(5.0, 0.0)
    share, covered = window.percent()
    assert share == 0.0 and covered <= 65.0


def test_counters_that_do_not_move_read_zero_not_an_error() -> None:
    fake = FakeCpu()
    window = CpuWindow(clock=fake.clock, read=fake.read)
    window.sample()
    assert window.percent()[0] == 0.0


async def test_texting_cpu_twice_in_a_second_gives_the_same_windowed_answer() -> None:
    fake = FakeCpu()
    host = Host("host", HostConfig(), cpu=CpuWindow(5.0, 60.0, clock=fake.clock, read=fake.read))
    for _ in range(6):
        host.cpu.sample()
        fake.run(5.0, 0.25)
    texts = []
    for _ in range(2):
        texts.append(host.format(await host.query(MetricQuery("cpu"))))
        fake.run(0.5, 1.0)  # a burst between the two texts moves a 30 s window by little
    assert texts[0] == "this host cpu: 25.0% (last 30s)"
    assert texts[1].startswith("this host cpu: 26.") and texts[1].endswith("(last 30s)")


async def test_the_real_host_reads_a_window_right_after_start() -> None:
    host = Host("host", HostConfig())
    assert not host.sampling  # nothing runs until started
    await host.start()
    try:
        assert host.sampling
        first = await host.query(MetricQuery("cpu"))  # waits out the first second, asleep
        second = await host.query(MetricQuery("cpu"))
    finally:
        await host.stop()
    assert not host.sampling
    for result in (first, second):
        assert 0.0 <= result.samples[0].value <= 100.0  # type: ignore[union-attr]
        assert float(result.samples[0].labels["window_s"]) >= 1.0  # type: ignore[union-attr]


async def test_the_runtime_starts_the_sampler_and_stops_it() -> None:
    settings = load_settings(environ={}, env_file=None)  # the embedded default: the host monitor
    async with open_runtime(settings) as runtime:
        guarded = runtime.monitors.get("host")
        assert isinstance(guarded, Guarded) and isinstance(guarded.inner, Host)
        host = guarded.inner
        assert host.sampling
        task = host._sampler
    assert not host.sampling and task is not None and task.done()
    assert not [t for t in asyncio.all_tasks() if "sampler" in t.get_name()]


async def test_building_the_monitors_starts_nothing() -> None:
    before = len(asyncio.all_tasks())
    import httpx

    async with httpx.AsyncClient() as client:
        registry = build_monitors({"host": {}}, BuildContext(client))
        assert len(asyncio.all_tasks()) == before
        await registry.start()
        assert len(asyncio.all_tasks()) == before + 1
        await registry.stop()
    assert len(asyncio.all_tasks()) == before


async def test_uptime_is_the_hosts_uptime() -> None:
    host = Host(
        "host", HostConfig(), boot_time=lambda: 1_000_000.0, now=lambda: 1_000_000.0 + 3 * 86400 + 4 * 3600 + 59
    )
    assert host.format(await host.query(MetricQuery("up"))) == "this host: up 3d 4h"
    text = host.format(await host.query(MetricQuery("up", service="checkout")))
    assert text == "this host: up 3d 4h (no per-service data for checkout)"


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (40, "40s"),
        (7 * 60 + 5, "7m"),
        (5 * 3600 + 12 * 60, "5h 12m"),
        (2 * 3600, "2h"),
        (86400, "1d"),
        (86400 * 3 + 3600 * 4, "3d 4h"),
    ],
)
def test_uptime_in_two_units_at_most(seconds: int, shown: str) -> None:
    assert uptime(seconds) == shown
