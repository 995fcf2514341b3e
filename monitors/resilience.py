"""Keeping a slow or dead backend from slowing every answer: timeouts, a breaker, a health cache.

`Guarded` wraps any monitor with a hard deadline (even for drivers that ignore their own
timeouts) and a circuit breaker; `HealthCache` keeps recent health answers for `status` and
shares one in-flight check among concurrent askers; `fan_out` checks many monitors at once
and returns by an overall deadline whatever has answered, naming those that did not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from monitors.base import Alert, AlertWriter, Health, Kind, Monitor, Query, Result
from monitors.errors import BackendError, BackendQueryError, BackendTimeout, BackendUnavailable, NotConfigured

T = TypeVar("T")
Clock = Callable[[], float]


class CircuitBreaker:
    """Closed until `threshold` failures in a row; then open (calls fail fast) for `reset_after_s`,
    then one trial call decides between closed and open again."""

    def __init__(self, threshold: int = 3, reset_after_s: float = 30.0, clock: Clock = time.monotonic) -> None:
        self.threshold = threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_after_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record(self, failed: bool) -> None:
        self._trial_running = False
        if not failed:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        if self._failures >= self.threshold or self._opened_at is not None:
            self._opened_at = self._clock()


class Guarded:
    """A monitor behind a deadline and a breaker; implements `Monitor` itself."""

    def __init__(self, monitor: Monitor, breaker: CircuitBreaker | None = None, grace_s: float = 0.25) -> None:
        self.inner = monitor
        self.name = monitor.name
        self.display = monitor.display
        self.system = monitor.system
        self.kinds: frozenset[Kind] = monitor.kinds
        self.timeout_s = monitor.timeout_s
        self.breaker = breaker or CircuitBreaker()
        self._grace_s = grace_s

    async def health(self) -> Health:
        return await self._call(self.inner.health)

    async def query(self, request: Query) -> Result:
        return await self._call(lambda: self.inner.query(request))

    def format(self, result: Result) -> str:
        return self.inner.format(result)

    @property
    def writes_alerts(self) -> bool:
        """Whether the backend behind this one can silence alerts (then this is an `AlertWriter` too)."""
        return isinstance(self.inner, AlertWriter)

    async def create_silence(self, alert: Alert, duration_s: int, created_by: str, comment: str) -> str:
        writer = self._writer()
        return await self._call(lambda: writer.create_silence(alert, duration_s, created_by, comment))

    async def expire_silence(self, silence_id: str) -> None:
        writer = self._writer()
        await self._call(lambda: writer.expire_silence(silence_id))

    def _writer(self) -> AlertWriter:
        if not isinstance(self.inner, AlertWriter):
            raise NotConfigured(f"{self.display} silences", "it only answers questions")
        return self.inner

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise BackendUnavailable(self.display, "paused after repeated failures")
        try:
            async with asyncio.timeout(self.timeout_s + self._grace_s):
                result = await call()
        except TimeoutError as exc:
            self.breaker.record(failed=True)
            raise BackendTimeout(self.display, self.timeout_s) from exc
        except BackendQueryError:
            self.breaker.record(failed=False)  # the backend works; the question was bad
            raise
        except BackendError:
            self.breaker.record(failed=True)
            raise
        self.breaker.record(failed=False)
        return result


@dataclass(frozen=True)
class Checked:
    """One monitor's health as `status` reports it, with how old the answer is."""

    monitor: Monitor
    health: Health | None
    error: BackendError | None
    age_s: float


class HealthCache:
    """Health answers kept `ttl_s` (default 10 s); one check in flight per monitor at a time."""

    def __init__(self, ttl_s: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._answers: dict[str, tuple[float, Health | None, BackendError | None]] = {}
        self._inflight: dict[str, asyncio.Task[tuple[Health | None, BackendError | None]]] = {}

    def fresh(self, monitor: Monitor) -> Checked | None:
        """The kept answer while it is younger than `ttl_s`, without waiting for anything."""
        cached = self._answers.get(monitor.name)
        if cached is None:
            return None
        age = self._clock() - cached[0]
        return Checked(monitor, cached[1], cached[2], age) if age < self.ttl_s else None

    async def check(self, monitor: Monitor) -> Checked:
        kept = self.fresh(monitor)
        if kept is not None:
            return kept
        task = self._inflight.get(monitor.name)
        if task is None:
            task = asyncio.ensure_future(_health_of(monitor))
            self._inflight[monitor.name] = task
            task.add_done_callback(lambda _: self._inflight.pop(monitor.name, None))
        health, error = await asyncio.shield(task)
        self._answers[monitor.name] = (self._clock(), health, error)
        return Checked(monitor, health, error, 0.0)


async def _health_of(monitor: Monitor) -> tuple[Health | None, BackendError | None]:
    try:
        return await monitor.health(), None
    except BackendError as exc:
        return None, exc


async def fan_out(monitors: Sequence[Monitor], cache: HealthCache, deadline_s: float) -> list[Checked]:
    """Every monitor's health by `deadline_s`; one still checking then is reported as timed out.

    Answers the health cache holds are taken as they are, without a task: `status` within the cache's
    lifetime (the usual case under load) then never waits on the event loop at all.
    """
    kept = [cache.fresh(m) for m in monitors]
    tasks = {m.name: asyncio.ensure_future(cache.check(m)) for m, k in zip(monitors, kept, strict=True) if k is None}
    if tasks:
        await asyncio.wait(tasks.values(), timeout=deadline_s)
    checked: list[Checked] = []
    for monitor, answer in zip(monitors, kept, strict=True):
        task = tasks.get(monitor.name)
        if answer is not None:
            checked.append(answer)
        elif task is not None and task.done():
            checked.append(task.result())
        else:
            if task is not None:
                task.cancel()
            checked.append(Checked(monitor, None, BackendTimeout(monitor.display, deadline_s), 0.0))
    return checked
