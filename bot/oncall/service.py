"""On call, as the rest of the bot sees it: who holds a pager, taking one, and escalations from the moment an
alert fires until someone acks it or it resolves.

The notifier hands every notification to `route` first: alerts that follow a policy start (or continue)
their escalation here and are left out of the broadcast; the others are broadcast as before. The first
step runs at once, in the instance that received the alert; later steps are run by `tick`, which one
instance per deployment calls (the ticker: the rules lease holder), or at once by `escalate N`, a failed
delivery, an unanswered call or a key press. Whoever runs a step claims it first (`EscalationStore`),
so a step runs once whichever instance gets there, and a run that dies is taken over once its claim lapses.

Nothing here raises for an outage of the shared store: an alert that cannot be routed is broadcast,
a tick that cannot read is skipped (the next one tries again), and a command says state is unavailable.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from bot.alerting.model import AlertEvent, Changes, Notification
from bot.alerting.texts import WHERE_LABELS, clean, format_resolved, numbered
from bot.db.audit import AuditWriter
from bot.observability import Metrics
from bot.oncall.escalation import CLAIM_S, Event, Timeline, begin, next_due
from bot.oncall.paging import Outcome, Pager, Run, each
from bot.oncall.policies import Person, Policies
from bot.oncall.schedules import Override, Rotation, describe, replaced_by, when
from bot.oncall.voice import spoken
from bot.settings import Settings
from bot.sms.outbound import Caller, Sender
from bot.state.protocols import (
    AlertStore,
    BudgetStore,
    ContextStore,
    EscalationStore,
    OverrideStore,
    StoreUnavailable,
    Subscriptions,
)
from monitors.base import Alert, AlertWriter
from monitors.errors import BackendError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
TICK_LIMIT = 500
"""Escalations one tick runs at most; the rest are due still and run on the next tick (a second later)."""
UNANSWERED = frozenset({"busy", "no-answer", "failed", "canceled"})
"""Call outcomes that mean the person was not reached: the next step runs at once."""
SILENCE_S = 3600


@dataclass(frozen=True)
class Taken:
    """What `take` did: until when the taker holds the pager, and whom it was taken from."""

    until: str
    told: tuple[str, ...]


class OnCall:
    def __init__(
        self,
        settings: Settings,
        *,
        escalations: EscalationStore,
        overrides: OverrideStore,
        alerts: AlertStore,
        contexts: ContextStore,
        subscriptions: Subscriptions,
        budget: BudgetStore,
        sender: Sender | None = None,
        caller: Caller | None = None,
        writer: Callable[[], AlertWriter | None] = lambda: None,
        audit: AuditWriter | None = None,
        metrics: Metrics | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.store = escalations
        self.overrides = overrides
        self.book = alerts
        self.writer = writer
        self.clock = clock
        self.policies = Policies(settings.schedules, settings.escalation, settings.routes, settings.users)
        self.pager = Pager(settings, self.policies, escalations, overrides, contexts, subscriptions, budget, sender,
                           caller, audit, metrics)  # fmt: skip

    # --- schedules ------------------------------------------------------------------------------------

    def rotation(self, name: str) -> Rotation | None:
        return self.policies.rotations.get(name.strip().lower())

    async def who(self, schedule: str | None = None) -> list[str]:
        """ "payments: alice until Mon 09:00 CET, then bob", for one schedule or every one. Raises StoreUnavailable."""
        now = self.clock()
        chosen = [self.rotation(schedule)] if schedule else list(self.policies.rotations.values())
        return [describe(r, await self.overrides.current(r.name, now), now) for r in chosen if r is not None]

    async def take(self, schedule: str, number: str, duration_s: int | None) -> Taken | str:
        """The texting person holds `schedule`'s pager from now for `duration_s`, or to the end of the current
        shift; the people it is taken from are told. A short reason instead when it cannot be done."""
        rotation = self.rotation(schedule)
        taker = self.policies.users.by_number(number)
        if rotation is None:
            return f"No schedule named {clean(schedule, 30)}."
        if taker is None or taker.name not in self.policies.users:
            return "Only someone with a name in users: can hold a pager."
        now = self.clock()
        end = now + duration_s if duration_s else rotation.shift_at(now).end
        known = await self.overrides.current(rotation.name, now)
        override = Override(rotation.name, taker.name, now, end, now, taker.name)
        lost = replaced_by(rotation, known, override)
        await self.overrides.add(override)
        notices: dict[str, str] = {}
        for segment in lost:
            person = self.policies.users.get(segment.member)
            if person is None or person.number == number:
                continue
            if segment.start <= now:
                text = f"{taker.name} took the {rotation.name} pager from you until {when(rotation, segment.end, now)}."
            else:
                text = (f"{taker.name} covers your {rotation.name} shift from {when(rotation, segment.start, now)} "
                        f"until {when(rotation, segment.end, now)}.")  # fmt: skip
            notices[person.number] = notices.get(person.number, "") + (" " if person.number in notices else "") + text
        await self.pager.tell(notices)
        told = tuple(dict.fromkeys(p.name for n in notices if (p := self.policies.users.by_number(n)) is not None))
        return Taken(when(rotation, end, now), told)

    # --- escalations ----------------------------------------------------------------------------------

    async def route(self, notification: Notification, changes: Changes) -> set[str]:
        """Start the escalations of newly firing alerts that follow a policy (their first step pages now), end
        those of resolved ones (telling everyone paged); the fingerprints handled here, to leave out of the
        broadcast. Repeats of an alert being escalated page nobody: the escalation is its reminder."""
        if not self.policies.paging or notification.extra.get("recipients"):
            return set()  # a rule that names its recipients keeps them
        now = self.clock()
        taken: set[str] = set()
        started: list[str] = []
        for alert in changes.firing:
            policy = self.policies.policy_for(alert.labels)
            if policy is None:
                continue
            try:
                if await self.store.start(begin(alert, policy, now)):
                    started.append(alert.fingerprint)
            except StoreUnavailable as exc:
                log.error("escalation state unavailable, broadcasting %s instead: %s", clean(alert.name, 40), exc)
                continue
            taken.add(alert.fingerprint)
        ended: list[Timeline] = []
        for alert in changes.resolved:
            try:
                timeline = await self.store.resolve(alert.fingerprint, now)
            except StoreUnavailable as exc:
                log.error("escalation state unavailable, broadcasting a resolution: %s", exc)
                continue
            if timeline is not None:
                taken.add(alert.fingerprint)
                ended.append(Timeline(alert, timeline.policy, timeline.started, events=timeline.events))
        if started:
            try:
                await self.run(started, step=0)
            except StoreUnavailable as exc:  # before anyone was paged, or part-way: broadcast rather than lose it
                log.error("escalation state unavailable, broadcasting the alerts it could not page: %s", exc)
                taken -= set(started)
        if ended:
            await self._tell_resolved(ended)
        return taken

    async def tick(self, limit: int = TICK_LIMIT) -> int:
        """Run every step that is due (the ticker calls this once a second); how many escalations it ran."""
        due = await self.store.due(self.clock(), limit)
        if not due:
            return 0
        outcome = await self.run(due)
        return len(outcome.ran)

    async def run(self, fingerprints: Iterable[str], step: int | None = None, hurry: bool = False) -> Outcome:
        """Claim and run the next step of each escalation (only `step`, when given; before it is due, when
        `hurry`). A step that failed, or is followed by a wait of 0, is followed by the next one at once."""
        total = Outcome()
        pending = list(dict.fromkeys(fingerprints))
        for _ in range(1 + max((len(s) for s in self.policies.escalation.values()), default=0)):
            now = self.clock()
            claimed = await each(pending, partial(self._claim, step=step, now=now, hurry=hurry))
            runs = [run for run in claimed if run is not None]
            if not runs:
                break
            outcome = await self.pager.page(runs, now)
            total.merge(outcome)
            total.ran |= {run.timeline.fingerprint for run in runs}
            completed = await each(runs, partial(self._complete, now=now, failed=outcome.failed))
            pending = [fingerprint for fingerprint in completed if fingerprint is not None]
            step, hurry = None, False
        return total

    async def _claim(self, fingerprint: str, step: int | None, now: float, hurry: bool) -> Run | None:
        owner = secrets.token_hex(8)
        timeline = await self.store.claim(fingerprint, step, now, owner, now + CLAIM_S, hurry)
        if timeline is None:
            return None
        if timeline.step >= len(self.policies.steps(timeline.policy)):  # its policy lost steps since
            await self.store.complete(fingerprint, timeline.step, owner, None)
            return None
        return Run(timeline, timeline.step, owner)

    async def _complete(self, run: Run, now: float, failed: set[str]) -> str | None:
        """Complete a run; its fingerprint when its next step is due already (a failure, or a wait of 0)."""
        fingerprint = run.timeline.fingerprint
        due = next_due(self.policies.steps(run.timeline.policy), run.step, now, fingerprint in failed)
        done = await self.store.complete(fingerprint, run.step, run.owner, due)
        return fingerprint if done and due is not None and due <= now else None

    async def run_after(self, steps: Mapping[str, int]) -> Outcome:
        """Run, at once, the step after the given one of each escalation (unless it moved on already)."""
        total = Outcome()
        by_step: dict[int, list[str]] = {}
        for fingerprint, step in steps.items():
            by_step.setdefault(step + 1, []).append(fingerprint)
        for step, fingerprints in by_step.items():
            total.merge(await self.run(fingerprints, step=step, hurry=True))
        return total

    async def escalate(self, fingerprint: str, who: str) -> str:
        """`escalate N`: the next step of this alert's escalation, now. The reply says what was done."""
        timeline = await self.store.get(fingerprint)
        if timeline is None:
            return "follows no escalation policy (it was texted to everyone who gets alerts)."
        steps = self.policies.steps(timeline.policy)
        if timeline.state == "acked":
            return f"was acked by {timeline.acked_by}; nothing to escalate."
        if timeline.state == "resolved":
            return "has resolved; nothing to escalate."
        if timeline.step >= len(steps) or timeline.due is None:
            return f"has run every step of its escalation ({len(steps)}); waiting for an ack."
        number = timeline.step
        outcome = await self.run([fingerprint], step=number, hurry=True)
        if fingerprint not in outcome.ran:
            return "is being paged right now; try again in a minute."
        await self._record(fingerprint, Event(self.clock(), "escalated", number, who))
        done = "texted" if steps[number].action == "sms" else "called"
        names = ", ".join(dict.fromkeys(outcome.reached.get(fingerprint, []))) or "nobody reachable"
        failed = " (it failed: the next step followed)" if fingerprint in outcome.failed else ""
        return f"step {number + 1} of {len(steps)}: {done} {names}{failed}."

    async def acked(self, fingerprint: str, who: str, number: str) -> list[str] | None:
        """Stop this alert's escalation (`who` acked it, by text or key) and tell the others already paged; the
        names told, or None when nothing was being escalated. Raises StoreUnavailable."""
        timeline = await self.store.ack(fingerprint, who, self.clock())
        if timeline is None:
            return None
        others = {n: name for n, name in timeline.paged.items() if n != number}
        await self.pager.tell({n: f"{label(timeline.alert)} acked by {who}: paging stopped." for n in others})
        return list(others.values())

    async def unacked(self, fingerprint: str) -> bool:
        """An ack undone: the escalation goes on where it stood. Raises StoreUnavailable."""
        return await self.store.unack(fingerprint, self.clock())

    async def _tell_resolved(self, timelines: Sequence[Timeline]) -> None:
        by_number: dict[str, list[AlertEvent]] = {}
        for timeline in timelines:
            for number in timeline.paged:
                by_number.setdefault(number, []).append(timeline.alert)
        await self.pager.tell({
            number: format_resolved(Notification(alerts[0].source, "oncall", "resolved", numbered(alerts)))
            for number, alerts in by_number.items()
        })  # fmt: skip

    async def _record(self, fingerprint: str, event: Event) -> None:
        try:
            await self.store.record(fingerprint, event)
        except StoreUnavailable as exc:
            log.error("escalation event not recorded: %s", exc)

    # --- delivery reports, calls and key presses -----------------------------------------------------

    async def _note(self, key: str) -> tuple[str, dict[str, int]] | None:
        text = await self.store.recall(key)
        if text is None:
            return None
        try:
            data = json.loads(text)
            return str(data["n"]), {str(k): int(v) for k, v in dict(data["s"]).items()}
        except (ValueError, KeyError, TypeError):
            return None

    async def delivery_failed(self, sid: str, status: str, error: str = "") -> bool:
        """Twilio reports a page's text failed or undelivered: its escalations move to their next step now.
        False when the message was no page (or is forgotten). Raises StoreUnavailable."""
        note = await self._note(f"sms:{sid}")
        if note is None:
            return False
        number, steps = note
        person = self.policies.users.by_number(number)
        detail = f"{status}" + (f" (error {error})" if error else "")
        for fingerprint, step in steps.items():
            await self._record(fingerprint, Event(self.clock(), "failed", step, person.name if person else "",
                                                  number, detail))  # fmt: skip
        await self.run_after(steps)
        return True

    async def call_script(self, token: str) -> tuple[str, str] | None:
        """What the call says (the alerts in a few words) and to whom it is, or None for an unknown call."""
        note = await self._note(f"call:{token}")
        if note is None:
            return None
        number, steps = note
        alerts = [t.alert for f in steps if (t := await self.store.get(f)) is not None]
        return spoken(alerts), number

    async def call_ended(self, token: str, status: str) -> None:
        """A call's final status: one that reached nobody moves its escalations on at once."""
        if status not in UNANSWERED:
            return
        note = await self._note(f"call:{token}")
        if note is None:
            return
        number, steps = note
        person = self.policies.users.by_number(number)
        for fingerprint, step in steps.items():
            await self._record(fingerprint, Event(self.clock(), "unanswered", step, person.name if person else "",
                                                  number, status))  # fmt: skip
        await self.run_after(steps)

    async def pressed(self, token: str, digits: str) -> str | None:
        """A key pressed during a call: 4 acks, 6 silences for an hour (and acks), 9 escalates now. What to
        say back, or None for a key that does nothing (the call asks again)."""
        note = await self._note(f"call:{token}")
        if note is None:
            return "This page has ended. Goodbye."
        number, steps = note
        person = self.policies.users.by_number(number) or Person(number, "someone", "viewer")
        if digits not in ("4", "6", "9"):
            return None
        if person.role != "operator":
            return "Only operators can do that. Text the bot instead. Goodbye."
        if digits == "9":
            outcome = await self.run_after(steps)
            for fingerprint in outcome.ran:
                await self._record(fingerprint, Event(self.clock(), "escalated", steps[fingerprint] + 1, person.name))
            return "Escalated to the next step. Goodbye." if outcome.ran else "There is no step left to escalate to."
        silenced = 0
        if digits == "6":
            silenced = await self._silence(steps, person)
            if silenced < 0:
                return "Silencing is not possible here. Nothing changed. Goodbye."
        stopped = 0
        for fingerprint in steps:
            await self.book.ack(fingerprint, person.name)
            stopped += await self.acked(fingerprint, person.name, number) is not None
        done = "Silenced for one hour and acknowledged." if silenced else "Acknowledged."
        return f"{done} Paging stopped. Goodbye." if stopped else f"{done} It was already acknowledged. Goodbye."

    async def _silence(self, steps: Mapping[str, int], person: Person) -> int:
        """Silence the call's alerts for an hour in the alerting backend: how many, -1 when that cannot be done."""
        writer = self.writer()
        if writer is None:
            return -1
        count = 0
        for fingerprint in steps:
            timeline = await self.store.get(fingerprint)
            if timeline is None:
                continue
            alert = timeline.alert
            try:
                await writer.create_silence(Alert(alert.name, dict(alert.labels), "firing", fingerprint=fingerprint),
                                            SILENCE_S, person.name, "silenced for 1h from an on-call page")  # fmt: skip
            except BackendError as exc:
                log.error("silence from a call failed: %s", type(exc).__name__)
                return -1
            count += 1
        return count


def label(alert: AlertEvent) -> str:
    """ "DiskFull db1:9100": the alert's name and where it is, for notices."""
    where = next((clean(alert.labels[k], 30) for k in WHERE_LABELS if alert.labels.get(k, "").strip()), "")
    return f"{clean(alert.name, 40)} {where}".strip()
