"""Each rule series' state from one tick to the next: pending, firing, held, resolved; what to send."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from bot.alerting.model import AlertEvent, Notification, Status
from bot.alerting.rules.model import PLACEHOLDER, SOURCE, Clock, Evaluate, Rule, SeriesValues, figure
from bot.sms.privacy import redact_numbers
from monitors.errors import BackendError, MonitorError, describe, scrub
from monitors.formatting import number

DEFAULT_CONCURRENCY = 16
"""Queries in flight at once: enough to finish 1,000 rules quickly, few enough not to swamp Prometheus."""
DEFAULT_TIMEOUT_S = 30.0
"""A backstop per query so one stuck evaluation cannot hold up the whole tick (adapters time out sooner)."""
DEFAULT_FLAP_MAX = 4
DEFAULT_FLAP_WINDOW_S = 3600.0
MAX_SHOWN_SERIES = 10
"""Series listed per rule by `operator rules check`; the rest are counted."""


# --- evaluation -------------------------------------------------------------------------------------

log = logging.getLogger(__name__)

StateName = Literal["inactive", "pending", "firing", "held", "resolved"]
LabelKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SeriesStatus:
    """One series' state as `RuleEngine.states()` shows it."""

    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    state: StateName
    """held: firing, condition false, resolution held back (flapping); resolved: in its cooldown."""
    value: float
    """The latest value (NaN once the series has disappeared)."""
    active_since: float | None
    """When the condition started holding (pending and firing)."""
    fired_at: float | None
    resolved_at: float | None
    flips: int
    """Firing and resolved notifications within the flap window."""


@dataclass
class _Series:
    fingerprint: str
    labels: Mapping[str, str]
    value: float = math.nan
    state: Literal["inactive", "pending", "firing"] = "inactive"
    active_since: float | None = None
    fired_at: float | None = None
    false_since: float | None = None
    """Set while firing is held back: when the condition stopped holding."""
    resolved_at: float | None = None
    flips: deque[float] = field(default_factory=deque)


