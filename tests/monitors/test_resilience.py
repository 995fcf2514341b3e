"""The guard, the breaker, the health cache and the fan-out, with monitors whose behaviour we script."""

from __future__ import annotations

import asyncio
import time

import pytest

from monitors.base import Alert, AlertWriter, Kind, MetricQuery
from monitors.errors import BackendQueryError, BackendTimeout, BackendUnavailable
from monitors.registry import MonitorRegistry
from monitors.resilience import CircuitBreaker, Guarded, HealthCache, fan_out
from tests.fakes import Scripted, ScriptedWriter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_repeated_failures_and_tries_again_later() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, reset_after_s=30, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record(failed=True)
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 30
    assert breaker.state == "half-open"
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # and only one at a time
    breaker.record(failed=True)
    assert breaker.state == "open"
    clock.now += 30
    assert breaker.allow()
    breaker.record(failed=False)
    assert breaker.state == "closed" and breaker.allow()


async def test_guard_turns_a_hang_into_a_timeout_and_then_stops_calling() -> None:
    hung = Scripted("loki", delay_s=10, timeout_s=0.2)
    guarded = Guarded(hung, CircuitBreaker(threshold=2, reset_after_s=60), grace_s=0.05)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(BackendTimeout, match="timed out after 0.2 s"):
            await guarded.health()
        assert time.monotonic() - started < 0.6
    with pytest.raises(BackendUnavailable, match="paused after repeated failures"):
        await guarded.health()
    assert hung.calls == 2  # the dead backend is not hammered


async def test_a_bad_query_does_not_trip_the_breaker() -> None:
    picky = Scripted("prometheus", error=BackendQueryError("Prometheus", "parse error"))
    guarded = Guarded(picky, CircuitBreaker(threshold=1))
    for _ in range(3):
        with pytest.raises(BackendQueryError):
            await guarded.query(MetricQuery("x", raw=True))
    assert guarded.breaker.state == "closed"


async def test_health_is_cached_with_its_age_and_shared_while_in_flight() -> None:
    clock = Clock()
    cache = HealthCache(ttl_s=10, clock=clock)
    slow = Scripted("prometheus", delay_s=0.05)
    first, second = await asyncio.gather(cache.check(slow), cache.check(slow))
    assert slow.calls == 1  # one check in flight, two askers
    assert first.health == second.health and first.age_s == 0
    clock.now += 4
    again = await cache.check(slow)
    assert slow.calls == 1 and again.age_s == 4
    clock.now += 7
    await cache.check(slow)
    assert slow.calls == 2


async def test_fan_out_answers_by_the_deadline_and_names_who_did_not() -> None:
    monitors = [Scripted("prometheus", delay_s=0.05), Scripted("loki", delay_s=30), Scripted("kong", delay_s=0.1)]
    started = time.monotonic()
    checked = await fan_out(monitors, HealthCache(), deadline_s=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 0.05  # the deadline, plus a little
    assert [c.health is not None for c in checked] == [True, False, True]
    assert isinstance(checked[1].error, BackendTimeout) and "0.5 s" in str(checked[1].error)


async def test_fan_out_takes_as_long_as_the_slowest_not_the_sum() -> None:
    monitors = [Scripted(f"m{i}", delay_s=0.1) for i in range(8)]
    started = time.monotonic()
    checked = await fan_out(monitors, HealthCache(), deadline_s=5)
    assert time.monotonic() - started < 0.3
    assert all(c.health is not None for c in checked)


async def test_silences_get_the_deadline_and_the_breaker_of_reads() -> None:
    """A write goes through the same guard as a read: a hung backend times out by its deadline, and
    repeated failures pause reads and writes alike."""
    hung = ScriptedWriter("alertmanager", display="Alertmanager", delay_s=5, timeout_s=0.05)
    registry = MonitorRegistry()
    registry.register(Guarded(hung, CircuitBreaker(threshold=2), grace_s=0.01), "alertmanager")
    writer = registry.alert_writer()
    assert writer is not None and isinstance(writer, AlertWriter)
    alert = Alert("HighCPU", {"alertname": "HighCPU", "instance": "a"}, "firing")
    started = time.monotonic()
    with pytest.raises(BackendTimeout, match="Alertmanager"):
        await writer.create_silence(alert, 3600, "alice", "silence HighCPU 1h")
    assert time.monotonic() - started < 0.5
    with pytest.raises(BackendTimeout):
        await writer.expire_silence("0d4f9c3e-0000-4000-8000-000000000000")
    with pytest.raises(BackendUnavailable, match="paused"):
        await writer.create_silence(alert, 3600, "alice", "again")
    assert hung.silences == []  # the paused call never reached the backend


async def test_a_working_writer_answers_through_the_guard() -> None:
    backend = ScriptedWriter("alertmanager")
    registry = MonitorRegistry()
    registry.register(Guarded(backend), "alertmanager")
    writer = registry.alert_writer()
    assert writer is not None
    assert (
        await writer.create_silence(Alert("DiskFull", {"alertname": "DiskFull"}, "firing"), 600, "bob", "x")
        == "silence-1"
    )
    await writer.expire_silence("silence-1")
    assert backend.silences == [("DiskFull", 600)] and backend.expired == ["silence-1"]


def test_a_read_only_alerting_backend_is_no_alert_writer() -> None:
    registry = MonitorRegistry()
    registry.register(Guarded(Scripted("datadog", kinds=frozenset({Kind.ALERTS}))), "datadog")
    assert registry.alert_writer() is None


async def test_kept_answers_are_taken_without_waiting() -> None:
    """Within the cache's lifetime an answer is there at once: even a zero deadline gets it (status under
    load never waits on the event loop), while a monitor not yet asked times out by that deadline."""
    asked = Scripted("prometheus", delay_s=0.01)
    cache = HealthCache(ttl_s=60)
    await fan_out([asked], cache, deadline_s=1)
    unasked = Scripted("loki", delay_s=0.01)
    checked = await fan_out([asked, unasked], cache, deadline_s=0)
    assert checked[0].health is not None and checked[0].health.ok and asked.calls == 1
    assert isinstance(checked[1].error, BackendTimeout)
