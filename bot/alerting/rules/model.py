"""The bot's own threshold rules: PromQL comparisons from a YAML file, evaluated on a schedule.

Alertmanager tells us about the alerts a team already has; these rules cover what it does not
(a small team with Prometheus and no Alertmanager, or one number someone wants texted about). A rule
file looks like this (comparison operators must be quoted: a bare `>` starts a block of text in YAML)::

    rules:
      - name: CheckoutCpuHigh
        metric: cpu                 # an alias from `metrics:`, or `expr:` with any PromQL
        service: checkout
        op: ">"
        threshold: 80
        for: 5m                     # true this long before it fires (default 0: at once)
        cooldown: 10m               # a resolved series does not fire again sooner (default 10m)
        severity: critical          # critical, warning (default) or info
        recipients: ["+15551230001", alice]   # empty: every subscribed user
        summary: "checkout CPU at {value}%"  # {value} and {labels.NAME} are filled in
        labels: {team: payments}

Each series a rule's query returns has its own state, keyed by a fingerprint (the rule's name and
the series' labels, hashed)::

    inactive --condition true--> pending --true for `for`, cooldown over--> firing  (notify "firing")
    pending  --condition false--> inactive                                          (nothing sent)
    firing   --condition false or series gone--> inactive                           (notify "resolved")

Cooldown: after a series resolves it does not fire again until `cooldown` has passed since the
resolution; a condition that holds meanwhile waits in `pending` and fires when the cooldown ends
(and `for` has been met), so a real problem is late, never lost.

Flapping: every firing or resolved notification a series sends is a *flip*. When a firing series'
condition stops holding and the series has flipped more than `flap_max` times (default 4) in the
last `flap_window_s` (default 1 h), the firing this would end included, it is *held*: it stays
firing and nothing is sent (so firing, resolved, firing, resolved, firing, then quiet). A held series
resolves, with one notification, once its condition has been false for `flap_window_s` without a
break. If the condition holds again meanwhile, the hold ends silently (the series never stopped
firing) and the next time it stops holding the rule above is applied afresh.

A series that disappears from the query's answer counts as "condition false", and a NaN value never
holds. A rule whose query fails is skipped for that tick with all its states untouched (logged when
it starts failing and when it answers again), so a Prometheus outage neither resolves nor fires
anything. States live in memory only: after a restart, a series still over its threshold fires again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import operator
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.alerting.model import AlertEvent, Notification, Severity, Status
from bot.settings import DEFAULT_METRICS, User
from bot.sms.privacy import mask_number, redact_numbers
from intents.durations import compact_seconds, format_duration
from monitors.base import MetricQuery, MetricResult, Monitor
from monitors.errors import BackendError, BadBackendResponse, MonitorError, describe, scrub
from monitors.formatting import number

log = logging.getLogger(__name__)

Op = Literal[">", ">=", "<", "<=", "==", "!="]
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
"""How each `op` compares a value with the threshold (a NaN value never holds: see `Rule.holds`)."""

SOURCE = "rule"
"""`Notification.source` and `AlertEvent.source` of everything the rules send."""
DEFAULT_CONCURRENCY = 16
"""Queries in flight at once: enough to finish 1,000 rules quickly, few enough not to swamp Prometheus."""
DEFAULT_TIMEOUT_S = 30.0
"""A backstop per query so one stuck evaluation cannot hold up the whole tick (adapters time out sooner)."""
DEFAULT_FLAP_MAX = 4
DEFAULT_FLAP_WINDOW_S = 3600.0
MAX_SHOWN_SERIES = 10
"""Series listed per rule by `operator rules check`; the rest are counted."""

_NAME = re.compile(r"[A-Za-z0-9_:-]{1,128}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_USER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ZERO = re.compile(r"0+(?:\.0+)?(?:s|m|h|d|w)?")
_SEVERITIES = {"critical": Severity.CRITICAL, "warning": Severity.WARNING, "info": Severity.INFO}

SeriesValues = Sequence[tuple[Mapping[str, str], float]]
"""A rule's query answer: each series' labels and its current value."""
Evaluate = Callable[["Rule"], Awaitable[SeriesValues]]
"""Runs a rule's query now. Failures are raised as `MonitorError`s (what the adapters raise)."""
Sink = Callable[[Notification], Awaitable[None]]
Clock = Callable[[], float]