def fingerprint(rule_name: str, labels: Mapping[str, str]) -> str:
    """Stable identity of a rule's series: the same labels give the same fingerprint in every process."""
    key = json.dumps([rule_name, sorted(labels.items())], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class RuleEngine:
    """The rules' states, advanced one `tick` at a time; all timing comes from the injected clock."""

    def __init__(
        self,
        rules: Sequence[Rule],
        evaluate: Evaluate,
        clock: Clock = time.time,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        flap_max: int = DEFAULT_FLAP_MAX,
        flap_window_s: float = DEFAULT_FLAP_WINDOW_S,
    ) -> None:
        duplicates = sorted(name for name, count in Counter(rule.name for rule in rules).items() if count > 1)
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._evaluate = evaluate
        self._clock = clock
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._flap_max = flap_max
        self._flap_window_s = flap_window_s
        self._series: dict[str, dict[LabelKey, _Series]] = {rule.name: {} for rule in rules}
        """Per rule, its series by sorted labels (cheaper than hashing them every tick)."""
        self._failing: set[str] = set()
        self._new_failures: dict[str, list[str]] = {}
        """This tick's rules that started failing, by reason (logged together after the tick)."""
        self._recovered: list[str] = []
        self._lock = asyncio.Lock()
        self._instance = uuid.uuid4().hex[:12]
        self._ticks = 0

    async def tick(self) -> list[Notification]:
        """Evaluate every rule once and advance its series; one notification per rule that changed."""
        async with self._lock:  # two ticks at once would advance the same states twice
            self._ticks += 1
            now = self._clock()
            answers: dict[str, SeriesValues] = {}

            async def evaluate(rule: Rule) -> None:
                answer = await self._answer(rule)
                if answer is not None:
                    answers[rule.name] = answer

            self._new_failures, self._recovered = {}, []
            await for_each(self.rules, evaluate, self._concurrency)
            self._log_failures()
            notifications = []
            for rule in self.rules:
                if rule.name in answers:
                    events = self._advance(rule, answers[rule.name], now)
                    if events:
                        notifications.append(self._notification(rule, events))
            return notifications

    def states(self) -> list[SeriesStatus]:
        """Every series the engine remembers, rule by rule (for inspection and tests)."""
        now = self._clock()
        return [self._status(rule, series, now) for rule in self.rules for series in self._series[rule.name].values()]

    async def _answer(self, rule: Rule) -> SeriesValues | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._evaluate(rule)
        except MonitorError as exc:
            self._failed(rule, reason(exc))
            return None
        except TimeoutError:
            self._failed(rule, f"no answer within {self._timeout_s:g} s")
            return None
        if rule.name in self._failing:
            self._failing.discard(rule.name)
            self._recovered.append(rule.name)
        return answer

    def _failed(self, rule: Rule, reason: str) -> None:
        if rule.name not in self._failing:
            self._failing.add(rule.name)
            self._new_failures.setdefault(reason, []).append(rule.name)

    def _log_failures(self) -> None:
        """A rule is logged when its query starts failing and when it answers again, not every tick;
        rules failing for the same reason share a line, so an outage under 1,000 rules is one line."""
        for reason, names in self._new_failures.items():
            if len(names) == 1:
                log.warning("rule %s: skipped until its query answers (%s)", names[0], reason)
            else:
                log.warning("%d rules skipped until their queries answer (%s): %s", len(names), reason, _some(names))
        if len(self._recovered) == 1:
            log.info("rule %s: its query answers again", self._recovered[0])
        elif self._recovered:
            log.info("%d rules' queries answer again: %s", len(self._recovered), _some(self._recovered))

    def _advance(self, rule: Rule, answer: SeriesValues, now: float) -> list[AlertEvent]:
        states = self._series[rule.name]
        seen: set[LabelKey] = set()
        events: list[AlertEvent] = []
        for labels, value in answer:
            key = tuple(sorted(labels.items()))
            seen.add(key)
            series = states.get(key)
            if series is None:
                series = states[key] = _Series(fingerprint(rule.name, labels), dict(labels))
            series.value = value
            event = self._step(rule, series, rule.holds(value), now)
            if event is not None:
                events.append(event)
        for key in [key for key in states if key not in seen]:
            series = states[key]
            series.value = math.nan
            event = self._step(rule, series, False, now)
            if event is not None:
                events.append(event)
            if self._forgettable(rule, series, now):
                del states[key]
        return events

    def _step(self, rule: Rule, series: _Series, holds: bool, now: float) -> AlertEvent | None:
        """One series' transition for this tick (the state machine of the module docstring)."""
        if holds:
            if series.state == "firing":
                series.false_since = None  # a held series holds again: the hold ends, nothing to say
                return None
            if series.state == "inactive" or series.active_since is None:
                series.state, series.active_since = "pending", now
            if now - series.active_since >= rule.for_s and not _cooling(rule, series, now):
                series.state, series.fired_at = "firing", now
                self._flip(series, now)
                return self._event(rule, series, "firing", now)
            return None
        if series.state == "pending":
            series.state, series.active_since = "inactive", None
            return None
        if series.state != "firing":
            return None
        if series.false_since is None:
            if self._flips(series, now) > self._flap_max:
                series.false_since = now
                log.info("rule %s: series %s is flapping; its resolution is held", rule.name, series.fingerprint)
                return None
            return self._resolve(rule, series, now)
        if now - series.false_since >= self._flap_window_s:
            return self._resolve(rule, series, now)
        return None

    def _resolve(self, rule: Rule, series: _Series, now: float) -> AlertEvent:
        event = self._event(rule, series, "resolved", now)
        series.state, series.active_since, series.false_since = "inactive", None, None
        series.resolved_at = now
        self._flip(series, now)
        return event

    def _flip(self, series: _Series, now: float) -> None:
        series.flips.append(now)
        self._flips(series, now)

    def _flips(self, series: _Series, now: float) -> int:
        """Flips within the window ending now (older ones are dropped)."""
        while series.flips and series.flips[0] <= now - self._flap_window_s:
            series.flips.popleft()
        return len(series.flips)

    def _forgettable(self, rule: Rule, series: _Series, now: float) -> bool:
        """A vanished series is kept while its cooldown or flip history still matters, then dropped."""
        if series.state != "inactive":
            return False
        return not _cooling(rule, series, now) and self._flips(series, now) == 0

    def _event(self, rule: Rule, series: _Series, status: Status, now: float) -> AlertEvent:
        return AlertEvent(
            fingerprint=series.fingerprint,
            name=rule.name,
            labels={**series.labels, **rule.labels},
            status=status,
            severity=rule.severity,
            summary=render_summary(rule, series.labels, series.value, status),
            starts_at=_datetime(series.fired_at),
            ends_at=_datetime(now) if status == "resolved" else None,
            source=SOURCE,
        )

    def _notification(self, rule: Rule, events: Sequence[AlertEvent]) -> Notification:
        return Notification(
            source=SOURCE,
            group_key=rule.name,
            status="firing" if any(event.status == "firing" for event in events) else "resolved",
            alerts=tuple(events),
            delivery_key=f"rule:{rule.name}:{self._instance}:{self._ticks}",
            extra={"recipients": ",".join(rule.recipients)} if rule.recipients else {},
        )

    def _status(self, rule: Rule, series: _Series, now: float) -> SeriesStatus:
        state: StateName = series.state
        if series.state == "firing" and series.false_since is not None:
            state = "held"
        elif series.state == "inactive" and _cooling(rule, series, now):
            state = "resolved"
        return SeriesStatus(
            rule=rule.name,
            fingerprint=series.fingerprint,
            labels=dict(series.labels),
            state=state,
            value=series.value,
            active_since=series.active_since,
            fired_at=series.fired_at,
            resolved_at=series.resolved_at,
            flips=len([t for t in series.flips if t > now - self._flap_window_s]),
        )


def render_summary(rule: Rule, labels: Mapping[str, str], value: float, status: Status = "firing") -> str:
    """The rule's summary with {value} and {labels.NAME} filled in (a missing label is empty).

    Placeholders are replaced by a plain substitution, never `str.format`, so a summary cannot reach
    into attributes. Without a summary: "80 > 50" when firing, "now 10" or "no data" when resolved.
    """
    shown = number(value)
    if not rule.summary:
        if status == "firing":
            return f"{shown} {rule.op} {figure(rule.threshold)}"
        return "no data" if math.isnan(value) else f"now {shown}"

    def fill(match: re.Match[str]) -> str:
        inside = match.group(1)
        if inside == "value":
            return shown
        return labels.get(inside.partition(".")[2], "")

    return PLACEHOLDER.sub(fill, rule.summary)


def _some(names: Sequence[str], shown: int = 3) -> str:
    """ "A, B, C and 997 more" (names in file order)."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _cooling(rule: Rule, series: _Series, now: float) -> bool:
    """Resolved less than `cooldown` ago: it may not fire yet."""
    return series.resolved_at is not None and now < series.resolved_at + rule.cooldown_s


def _datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def reason(error: MonitorError) -> str:
    """A monitor error's one line without the backend's name ("query rejected: parse error …"), numbers masked."""
    text = redact_numbers(describe(error))
    if isinstance(error, BackendError) and text.startswith(f"{error.backend}: "):
        return text[len(error.backend) + 2 :]
    return text


async def for_each(rules: Sequence[Rule], call: Callable[[Rule], Awaitable[None]], concurrency: int) -> None:
    """`call` for every rule, at most `concurrency` at once: a few workers share one iterator, so
    1,000 rules cost 16 tasks, not 1,000."""
    remaining: Iterator[Rule] = iter(rules)

    async def worker() -> None:
        for rule in remaining:
            await call(rule)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(rules))):
            group.create_task(worker())


def brief(error: BaseException) -> str:
    """An unexpected error for a log line: its type and a scrubbed, number-masked message."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(brief(inner) for inner in error.exceptions[:3])
    if isinstance(error, MonitorError):
        return redact_numbers(describe(error))
    text = scrub(redact_numbers(str(error)))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
