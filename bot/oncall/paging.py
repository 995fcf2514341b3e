"""Paging: the texts and calls of the steps being run, one per person however many alerts they cover.

A batch of claimed steps (one alert's step each) is turned into people: a schedule's holder now, named
users, or everyone subscribed. Each person gets one text listing every alert of the batch that reaches
them (numbered like any alert text, so "ack 2" works), or one call covering them; each page is recorded
in every timeline it covers, person by person, so a run taken over after a crash skips whom it reached.

Unlike the broadcast, a page ignores quiet hours, minimum severity and "unsubscribe": being on call is
the choice to be woken. The per-number send budget still applies to texts (a storm of a thousand alerts
is not a thousand texts), and calls are budgeted the same way on a key of their own. A text Twilio
refuses, a call that cannot be placed, or a step that reaches nobody makes that step fail, and the
escalation moves to its next step at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from bot.alerting.model import AlertEvent, Notification
from bot.alerting.recipients import RecipientRule, rules_from_users, wants
from bot.alerting.texts import format_firing, numbered
from bot.db.audit import AuditWriter
from bot.db.history import make_entry
from bot.observability import Metrics
from bot.oncall.escalation import KEEP_S, Event, Kind, Timeline
from bot.oncall.policies import Person, Policies
from bot.oncall.schedules import Override
from bot.settings import Settings
from bot.sms.encoding import segment_count
from bot.sms.outbound import Caller, Delivery, Sender
from bot.sms.privacy import mask_number
from bot.state.protocols import (
    BudgetStore,
    ContextStore,
    EscalationStore,
    OverrideStore,
    StoreUnavailable,
    Subscriptions,
    SubscriptionsUnavailable,
)

log = logging.getLogger(__name__)

ESCALATED = "[escalated] "
"""Put before a later step's text, when it still fits: this page comes because nobody acked the first."""
CONCURRENCY = 16
"""Store calls a batch has in flight at once: a storm's hundreds of escalations are not run one round trip
after another, nor all at once on hundreds of connections."""
NOTE_TTL_S = KEEP_S
"""How long a message's or a call's note lives: Twilio reports delivery within minutes, calls within an hour."""


T = TypeVar("T")
R = TypeVar("R")


