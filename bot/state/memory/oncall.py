"""Escalation timelines and schedule overrides in this process's memory (`bot.state.redis.oncall` keeps them
in Redis for several instances; the same tests run against both).

No method awaits anything, so each is atomic on the event loop: a claim is checked and taken in one go,
as the Redis scripts do.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import replace

from bot.oncall.escalation import KEEP_S, Event, Timeline, acked, completed, resolved, unacked
from bot.oncall.schedules import Override

Clock = Callable[[], float]
MAX_EVENTS = 200
"""Events kept per escalation (a long storm of failed deliveries must not grow one without bound)."""
MAX_OVERRIDES = 100
"""Overrides kept per schedule, the ones ending last."""


class InMemoryEscalations:
    """Timelines by fingerprint, a heap of due times (stale entries skipped), claims, and short notes."""

    def __init__(self, clock: Clock = time.time, max_timelines: int = 50_000) -> None:
        self._clock = clock
        self.max_timelines = max_timelines
        self._timelines: dict[str, Timeline] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._ended: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._notes: dict[str, tuple[str, float]] = {}

    def _schedule(self, timeline: Timeline) -> None:
        if timeline.state == "open" and timeline.due is not None:
            heapq.heappush(self._heap, (timeline.due, timeline.fingerprint))

    async def start(self, timeline: Timeline) -> bool:
        known = self._timelines.get(timeline.fingerprint)
        if known is not None and known.state != "resolved":
            return False
        self._timelines.pop(timeline.fingerprint, None)  # re-inserted last: the dict stays oldest first
        self._timelines[timeline.fingerprint] = timeline
        self._ended.pop(timeline.fingerprint, None)
        self._claims.pop(timeline.fingerprint, None)
        self._schedule(timeline)
        self._bound()
        return True

    def _bound(self) -> None:
        while len(self._timelines) > self.max_timelines:
            oldest = next(iter(self._timelines))
            self._timelines.pop(oldest)
            self._ended.pop(oldest, None)
            self._claims.pop(oldest, None)

    async def get(self, fingerprint: str) -> Timeline | None:
        self._expire()
        return self._timelines.get(fingerprint)

    async def recent(self) -> list[Timeline]:
        self._expire()
        return list(self._timelines.values())

    def _expire(self) -> None:
        cutoff = self._clock() - KEEP_S
        for fingerprint in [f for f, at in self._ended.items() if at < cutoff]:
            self._ended.pop(fingerprint)
            self._timelines.pop(fingerprint, None)

    async def due(self, now: float, limit: int) -> list[str]:
        found: list[str] = []
        skipped: list[tuple[float, str]] = []
        while self._heap and self._heap[0][0] <= now and len(found) < limit:
            entry = heapq.heappop(self._heap)
            timeline = self._timelines.get(entry[1])
            if timeline is None or timeline.state != "open" or timeline.due != entry[0] or entry[1] in found:
                continue  # stale: the timeline moved on since this entry was pushed
            found.append(entry[1])
            skipped.append(entry)
        for entry in skipped:  # still due until a runner completes the step
            heapq.heappush(self._heap, entry)
        return found

    async def claim(
        self, fingerprint: str, step: int | None, now: float, owner: str, until: float, hurry: bool = False
    ) -> Timeline | None:
        timeline = self._timelines.get(fingerprint)
        if timeline is None or timeline.state != "open" or timeline.due is None:
            return None
        if step is not None and timeline.step != step:
            return None
        if not hurry and timeline.due > now:
            return None
        claim = self._claims.get(fingerprint)
        if claim is not None and claim[0] != owner and claim[1] > now:
            return None
        self._claims[fingerprint] = (owner, until)
        return timeline

    async def record(self, fingerprint: str, event: Event) -> None:
        timeline = self._timelines.get(fingerprint)
        if timeline is not None:
            self._timelines[fingerprint] = replace(timeline, events=(*timeline.events, event)[-MAX_EVENTS:])

    async def complete(self, fingerprint: str, step: int, owner: str, due: float | None) -> bool:
        timeline = self._timelines.get(fingerprint)
        claim = self._claims.get(fingerprint)
        if timeline is None or claim is None or claim[0] != owner or timeline.step != step:
            return False
        del self._claims[fingerprint]
        self._timelines[fingerprint] = updated = completed(timeline, step, due)
        self._schedule(updated)
        return True

    async def ack(self, fingerprint: str, who: str, now: float) -> Timeline | None:
        timeline = self._timelines.get(fingerprint)
        stopped = None if timeline is None else acked(timeline, who, now)
        if stopped is not None:
            self._timelines[fingerprint] = stopped = replace(stopped, events=stopped.events[-MAX_EVENTS:])
        return stopped

    async def unack(self, fingerprint: str, now: float) -> bool:
        timeline = self._timelines.get(fingerprint)
        reopened = None if timeline is None else unacked(timeline, now)
        if reopened is None:
            return False
        self._timelines[fingerprint] = reopened
        self._schedule(reopened)
        return True

    async def resolve(self, fingerprint: str, now: float) -> Timeline | None:
        timeline = self._timelines.get(fingerprint)
        ended = None if timeline is None else resolved(timeline, now)
        if ended is None:
            return None
        self._timelines[fingerprint] = ended = replace(ended, events=ended.events[-MAX_EVENTS:])
        self._ended[fingerprint] = self._clock()  # kept a day by this store's clock, as its expiry reads it
        self._claims.pop(fingerprint, None)
        return ended

    async def remember(self, key: str, value: str, ttl_s: float) -> None:
        now = self._clock()
        if len(self._notes) > 4 * self.max_timelines:
            self._notes = {k: v for k, v in self._notes.items() if v[1] > now}
        self._notes[key] = (value, now + ttl_s)

    async def recall(self, key: str) -> str | None:
        note = self._notes.get(key)
        if note is None or note[1] <= self._clock():
            return None
        return note[0]


class InMemoryOverrides:
    """Overrides by schedule, dropped once they have ended."""

    def __init__(self) -> None:
        self._by_schedule: dict[str, list[Override]] = {}

    async def add(self, override: Override) -> None:
        kept = [*self._by_schedule.get(override.schedule, []), override]
        kept.sort(key=lambda o: o.end)
        self._by_schedule[override.schedule] = kept[-MAX_OVERRIDES:]

    async def current(self, schedule: str, now: float) -> list[Override]:
        kept = [o for o in self._by_schedule.get(schedule, []) if o.end > now]
        self._by_schedule[schedule] = kept
        return list(kept)
