"""An alert's escalation as a timeline: which step runs next and when, who was paged how, who acked.

    fired ─▶ step 0 due now ─▶ run (text/call) ─▶ step 1 due after step 0's wait ─▶ … ─▶ last step run
      │            ▲  escalate N / failed delivery: the next step is due now          (open, nothing due)
      └── ack (text or key 4) stops it: acked ── resolve ends it and everyone paged is told: resolved

Pure logic over frozen values, with `now` always given by the caller (an injectable clock in the
service, a number in tests). The store keeps timelines and makes each step's run a claim (one runner
per step, taken over when it lapses); the service does the paging. A step's run is recorded person by
person, so a run taken over from a runner that died pages only whom it had not reached yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from bot.alerting.model import AlertEvent
from bot.oncall.config import Step

State = Literal["open", "acked", "resolved"]
Kind = Literal["sms", "call", "held", "failed", "unanswered", "acked", "unacked", "resolved", "escalated", "nobody"]
PAGES: frozenset[str] = frozenset({"sms", "call"})
"""Events that reached someone (or were handed to Twilio for them)."""
CLAIM_S = 45.0
"""How long a step's runner may take before another may run the rest of it: more than one send with all its
retries (3 attempts of at most 10 s, 1.5 s of back-off); a step's sends go out side by side."""
KEEP_S = 86_400.0
"""How long an ended timeline stays readable (the dashboard shows the last day's)."""


@dataclass(frozen=True)
class Event:
    """One thing that happened to an escalation."""

    at: float
    kind: Kind
    step: int = -1
    """0-based step index (-1 for what belongs to no step: acks, resolution)."""
    name: str = ""
    """The person, by user name (never a number)."""
    number: str = ""
    """Their number, kept so a taken-over run skips whom it already reached and the ack reaches the paged;
    shown nowhere (the dashboard shows `name`)."""
    detail: str = ""


@dataclass(frozen=True)
class Timeline:
    """One alert's escalation."""

    alert: AlertEvent
    policy: str
    started: float
    step: int = 0
    """The next step to run (== the number of steps once the last has run)."""
    due: float | None = None
    """When that step runs; None once nothing is left to run, or the escalation stopped."""
    state: State = "open"
    acked_by: str | None = None
    events: tuple[Event, ...] = field(default_factory=tuple)

    @property
    def fingerprint(self) -> str:
        return self.alert.fingerprint

    @property
    def paged(self) -> dict[str, str]:
        """Number -> name of everyone a step reached, in the order they were first reached."""
        found: dict[str, str] = {}
        for event in self.events:
            if event.kind in PAGES and event.number:
                found.setdefault(event.number, event.name)
        return found

    def reached(self, step: int) -> set[str]:
        """Numbers a run of `step` already paged (or tried and recorded): a re-run skips them."""
        return {e.number for e in self.events if e.step == step and e.number and e.kind in PAGES | {"failed", "held"}}


def begin(alert: AlertEvent, policy: str, now: float) -> Timeline:
    """A new escalation whose first step is due at once."""
    return Timeline(alert=alert, policy=policy, started=now, step=0, due=now)


def next_due(steps: Sequence[Step], ran: int, now: float, hurry: bool = False) -> float | None:
    """When the step after step `ran` is due: after `ran`'s wait, at once when `hurry` (a delivery failed, or
    someone asked), never when `ran` was the last."""
    if ran + 1 >= len(steps):
        return None
    return now if hurry else now + steps[ran].wait


def completed(timeline: Timeline, ran: int, due: float | None) -> Timeline:
    """The timeline once step `ran` has run and the next is due at `due` (None: nothing left). An acked
    escalation keeps its due time, so an ack undone resumes where it stood; a resolved one has none."""
    return replace(timeline, step=ran + 1, due=None if timeline.state == "resolved" else due)


def acked(timeline: Timeline, who: str, now: float) -> Timeline | None:
    """The timeline stopped by `who`'s ack, or None when it was not open (acked already, or resolved)."""
    if timeline.state != "open":
        return None
    event = Event(now, "acked", name=who)
    return replace(timeline, state="acked", acked_by=who, events=(*timeline.events, event))


def unacked(timeline: Timeline, now: float) -> Timeline | None:
    """The timeline reopened where it stood (an ack undone), or None when it was not acked."""
    if timeline.state != "acked":
        return None
    event = Event(now, "unacked", name=timeline.acked_by or "")
    return replace(timeline, state="open", acked_by=None, events=(*timeline.events, event))


def resolved(timeline: Timeline, now: float) -> Timeline | None:
    """The timeline ended by the alert's resolution, or None when it had ended already."""
    if timeline.state == "resolved":
        return None
    return replace(timeline, state="resolved", due=None, events=(*timeline.events, Event(now, "resolved")))


def describe_step(step: Step) -> str:
    """ "text payments", "call alice, bob", "text all": what a step does, for replies and the dashboard."""
    verb = "text" if step.action == "sms" else "call"
    return f"{verb} {', '.join(step.targets)}"


def status(timeline: Timeline, steps: Sequence[Step]) -> str:
    """Where an escalation stands, in a few words (the dashboard's summary line)."""
    if timeline.state == "acked":
        return f"acked by {timeline.acked_by}"
    if timeline.state == "resolved":
        return "resolved"
    if timeline.step >= len(steps):
        return "every step run; waiting for an ack"
    return f"step {timeline.step + 1} of {len(steps)} next ({describe_step(steps[timeline.step])})"
