"""Who holds a schedule's pager at a moment: the rotation, and the overrides people text (`take`).

A rotation's shift k starts at `handoff + k * shift` on the schedule's local clock, and that wall-clock
time is then placed on the time line. So a daily hand-off at 09:00 stays at 09:00 when daylight saving
time starts or ends (that day's shift is 23 or 25 hours long), as people expect from a rota on the wall.
A boundary that falls in the hour the clocks skip is placed where Python's `fold=0` puts it (02:30 on a
spring-forward night is 03:30 local); because a shift is at least an hour, boundaries never go
backwards, at worst one shift of a skipped hour lasts no time at all, and nobody holds it. Before the
first hand-off the rotation runs backwards the same way, so there is always someone on call.

An override gives the pager to one member from its start to its end; where overrides overlap, the most
recently made one wins. Everything here is pure: times are epoch seconds, and the caller gives `now`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.oncall.config import Schedule, zone

MAX_SEGMENTS = 64
"""Change points walked at most when asked what comes next (overrides are few; rotations are long)."""


@dataclass(frozen=True)
class Override:
    """`member` holds `schedule`'s pager from `start` to `end` (epoch seconds), made at `made`."""

    schedule: str
    member: str
    start: float
    end: float
    made: float
    by: str = ""
    """Who made it (the member themselves, for a `take`)."""


@dataclass(frozen=True)
class Segment:
    """A span during which one member holds the pager."""

    member: str
    start: float
    end: float
    covering: str | None = None
    """The rotation's member this span belongs to when an override holds it instead (None otherwise)."""


class Rotation:
    """One schedule's rotation: who holds shift k, and where shift k starts."""

    def __init__(self, name: str, spec: Schedule) -> None:
        self.name = name
        self.spec = spec
        self.zone: ZoneInfo = zone(spec.timezone)
        self._step = timedelta(seconds=spec.shift)
        self._origin = self.boundary(0)

    def boundary(self, k: int) -> float:
        """The moment shift k starts: the hand-off plus k shifts on the local clock, placed with fold=0."""
        local = self.spec.handoff + k * self._step
        return local.replace(tzinfo=self.zone).timestamp()

    def index_at(self, moment: float) -> int:
        """The shift that holds `moment` (a shift that lasts no time holds nothing)."""
        k = math.floor((moment - self._origin) / self.spec.shift)
        while self.boundary(k) > moment:
            k -= 1
        while self.boundary(k + 1) <= moment:
            k += 1
        return k

    def member(self, k: int) -> str:
        return self.spec.members[k % len(self.spec.members)]

    def shift_at(self, moment: float) -> Segment:
        k = self.index_at(moment)
        return Segment(self.member(k), self.boundary(k), self.boundary(k + 1))

    def local(self, moment: float) -> datetime:
        return datetime.fromtimestamp(moment, UTC).astimezone(self.zone)


def _winner(overrides: Sequence[Override], moment: float) -> Override | None:
    covering = [o for o in overrides if o.start <= moment < o.end]
    return max(covering, key=lambda o: (o.made, o.start), default=None)


def segment_at(rotation: Rotation, overrides: Sequence[Override], moment: float) -> Segment:
    """Who holds the pager at `moment`, from when (the latest change point) until the next change."""
    shift = rotation.shift_at(moment)
    points = [shift.end] + [p for o in overrides for p in (o.start, o.end) if p > moment]
    starts = [shift.start] + [p for o in overrides for p in (o.start, o.end) if p <= moment]
    end = min(points)
    start = max(starts)
    won = _winner(overrides, moment)
    if won is None:
        return Segment(shift.member, start, end)
    covering = shift.member if shift.member != won.member else None
    return Segment(won.member, start, end, covering)


def segments(rotation: Rotation, overrides: Sequence[Override], moment: float, count: int) -> list[Segment]:
    """The holder at `moment` and the ones after, `count` at most, consecutive spans of one member merged."""
    found: list[Segment] = []
    at = moment
    for _ in range(MAX_SEGMENTS):
        segment = segment_at(rotation, overrides, at)
        if found and found[-1].member == segment.member:
            last = found[-1]
            found[-1] = Segment(last.member, last.start, segment.end, last.covering or segment.covering)
        elif len(found) == count:
            break
        else:
            found.append(segment)
        at = segment.end
    return found


def holder(rotation: Rotation, overrides: Sequence[Override], moment: float) -> str:
    """The member on call at `moment`."""
    return segment_at(rotation, overrides, moment).member


def replaced_by(rotation: Rotation, overrides: Sequence[Override], override: Override) -> list[Segment]:
    """Who loses the pager to `override`, and for which span of it (not counting the taker): the people to tell."""
    lost: list[Segment] = []
    at = override.start
    for _ in range(MAX_SEGMENTS):
        if at >= override.end:
            break
        segment = segment_at(rotation, overrides, at)
        end = min(segment.end, override.end)
        if segment.member != override.member:
            if lost and lost[-1].member == segment.member and lost[-1].end == at:
                lost[-1] = Segment(segment.member, lost[-1].start, end)
            else:
                lost.append(Segment(segment.member, at, end))
        at = end
    return lost


def prune(overrides: Sequence[Override], moment: float) -> list[Override]:
    """The overrides that still matter at `moment` (not yet ended)."""
    return [o for o in overrides if o.end > moment]


def when(rotation: Rotation, moment: float, now: float) -> str:
    """A time as people on this schedule read it: "13:00 CET" today, "Mon 09:00 CET" this week, else with the date."""
    local = rotation.local(moment)
    today = rotation.local(now)
    clock = local.strftime("%H:%M")
    zone_name = local.strftime("%Z")
    if local.date() == today.date():
        return f"{clock} {zone_name}"
    if timedelta(0) < local - today < timedelta(days=6):
        return f"{local.strftime('%a')} {clock} {zone_name}"
    return f"{local.strftime('%a')} {local.day} {local.strftime('%b')} {clock} {zone_name}"


def describe(rotation: Rotation, overrides: Sequence[Override], now: float) -> str:
    """ "payments: alice until Mon 09:00 CET, then bob" (and who an override covers for)."""
    now_and_next = segments(rotation, overrides, now, 2)
    current = now_and_next[0]
    covering = f" (covering for {current.covering})" if current.covering else ""
    text = f"{rotation.name}: {current.member}{covering} until {when(rotation, current.end, now)}"
    if len(now_and_next) > 1:
        text += f", then {now_and_next[1].member}"
    return text


def rotations(schedules: dict[str, Schedule]) -> dict[str, Rotation]:
    return {name: Rotation(name, spec) for name, spec in schedules.items()}


def shifts(rotation: Rotation, start: float, end: float) -> Iterator[Segment]:
    """The rotation's shifts (no overrides) that overlap [start, end)."""
    k = rotation.index_at(start)
    while rotation.boundary(k) < end:
        segment = Segment(rotation.member(k), rotation.boundary(k), rotation.boundary(k + 1))
        if segment.end > segment.start:
            yield segment
        k += 1
