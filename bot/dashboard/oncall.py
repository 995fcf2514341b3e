"""The dashboard's on-call page: who holds each schedule's pager now, and each escalation of the last day,
step by step (who was paged how and when, what failed, who acked).

Read from the on-call service (the shared store), not the history database: the page shows what the
escalations are doing now. Only names are shown, never numbers; alert text is cleaned like an SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.oncall.escalation import Event, Timeline, status
from bot.oncall.schedules import segments, when
from bot.oncall.service import OnCall, label

MAX_TIMELINES = 200
"""Escalations shown, newest first (a storm's thousands are behind `alerts` and the history)."""
WHAT = {
    "sms": "texted", "call": "called", "held": "held (send budget)", "failed": "page failed",
    "unanswered": "call not answered", "acked": "acked", "unacked": "ack undone", "resolved": "resolved",
    "escalated": "escalated now by", "nobody": "reached nobody",
}  # fmt: skip


@dataclass(frozen=True)
class HolderRow:
    schedule: str
    holder: str
    covering: str | None
    until: str
    next: str


@dataclass(frozen=True)
class EventRow:
    at: datetime
    step: str
    what: str
    who: str
    detail: str


@dataclass(frozen=True)
class TimelineRow:
    alert: str
    severity: str
    policy: str
    state: str
    status: str
    started: datetime
    events: tuple[EventRow, ...]


@dataclass(frozen=True)
class OnCallPage:
    holders: tuple[HolderRow, ...]
    timelines: tuple[TimelineRow, ...]
    paging: bool


async def on_call_page(oncall: OnCall) -> OnCallPage:
    """Raises StoreUnavailable (the page shows a notice)."""
    now = oncall.clock()
    holders = []
    for rotation in oncall.policies.rotations.values():
        found = segments(rotation, await oncall.overrides.current(rotation.name, now), now, 2)
        holders.append(HolderRow(rotation.name, found[0].member, found[0].covering, when(rotation, found[0].end, now),
                                 found[1].member if len(found) > 1 else "–"))  # fmt: skip
    recent = sorted(await oncall.store.recent(), key=lambda t: t.started, reverse=True)[:MAX_TIMELINES]
    return OnCallPage(tuple(holders), tuple(_row(oncall, t) for t in recent), oncall.policies.paging)


def _row(oncall: OnCall, timeline: Timeline) -> TimelineRow:
    steps = oncall.policies.steps(timeline.policy)
    return TimelineRow(
        alert=label(timeline.alert),
        severity=timeline.alert.severity.name.lower(),
        policy=timeline.policy,
        state=timeline.state,
        status=status(timeline, steps),
        started=datetime.fromtimestamp(timeline.started, UTC),
        events=tuple(_event(e) for e in timeline.events),
    )


def _event(event: Event) -> EventRow:
    return EventRow(datetime.fromtimestamp(event.at, UTC), str(event.step + 1) if event.step >= 0 else "",
                    WHAT.get(event.kind, event.kind), event.name, event.detail[:80])  # fmt: skip
