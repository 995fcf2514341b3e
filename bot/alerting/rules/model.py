"""A rule file: its YAML read and checked, every problem named by file, rule and field (see the package's docstring)."""

from __future__ import annotations

import logging
import math
import operator
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.alerting.model import Notification, Severity
from bot.settings import DEFAULT_METRICS, User
from bot.sms.privacy import mask_number
from intents.durations import compact_seconds, format_duration
from monitors.base import MetricQuery
from monitors.keys import closest, keys_at

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

_NAME = re.compile(r"[A-Za-z0-9_:-]{1,128}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_USER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
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
        for match in PLACEHOLDER.finditer(value):
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
        text = f"{subject} {self.op} {figure(self.threshold)}"
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
    hint = {True: "did you mean rules?", False: "the file holds `rules:`"}
    problems = [
        f"{key}: is not a known field ({hint[bool(closest(str(key), ['rules']))]})" for key in data if key != "rules"
    ]
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


def _top_hint(key: str) -> str:
    return "did you mean rules?" if closest(key, ["rules"]) else "the file holds `rules:`"


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
        guess = closest(str(error["loc"][-1]), keys_at(Rule, tuple(error["loc"])[:-1]))
        message = "is not a known field" + (f" (did you mean {guess}?)" if guess else "")
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


def figure(value: float) -> str:
    """A threshold or value as written: 50, 0.5, 1e-06 (exact enough to compare by eye)."""
    value = float(value)  # an evaluator may hand back an int
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"
