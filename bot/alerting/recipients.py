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

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as time_of_day
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.alerting.model import Notification, Severity

Decision = Literal["send", "summary", "hold"]
Clock = Callable[[], float]

_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")
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


def parse_quiet_hours(text: str) -> tuple[time_of_day, time_of_day]:
    """ "22:00-07:00" as (22:00, 07:00): from the start, up to (not including) the end, over midnight when
    the end is earlier. Raises ValueError naming the problem: the shape, a time that is not on the clock,
    or an empty span."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 22:00-07:00")
    start, end = (_clock_time(part, text) for part in parts)
    if start == end:
        raise ValueError(f"quiet hours {text!r}: start and end are the same; leave quiet hours out instead")
    return start, end


def _clock_time(part: str, whole: str) -> time_of_day:
    match = _CLOCK_TIME.fullmatch(part.strip())
    if not match:
        raise ValueError(f"quiet hours {whole!r}: {part.strip()!r} is not HH:MM")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"quiet hours {whole!r}: {part.strip()} is not a time of day (00:00 to 23:59)")
    return time_of_day(hour, minute)


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


@dataclass
class _Texts:
    sent: deque[float] = field(default_factory=deque)
    """When each text in the window went out (sends and the summary)."""
    summary_at: float | None = None
    """When the summary went out, while the number is held."""


def check_budget(max_texts: int, window_s: float) -> None:
    """Refuse a budget that could never send the summary (the Redis budget applies the same rule)."""
    if max_texts < 2:
        raise ValueError("max_texts must be at least 2: one alert text and the summary")
    if window_s <= 0:
        raise ValueError("window_s must be positive")


class SendBudget:
    """At most `max_texts` alert texts to a number in any `window_s` seconds, the last one a summary.

    `take(number)` answers for each text the caller is about to send:
    - "send" while fewer than `max_texts - 1` texts went out in the last `window_s`;
    - "summary" once, when only the last text is left: send the storm summary instead (it counts what
      this text would have carried, and anything the caller is still holding);
    - "hold" after that, until the summary is `window_s` old: keep what would have been sent (for the
      history and the next summary), send nothing.
    So a storm of any size costs a number `max_texts` texts per window. In memory, per process, for one
    event loop (no lock): a restart forgets the window, and with several workers each has its own budget.
    """

    def __init__(
        self, max_texts: int, window_s: float, clock: Clock = time.monotonic, max_numbers: int = 10_000
    ) -> None:
        check_budget(max_texts, window_s)
        self.max_texts = max_texts
        self.window_s = window_s
        self._clock = clock
        self._max_numbers = max_numbers
        self._numbers: OrderedDict[str, _Texts] = OrderedDict()

    def take(self, number: str) -> Decision:
        now = self._clock()
        texts = self._numbers.pop(number, None) or _Texts()
        self._numbers[number] = texts  # most recently used last, so the idlest number is forgotten first
        if len(self._numbers) > self._max_numbers:
            self._numbers.popitem(last=False)
        while texts.sent and texts.sent[0] <= now - self.window_s:
            texts.sent.popleft()
        if texts.summary_at is not None:
            if texts.summary_at > now - self.window_s:
                return "hold"
            texts.summary_at = None
        texts.sent.append(now)
        if len(texts.sent) < self.max_texts:
            return "send"
        texts.summary_at = now
        return "summary"

    def holding(self, number: str) -> bool:
        """Whether texts to `number` are held now (a summary went out less than `window_s` ago)."""
        texts = self._numbers.get(number)
        return texts is not None and texts.summary_at is not None and texts.summary_at > self._clock() - self.window_s


class Deduplicator:
    """Remembers delivery keys for `ttl_s` seconds, at most `max_keys` of them (the oldest forgotten first).

    `seen(key)` is False the first time and True for a repeat within the TTL. Keep the TTL shorter than
    Alertmanager's `repeat_interval` (4 h by default): a reminder it sends on purpose has the same key as
    the first delivery and should go out. An empty key (a source without one) is never a repeat.
    """

    def __init__(self, ttl_s: float, max_keys: int = 100_000, clock: Clock = time.monotonic) -> None:
        if ttl_s <= 0 or max_keys < 1:
            raise ValueError("ttl_s must be positive and max_keys at least 1")
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        if not key:
            return False
        now = self._clock()
        while self._expiry:  # insertion order is expiry order: every key lives ttl_s from its first sighting
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[oldest]
        if key in self._expiry:
            return True
        self._expiry[key] = now + self.ttl_s
        if len(self._expiry) > self.max_keys:
            self._expiry.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._expiry)