class RuleFileError(ValueError):
    """A rule file cannot be used; the message names the file, the rule and the field at fault."""


def parse_duration(value: Any) -> int:
    """Seconds in "30s", "5m", "1h30m" (or a plain number of seconds); "0" and "0s" are zero."""
    if isinstance(value, bool):
        raise ValueError("not a duration (write it like 30s, 5m or 1h30m)")
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return round(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _ZERO.fullmatch(text):
            return 0
        seconds = compact_seconds(text)
        if seconds is not None:
            return seconds
    raise ValueError("not a duration (write it like 30s, 5m or 1h30m, at most a year)")


class Rule(BaseModel):
    """One threshold rule as the file gives it, checked field by field."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    """Unique in the file; also the alert's name and the notification's group key."""
    expr: str | None = None
    """Any PromQL expression (exclusive with `metric`)."""
    metric: str | None = None
    """A metric alias from the settings' `metrics:` (exclusive with `expr`)."""
    service: str | None = None
    """The service an alias is asked about; without one the alias matches every service."""
    op: Op
    threshold: float = Field(allow_inf_nan=False)
    for_s: int = Field(0, alias="for")
    cooldown_s: int = Field(600, alias="cooldown")
    severity: Severity = Severity.WARNING
    recipients: tuple[str, ...] = ()
    """E.164 numbers or user names; empty means every subscribed user."""
    summary: str = Field("", max_length=500)
    labels: dict[str, str] = Field(default_factory=dict)
    """Added to every alert of the rule (over the series' own labels of the same name)."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("use 1 to 128 letters, digits, '_', ':' or '-'")
        return value

    @field_validator("expr", "metric", "service")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty")
        return None if value is None else value.strip()

    @field_validator("op", mode="before")
    @classmethod
    def _check_op(cls, value: Any) -> Any:
        if value in (None, ""):
            raise ValueError('is empty: in YAML a bare > starts a block of text, so quote it: op: ">"')
        if value not in COMPARISONS:
            raise ValueError('must be one of > >= < <= == != (quoted in YAML: op: ">=")')
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        return value

    @field_validator("for_s", "cooldown_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, str) and value.strip().lower() in _SEVERITIES:
            return _SEVERITIES[value.strip().lower()]
        raise ValueError("must be critical, warning or info")

    @field_validator("recipients", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ValueError("must be a list of phone numbers (E.164) or user names")
        found: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                raise ValueError(
                    f"item {index}: quote phone numbers in YAML ('+15551230001'), or they read as integers"
                )
            if not isinstance(item, str):
                raise ValueError(f"item {index}: must be a phone number or a user name")
            item = item.strip()
            if item[:1] == "+" or item[:1].isdigit():
                if not _E164.fullmatch(item):
                    raise ValueError(f"item {index}: not an E.164 phone number (like +15551230001)")
            elif not _USER_NAME.fullmatch(item):
                raise ValueError(f"item {index}: not a user name (letters, digits, '_', '.', '-')")
            if item not in found:
                found.append(item)
        return tuple(found)

    @field_validator("summary")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        for match in _PLACEHOLDER.finditer(value):
            if not _placeholder_ok(match.group(1)):
                raise ValueError(f"unknown placeholder {{{match.group(1)[:40]}}}: use {{value}} or {{labels.NAME}}")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _LABEL_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"label name {bad[0][:40]!r} is not a Prometheus label name")
        return value

    @model_validator(mode="after")
    def _one_query(self) -> Rule:
        if (self.expr is None) == (self.metric is None):
            raise ValueError("give exactly one of expr (PromQL) or metric (an alias)")
        if self.service is not None and self.metric is None:
            raise ValueError("service goes with metric (an alias); put the matcher in expr instead")
        return self

    def query(self) -> MetricQuery:
        """What the Prometheus adapter is asked: the raw expression, or the alias for the service."""
        if self.expr is not None:
            return MetricQuery(self.expr, raw=True)
        assert self.metric is not None  # the model validator guarantees one of the two
        return MetricQuery(self.metric, self.service)

    def holds(self, value: float) -> bool:
        """Whether the condition is true for this value. NaN (0/0: an error ratio with no traffic)
        never holds, not even for `!=`, where PromQL would keep it: no data is not an alert."""
        return not math.isnan(value) and COMPARISONS[self.op](value, self.threshold)

    def condition(self) -> str:
        """ "cpu(checkout) > 80 for 5m", "rate(x[5m]) >= 0.5": how `rules check` shows the rule."""
        if self.expr is not None:
            subject = self.expr
        else:
            subject = f"{self.metric}({self.service or 'all services'})"
        text = f"{subject} {self.op} {_figure(self.threshold)}"
        return f"{text} for {format_duration(self.for_s)}" if self.for_s else text


def _placeholder_ok(inside: str) -> bool:
    if inside == "value":
        return True
    prefix, _, label = inside.partition(".")
    return prefix == "labels" and bool(_LABEL_NAME.fullmatch(label))


def load_rules(
    path: str | Path,
    *,
    templates: Mapping[str, str] | None = None,
    users: Mapping[str, User] | None = None,
) -> list[Rule]:
    """The rules of a YAML file, checked against the metric aliases (`templates`, the built-in ones
    when None) and, when `users` (the settings' allowlist) is given, against the users it names.

    Every problem in the file is reported in one `RuleFileError`, so a file is fixed in one go.
    """
    path = Path(path)
    data = _read_yaml(path)
    problems = [f"{key}: is not a known field (the file holds `rules:`)" for key in data if key != "rules"]
    raw = data.get("rules")
    if not isinstance(raw, list):
        problems.append("rules: is required" if raw is None else "rules: must be a list of rules")
        raise RuleFileError(_problems(path, problems))
    rules: list[tuple[int, Rule]] = []
    for index, item in enumerate(raw):
        try:
            rules.append((index, Rule.model_validate(item)))
        except ValidationError as exc:
            problems.extend(_explain(error, index, item) for error in exc.errors())
    problems.extend(_semantic_problems(rules, DEFAULT_METRICS if templates is None else templates, users))
    if problems:
        raise RuleFileError(_problems(path, problems))
    return [rule for _, rule in rules]


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read rule file {path}: {exc.strerror or type(exc).__name__}") from exc
    except UnicodeDecodeError as exc:
        raise RuleFileError(f"rule file {path} is not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        hint = ' (quote comparison operators: op: ">=")' if re.search(r"\bop\s*:", line) else ""
        raise RuleFileError(f"{path}: not valid YAML{where}: {exc.problem or 'syntax error'}{hint}") from exc
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{path}: not valid YAML") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RuleFileError(f"{path}: must be a mapping with a `rules:` list")
    return data


def _problems(path: Path, problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"{path}: {problems[0]}"
    shown = [f"  - {problem}" for problem in problems[:20]]
    more = [f"  (+{len(problems) - 20} more)"] if len(problems) > 20 else []
    return "\n".join([f"{path}: {len(problems)} problems:", *shown, *more])


def _explain(error: Mapping[str, Any], index: int, item: Any) -> str:
    """One pydantic error as "rule 'HighCpu': op: must be one of …" (values are never echoed)."""
    kind = error["type"]
    if kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not a known field"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    else:
        message = str(error["msg"])
    name = item.get("name") if isinstance(item, dict) else None
    where = f"rule {name!r}" if isinstance(name, str) and _NAME.fullmatch(name) else f"rule #{index + 1}"
    fields = ".".join(str(part) for part in error["loc"])
    return f"{where}: {fields}: {message}" if fields else f"{where}: {message}"


def _semantic_problems(
    rules: Sequence[tuple[int, Rule]], templates: Mapping[str, str], users: Mapping[str, User] | None
) -> Iterator[str]:
    """What a rule cannot be checked for alone: unique names, known aliases, known recipients."""
    first_seen: dict[str, int] = {}
    names = {user.name for user in users.values() if user.name} if users is not None else set()
    for index, rule in rules:
        where = f"rule {rule.name!r}"
        if rule.name in first_seen:
            yield f"{where} is defined twice (#{first_seen[rule.name] + 1} and #{index + 1}); names must be unique"
        first_seen.setdefault(rule.name, index)
        if rule.metric is not None:
            template = templates.get(rule.metric)
            if template is None:
                known = ", ".join(sorted(templates))
                yield f"{where}: metric: unknown alias {rule.metric[:40]!r} (known: {known})"
            elif rule.service is not None and "{service}" not in template:
                yield f"{where}: service: alias {rule.metric!r} does not take a service"
        if users is None:
            continue
        for recipient in rule.recipients:
            if recipient.startswith("+") and recipient not in users:
                yield f"{where}: recipients: {mask_number(recipient)} is not in users:"
            elif not recipient.startswith("+") and recipient not in names:
                yield f"{where}: recipients: no user is named {recipient!r}"


# --- evaluation -------------------------------------------------------------------------------------

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
            await _for_each(self.rules, evaluate, self._concurrency)
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
            self._failed(rule, _reason(exc))
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
            return f"{shown} {rule.op} {_figure(rule.threshold)}"
        return "no data" if math.isnan(value) else f"now {shown}"

    def fill(match: re.Match[str]) -> str:
        inside = match.group(1)
        if inside == "value":
            return shown
        return labels.get(inside.partition(".")[2], "")

    return _PLACEHOLDER.sub(fill, rule.summary)


def _figure(value: float) -> str:
    """A threshold or value as written: 50, 0.5, 1e-06 (exact enough to compare by eye)."""
    value = float(value)  # an evaluator may hand back an int
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _some(names: Sequence[str], shown: int = 3) -> str:
    """ "A, B, C and 997 more" (names in file order)."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _cooling(rule: Rule, series: _Series, now: float) -> bool:
    """Resolved less than `cooldown` ago: it may not fire yet."""
    return series.resolved_at is not None and now < series.resolved_at + rule.cooldown_s


def _datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _reason(error: MonitorError) -> str:
    """A monitor error's one line without the backend's name ("query rejected: parse error …"), numbers masked."""
    text = redact_numbers(describe(error))
    if isinstance(error, BackendError) and text.startswith(f"{error.backend}: "):
        return text[len(error.backend) + 2 :]
    return text


async def _for_each(rules: Sequence[Rule], call: Callable[[Rule], Awaitable[None]], concurrency: int) -> None:
    """`call` for every rule, at most `concurrency` at once: a few workers share one iterator, so
    1,000 rules cost 16 tasks, not 1,000."""
    remaining: Iterator[Rule] = iter(rules)

    async def worker() -> None:
        for rule in remaining:
            await call(rule)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(rules))):
            group.create_task(worker())


