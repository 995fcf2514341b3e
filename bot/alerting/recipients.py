"""Who gets an alert text, and how many: recipient rules, the per-number send budget, delivery dedup.

Only allowlisted numbers ever receive anything: a rule exists only for a number in `users:`, and
`wants` checks the allowlist again, so a rule left behind by a config change sends nothing. Beyond
that a person chooses: subscribed or not (by texting "subscribe"/"unsubscribe"; the rule's
`subscribed_by_default` says what holds before they do), the least severity worth a text, and quiet
hours in their own time zone.

Quiet hours hold back warnings and infos, never criticals: a critical alert is the reason to wake
someone, and the person chose the critical threshold to mean exactly that. A resolution is judged by
the notification's severity too, so the "resolved" for a critical page reaches whoever the page
reached, even at night.

The budget keeps a storm from sending hundreds of texts: each number gets at most `max_texts` texts in
any `window_s` seconds. The last of them is a summary ("Alert storm: 487 more alerts ... not texted.
Texts paused 1h."), after which nothing is sent until the summary has left the window; what was held
is still in the history and behind the "alerts" command. Per notification and recipient, the caller:

    if deduplicator.seen(n.delivery_key): drop it (a repeat)
    record n in the history (always, texted or not)
    for each rule: if wants(rule, n, now, subscribed, allowlist=users):
        match budget.take(rule.number):
            "send"    -> text format_notification(n, ...)
            "summary" -> add n's alerts to the number's tally, text format_summary(tally, count,
                         paused_for_s=window_s), empty the tally
            "hold"    -> add n's alerts to the number's tally (the next summary counts them)
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time as time_of_day
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.alerting.model import Notification, Severity
from bot.settings import parse_quiet_hours

Decision = Literal["send", "summary", "hold"]
Clock = Callable[[], float]

_SEVERITY_WORDS = {severity.name.lower(): severity for severity in Severity}


@dataclass(frozen=True)
class RecipientRule:
    """What one allowlisted number wants texted. Build it with `make_rule` from config strings."""

    number: str
    """E.164, as in the allowlist (`users:`)."""
    name: str
    role: str
    """The allowlist role: "operator" may ack and silence (their texts say how), "viewer" only reads."""
    min_severity: Severity = Severity.WARNING
    quiet_hours: tuple[time_of_day, time_of_day] | None = None
    """(start, end) in `timezone`; the end may be earlier than the start, spanning midnight."""
    timezone: str = "UTC"
    subscribed_by_default: bool = True
    """Whether alerts are texted before the person has texted "subscribe" or "unsubscribe"."""

    def __post_init__(self) -> None:
        _zone(self.timezone)  # a typo in the zone is a start-up error, not a 3 a.m. surprise
        if self.quiet_hours is not None and self.quiet_hours[0] == self.quiet_hours[1]:
            raise ValueError("quiet hours start and end at the same time")


def make_rule(
    number: str,
    name: str = "",
    role: str = "viewer",
    *,
    min_severity: str = "warning",
    quiet_hours: str | None = None,
    timezone: str = "UTC",
    subscribed_by_default: bool = True,
) -> RecipientRule:
    """A rule from config values ("critical", "22:00-07:00", "Europe/Berlin"); ValueError says what is wrong."""
    severity = _SEVERITY_WORDS.get(min_severity.strip().lower())
    if severity is None:
        raise ValueError(f"min_severity must be one of {', '.join(_SEVERITY_WORDS)}")
    return RecipientRule(
        number=number,
        name=name,
        role=role,
        min_severity=severity,
        quiet_hours=parse_quiet_hours(quiet_hours) if quiet_hours else None,
        timezone=timezone,
        subscribed_by_default=subscribed_by_default,
    )


class UserConfig(Protocol):
    """What a `users:` entry says about alert texts (bot.settings.User has these fields). Read-only, so a
    narrower type there (`Literal["viewer", "operator"]`) still fits."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def min_severity(self) -> str: ...
    @property
    def quiet_hours(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def subscribed(self) -> bool: ...


def rules_from_users(users: Mapping[str, UserConfig]) -> dict[str, RecipientRule]:
    """One rule per allowlisted number, from the `users:` section: the allowlist is the only source of rules."""
    return {
        number: make_rule(
            number,
            user.name,
            user.role,
            min_severity=user.min_severity,
            quiet_hours=user.quiet_hours,
            timezone=user.timezone,
            subscribed_by_default=user.subscribed,
        )
        for number, user in users.items()
    }


def in_quiet_hours(rule: RecipientRule, now: datetime) -> bool:
    """Whether `now` (timezone-aware) falls in the rule's quiet hours, read on the person's own clock."""
    if rule.quiet_hours is None:
        return False
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(_zone(rule.timezone)).time().replace(tzinfo=None)
    start, end = rule.quiet_hours
    if start < end:
        return start <= local < end
    return local >= start or local < end


def wants(
    rule: RecipientRule, notification: Notification, now: datetime, subscribed: bool, *, allowlist: Container[str]
) -> bool:
    """Whether this notification is texted to this rule's number now.

    All must hold: the number is in `allowlist` (the current `users:`), the person is `subscribed` (the
    caller's record, else `rule.subscribed_by_default`), the notification's severity (its most severe
    alert) is at least `rule.min_severity`, and it is not quiet hours for them unless it is critical.
    """
    if rule.number not in allowlist or not subscribed:
        return False
    severity = notification.severity
    if severity < rule.min_severity:
        return False
    return severity >= Severity.CRITICAL or not in_quiet_hours(rule, now)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc
