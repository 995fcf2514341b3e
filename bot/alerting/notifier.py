"""From a notification to texts: drop repeats, update what is open, pick who gets it, keep within
each person's budget, number the alerts in their context, send, and record everything.

Every alert of every notification goes into the audit history, texted or not, so a storm that the
budget turns into one summary text loses nothing from the record.

Texts to one number leave in the order their budget was taken: each number has its own lock, held from
the budget decision until Twilio accepted the text, so a storm's summary never overtakes a text it
summarizes that was still being sent (notifications are handled concurrently, and one slow send must not
let the summary out first). Different numbers never wait for each other. The order holds per process;
with several instances sharing a Redis budget, texts handled by different instances are not ordered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from bot.alerting.model import AlertEvent, Changes, Notification
from bot.alerting.recipients import RecipientRule, rules_from_users, wants
from bot.alerting.texts import format_firing, format_resolved, format_summary, numbered
from bot.db.audit import AuditWriter
from bot.db.history import make_entry
from bot.observability import Metrics
from bot.settings import Settings
from bot.sms.outbound import Sender
from bot.sms.privacy import mask_number
from bot.state.memory.delivery import Deduplicator, LocalBudget, LocalDedup, SendBudget
from bot.state.protocols import (
    DEDUP_TTL_S,
    AlertStore,
    BudgetStore,
    ContextStore,
    DedupStore,
    StoreUnavailable,
    Subscriptions,
    SubscriptionsUnavailable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    """What one notification led to (for the webhook's answer, metrics and tests)."""

    duplicate: bool = False
    texts: int = 0
    held: int = 0


class Escalations(Protocol):
    """On-call paging (`bot.oncall.service.OnCall`): takes the alerts that follow an escalation policy."""

    async def route(self, notification: Notification, changes: Changes) -> set[str]:
        """Page for what follows a policy; the fingerprints it took, which the broadcast leaves out."""
        ...


class Notifier:
    def __init__(
        self,
        settings: Settings,
        book: AlertStore,
        contexts: ContextStore,
        subscriptions: Subscriptions,
        sender: Sender | None,
        audit: AuditWriter | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        dedup: DedupStore | None = None,
        budget: BudgetStore | None = None,
        escalations: Escalations | None = None,
    ) -> None:
        self.settings = settings
        self.escalations = escalations
        self.book = book
        self.contexts = contexts
        self.subscriptions = subscriptions
        self.sender = sender
        self.audit = audit
        self.metrics = metrics
        self._clock = clock
        self.recipients: dict[str, RecipientRule] = rules_from_users(settings.users)
        self.budget: BudgetStore = (
            budget
            if budget is not None
            else LocalBudget(SendBudget(settings.alert_budget_texts, settings.alert_budget_window_s))
        )
        self.dedup: DedupStore = dedup if dedup is not None else LocalDedup(Deduplicator(DEDUP_TTL_S))
        self._held: dict[str, Counter[str]] = {}
        """Per number, the alerts held back since their last text, by name ("" for alerts the source
        left out of its payload, counted but without a name)."""
        self._lines: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def handle(self, notification: Notification) -> Handled:
        """Text this notification to everyone who should get it now."""
        try:
            if await self.dedup.seen(notification.delivery_key):
                return Handled(duplicate=True)
        except StoreUnavailable as exc:
            log.error("alert deduplication unavailable: %s", exc)  # a repeat may text twice; better than never
        self._record_received(notification)
        try:
            changes = await self.book.update(notification)
        except StoreUnavailable as exc:
            log.error("open alerts unavailable, texting the notification as it is: %s", exc)
            changes = Changes(firing=notification.firing, resolved=notification.resolved)
        if self.escalations is not None and changes.worth_texting:
            taken = await self.escalations.route(notification, changes)
            changes = replace(changes, firing=tuple(a for a in changes.firing if a.fingerprint not in taken),
                              resolved=tuple(a for a in changes.resolved if a.fingerprint not in taken))  # fmt: skip
        if not changes.worth_texting:
            return Handled()
        view = replace(notification, alerts=changes.firing + changes.resolved,
                       status="firing" if changes.firing else "resolved")  # fmt: skip
        now = datetime.fromtimestamp(self._clock(), UTC)
        recipients = [rule for rule in self.recipients.values() if await self._wants(rule, view, now)]
        sent = await asyncio.gather(*(self._deliver(rule, view, changes.firing, now) for rule in recipients))
        return Handled(texts=sum(sent), held=sum(len(view.alerts) for done in sent if not done))

    async def _deliver(self, rule: RecipientRule, view: Notification, firing: Sequence[AlertEvent],
                       now: datetime) -> bool:  # fmt: skip
        """Text this person (True), or hold it back within their budget (False), in order per number."""
        async with self._line(rule.number):
            text = await self._text_for(rule, view, firing, now)
            if text is None:
                return False
            await self._send(rule.number, text)
            return True

    def _line(self, number: str) -> asyncio.Lock:
        lock = self._lines.get(number)
        if lock is None:
            lock = self._lines[number] = asyncio.Lock()
        return lock

    async def _wants(self, rule: RecipientRule, view: Notification, now: datetime) -> bool:
        chosen = view.extra.get("recipients")
        if chosen and not ({rule.number, rule.name} & {r.strip() for r in chosen.split(",")}):
            return False
        try:
            subscribed = await self.subscriptions.is_subscribed(rule.number, rule.subscribed_by_default)
        except SubscriptionsUnavailable:
            subscribed = rule.subscribed_by_default  # an outage of the store must not silence pages
        return wants(rule, view, now, subscribed, allowlist=self.recipients)

    async def _text_for(
        self, rule: RecipientRule, view: Notification, firing: Sequence[AlertEvent], now: datetime
    ) -> str | None:
        """The text for this person, or None while their budget holds texts back."""
        try:
            decision = await self.budget.take(rule.number)
        except StoreUnavailable:
            decision = "send"
        held = self._held.setdefault(rule.number, Counter())
        if decision in ("hold", "summary"):
            held.update(a.name for a in view.alerts)
            if view.truncated:  # left out of the payload: under the group's name when it has only one
                names = {a.name for a in view.alerts}
                held[names.pop() if len(names) == 1 else ""] += view.truncated
        if decision == "hold":
            return None
        if decision == "summary":
            named = {name: count for name, count in held.items() if name}
            text = format_summary(named, sum(held.values()), paused_for_s=self.settings.alert_budget_window_s)
            self._held.pop(rule.number, None)
            return text
        if not firing:
            return format_resolved(view)
        order = numbered(firing)
        await self._number(rule.number, order)
        return format_firing(view, order, now, max_segments=self.settings.max_segments,
                             actions=rule.role == "operator")  # fmt: skip

    async def _number(self, number: str, alerts: Sequence[AlertEvent]) -> None:
        """So that "ack 2" from this person means the second alert of the text they just got."""
        try:
            context = await self.contexts.get(number)
            await self.contexts.put(number, replace(context, alerts=tuple(a.fingerprint for a in alerts)))
        except StoreUnavailable:
            pass  # the text still goes out; replies by number will say the list is unknown

    async def _send(self, number: str, text: str) -> None:
        if self.sender is None:
            log.warning("no Twilio credentials: an alert text to %s was not sent", mask_number(number))
            outcome, sid = "undeliverable", None
        else:
            delivery = await self.sender.send(number, text)
            outcome, sid = delivery.status, delivery.sid
            if self.metrics is not None:
                self.metrics.deliveries.labels(delivery.status).inc()
        if self.audit is not None:
            self.audit.add(make_entry(number, "out", text, intent="alert", outcome=outcome, message_sid=sid))

    def _record_received(self, notification: Notification) -> None:
        if self.audit is None:
            return
        for alert in notification.alerts:
            self.audit.add(make_entry(
                "", "in", alert.summary or alert.name, intent="alert", command=f"{alert.status} {alert.name}",
                source=notification.source, outcome=alert.status, segments=0, detail=alert.fingerprint,
            ))  # fmt: skip