# --- the background loop ----------------------------------------------------------------------------


async def run_rules(engine: RuleEngine, interval_s: float, sink: Sink, stop: asyncio.Event) -> None:
    """Tick every `interval_s` until `stop` is set, handing each notification to `sink`.

    Ticks run one after another, never two at once; a tick that overruns its interval makes the loop
    skip the slots it missed rather than run a burst of catch-up ticks. This is a background task's
    outermost frame: a failed tick or delivery is logged (type and scrubbed message, no traceback)
    and the loop carries on.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not stop.is_set():
        try:
            notifications = await engine.tick()
        except Exception as exc:  # the outermost loop: one bad tick must not end alerting
            log.error("rules tick failed: %s", _brief(exc))
            notifications = []
        for notification in notifications:
            try:
                await sink(notification)
            except Exception as exc:  # the outermost loop: a failed delivery must not stop the others
                log.error("rule %s: notification not delivered: %s", notification.group_key, _brief(exc))
        now = loop.time()
        next_at += interval_s
        if next_at <= now:
            next_at += math.ceil((now - next_at) / interval_s + 1e-9) * interval_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(next_at - now):
                await stop.wait()


def _brief(error: BaseException) -> str:
    """An unexpected error for a log line: its type and a scrubbed, number-masked message."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_brief(inner) for inner in error.exceptions[:3])
    if isinstance(error, MonitorError):
        return redact_numbers(describe(error))
    text = scrub(redact_numbers(str(error)))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- `operator rules check` -------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleCheck:
    """One rule evaluated now, for `operator rules check`."""

    rule: Rule
    series: tuple[tuple[Mapping[str, str], float], ...] = ()
    error: str | None = None
    """Why the query failed ("query rejected: …"), or None."""

    @property
    def holding(self) -> int:
        return sum(1 for _, value in self.series if self.rule.holds(value))

    def line(self) -> str:
        rule = self.rule
        if self.error is not None:
            return f"{rule.name}: {self.error}"
        if not self.series:
            return f"{rule.name}: {rule.condition()}: no data (does not hold)"
        shown = [
            f"{_series_name(labels)} = {_figure(value) if math.isfinite(value) else number(value)}"
            f" ({'holds' if rule.holds(value) else 'does not hold'})"
            for labels, value in self.series[:MAX_SHOWN_SERIES]
        ]
        more = len(self.series) - MAX_SHOWN_SERIES
        tail = f" (+{more} more)" if more > 0 else ""
        count = f"{self.holding} of {len(self.series)} series hold"
        return f"{rule.name}: {rule.condition()}: {count}: {'; '.join(shown)}{tail}"