async def each(items: Iterable[T], work: Callable[[T], Awaitable[R]], limit: int = CONCURRENCY) -> list[R]:
    """`work` on every item, at most `limit` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


@dataclass(frozen=True)
class Run:
    """One claimed step of one escalation."""

    timeline: Timeline
    step: int
    owner: str


@dataclass
class Outcome:
    """What a batch of runs did: who was reached for each alert, and which steps failed someone."""

    reached: dict[str, list[str]] = field(default_factory=dict)
    """Fingerprint -> names paged by this batch."""
    failed: set[str] = field(default_factory=set)
    """Fingerprints whose step failed (a refused text, an unplaced call, nobody to reach): next step now."""
    ran: set[str] = field(default_factory=set)
    """Fingerprints one of whose steps ran (set by the service, which claims the runs)."""

    def merge(self, other: Outcome) -> None:
        for fingerprint, names in other.reached.items():
            self.reached.setdefault(fingerprint, []).extend(names)
        self.failed |= other.failed
        self.ran |= other.ran


@dataclass
class _Group:
    person: Person
    runs: list[Run] = field(default_factory=list)


class Pager:
    def __init__(
        self,
        settings: Settings,
        policies: Policies,
        store: EscalationStore,
        overrides: OverrideStore,
        contexts: ContextStore,
        subscriptions: Subscriptions,
        budget: BudgetStore,
        sender: Sender | None,
        caller: Caller | None,
        audit: AuditWriter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.store = store
        self.overrides = overrides
        self.contexts = contexts
        self.subscriptions = subscriptions
        self.budget = budget
        self.sender = sender
        self.caller = caller
        self.audit = audit
        self.metrics = metrics
        self.public_url = (settings.public_url or "").rstrip("/")
        self.rules: dict[str, RecipientRule] = rules_from_users(settings.users)

    async def current_overrides(self, now: float) -> dict[str, list[Override]]:
        found: dict[str, list[Override]] = {}
        for name in self.policies.rotations:
            try:
                found[name] = await self.overrides.current(name, now)
            except StoreUnavailable:
                found[name] = []  # the rotation alone: someone is paged rather than no one
        return found

    async def page(self, runs: Sequence[Run], now: float) -> Outcome:
        """Text or call everyone these steps reach (whom each run did not reach already)."""
        outcome = Outcome()
        overrides = await self.current_overrides(now)
        texts: dict[str, _Group] = {}
        calls: dict[str, _Group] = {}
        for run in runs:
            step = self.policies.steps(run.timeline.policy)[run.step]
            reach = self.policies.reach(step, now, overrides)
            people = list(reach.people)
            if reach.everyone:
                people += [p for p in await self._everyone(run.timeline.alert, now) if p not in people]
            if not people:
                why = f"nobody to reach ({', '.join(reach.missing)} unknown)" if reach.missing else "nobody to reach"
                await self._record(run, Event(now, "nobody", run.step, detail=why))
                outcome.failed.add(run.timeline.fingerprint)
                continue
            done = run.timeline.reached(run.step)
            groups = texts if step.action == "sms" else calls
            for person in people:
                if person.number not in done:
                    groups.setdefault(person.number, _Group(person)).runs.append(run)
        await asyncio.gather(*(self._text(group, now, outcome) for group in texts.values()),
                             *(self._call(group, now, outcome) for group in calls.values()))  # fmt: skip
        return outcome

    async def _everyone(self, alert: AlertEvent, now: float) -> list[Person]:
        """`all`: every allowlisted user who would get this alert as a broadcast (subscribed, severity, quiet
        hours unless critical)."""
        view = Notification(alert.source, "oncall", "firing", (alert,))
        moment = datetime.fromtimestamp(now, UTC)
        people = []
        for rule in self.rules.values():
            try:
                subscribed = await self.subscriptions.is_subscribed(rule.number, rule.subscribed_by_default)
            except SubscriptionsUnavailable:
                subscribed = rule.subscribed_by_default
            if wants(rule, view, moment, subscribed, allowlist=self.rules):
                people.append(Person(rule.number, rule.name or mask_number(rule.number), rule.role))
        return people

    async def _text(self, group: _Group, now: float, outcome: Outcome) -> None:
        person = group.person
        if await self._held(group, person.number, now, "over the text budget"):
            return
        alerts = numbered(_distinct(run.timeline.alert for run in group.runs))
        view = Notification(alerts[0].source, "oncall", "firing", alerts)
        await self._number(person.number, alerts)
        text = format_firing(view, alerts, datetime.fromtimestamp(now, UTC), max_segments=self.settings.max_segments,
                             actions=person.role == "operator")  # fmt: skip
        if any(run.step > 0 for run in group.runs) and segment_count(ESCALATED + text) <= self.settings.max_segments:
            text = ESCALATED + text
        delivery = await self._send(person.number, text)
        await self._after(group, delivery, "sms", now, outcome, note_key=f"sms:{delivery.sid}" if delivery.sid else "")

    async def _held(self, group: _Group, key: str, now: float, reason: str) -> bool:
        """True when the person's budget under `key` holds this page back (recorded on each run); a budget
        store that cannot answer lets it through: a page is worth more than a limit."""
        try:
            decision = await self.budget.take(key)
        except StoreUnavailable:
            decision = "send"
        if decision != "hold":
            return False
        person = group.person
        for run in group.runs:
            await self._record(run, Event(now, "held", run.step, person.name, person.number, reason))
        return True

    async def _call(self, group: _Group, now: float, outcome: Outcome) -> None:
        person = group.person
        token = secrets.token_urlsafe(18)
        if await self._held(group, f"call:{person.number}", now, "over the call budget"):
            return
        if self.caller is None or not self.public_url:
            delivery = Delivery(mask_number(person.number), None, "failed", 0, "calls are not set up")
        else:
            await self._note(f"call:{token}", group, person)
            url = f"{self.public_url}/twilio/voice?t={token}"
            delivery = await self.caller.call(person.number, url, f"{self.public_url}/twilio/voice/status?t={token}")
        if self.metrics is not None:
            self.metrics.deliveries.labels(f"call {delivery.status}"[:20]).inc()
        if self.audit is not None:
            alerts = ", ".join(dict.fromkeys(run.timeline.alert.name for run in group.runs))
            self.audit.add(make_entry(person.number, "out", f"call: {alerts}", intent="call", outcome=delivery.status,
                                      message_sid=delivery.sid, segments=0))  # fmt: skip
        await self._after(group, delivery, "call", now, outcome)

    async def _after(
        self, group: _Group, delivery: Delivery, kind: Kind, now: float, outcome: Outcome, note_key: str = ""
    ) -> None:
        person = group.person
        ok = delivery.ok
        detail = delivery.status if ok else (delivery.error or delivery.status)
        event = Event(now, kind if ok else "failed", -1, person.name, person.number, detail)
        await each(group.runs, lambda run: self._record(run, replace(event, step=run.step)))
        for run in group.runs:
            if ok:
                outcome.reached.setdefault(run.timeline.fingerprint, []).append(person.name)
            else:
                outcome.failed.add(run.timeline.fingerprint)
        if ok and note_key:
            await self._note(note_key, group, person)

    async def _note(self, key: str, group: _Group, person: Person) -> None:
        """What a later callback about this message or call needs: whose page it was, about which steps."""
        steps = {run.timeline.fingerprint: run.step for run in group.runs}
        try:
            await self.store.remember(key, json.dumps({"n": person.number, "s": steps}), NOTE_TTL_S)
        except StoreUnavailable:
            log.warning("a page's note was not kept: its delivery report will not move the escalation")

    async def _record(self, run: Run, event: Event) -> None:
        try:
            await self.store.record(run.timeline.fingerprint, event)
        except StoreUnavailable as exc:
            log.error("escalation event not recorded: %s", exc)

    async def _number(self, number: str, alerts: Sequence[AlertEvent]) -> None:
        """So that "ack 2" from this person means the second alert of the page they just got."""
        try:
            context = await self.contexts.get(number)
            await self.contexts.put(number, replace(context, alerts=tuple(a.fingerprint for a in alerts)))
        except StoreUnavailable:
            pass

    async def _send(self, number: str, text: str, intent: str = "alert") -> Delivery:
        if self.sender is None:
            log.warning("no Twilio credentials: a page to %s was not sent", mask_number(number))
            delivery = Delivery(mask_number(number), None, "undeliverable", 0, "no Twilio credentials")
        else:
            delivery = await self.sender.send(number, text)
            if self.metrics is not None:
                self.metrics.deliveries.labels(delivery.status).inc()
        if self.audit is not None:
            self.audit.add(make_entry(number, "out", text, intent=intent, outcome=delivery.status,
                                      message_sid=delivery.sid))  # fmt: skip
        return delivery

    async def tell(self, texts: Mapping[str, str]) -> None:
        """Notices to people already paged (who acked, what resolved, who took a pager): no budget, they are few."""
        for number, text in texts.items():
            await self._send(number, text, intent="notice")


def _distinct(alerts: Iterable[AlertEvent]) -> tuple[AlertEvent, ...]:
    found: dict[str, AlertEvent] = {}
    for alert in alerts:
        found.setdefault(alert.fingerprint, alert)
    return tuple(found.values())