def _series_name(labels: Mapping[str, str]) -> str:
    """`name{job="x", service="y"}` as Prometheus writes a series; "value" for a bare scalar."""
    name = labels.get("__name__", "")
    rest = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()) if key != "__name__")
    return f"{name}{{{rest}}}" if rest else (name or "value")


async def check_results(
    rules: Sequence[Rule],
    evaluate: Evaluate,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[RuleCheck]:
    """Every rule evaluated once, in file order (the CLI can exit non-zero when any has an error)."""
    checks: dict[str, RuleCheck] = {}

    async def check(rule: Rule) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                answer = await evaluate(rule)
        except MonitorError as exc:
            checks[rule.name] = RuleCheck(rule, error=_reason(exc))
            return
        except TimeoutError:
            checks[rule.name] = RuleCheck(rule, error=f"no answer within {timeout_s:g} s")
            return
        checks[rule.name] = RuleCheck(rule, tuple(answer))

    await _for_each(rules, check, concurrency)
    return [checks[rule.name] for rule in rules]


async def check_rules(rules: Sequence[Rule], evaluate: Evaluate) -> str:
    """`operator rules check FILE`: one line per rule with what it evaluates to now, then a total."""
    return format_checks(await check_results(rules, evaluate))


def format_checks(checks: Sequence[RuleCheck]) -> str:
    """The text of `check_rules`, for a caller that also wants the results (to set an exit status)."""
    failed = sum(1 for check in checks if check.error is not None)
    holding = sum(1 for check in checks if check.error is None and check.holding)
    total = f"{len(checks)} rules: {holding} hold now, {failed} failed"
    return "\n".join([*(check.line() for check in checks), total])


def make_evaluator(prometheus: Monitor) -> Evaluate:
    """The engine's `evaluate` over a Prometheus monitor (best behind its `Guarded` breaker): the
    rule as an instant query, each sample as (labels, value)."""

    async def evaluate(rule: Rule) -> list[tuple[Mapping[str, str], float]]:
        result = await prometheus.query(rule.query())
        if not isinstance(result, MetricResult):
            raise BadBackendResponse(prometheus.display, "not a metric answer")
        return [(sample.labels, sample.value) for sample in result.samples]

    return evaluate
