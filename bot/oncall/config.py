"""The on-call configuration as typed models: `schedules`, `escalation` and `routes` (COMMANDS.md).

    schedules:
      payments: {members: [alice, bob, carol], shift: 1w, handoff: "2026-01-05 09:00", timezone: Europe/Berlin}
    escalation:
      default:
        - {notify: payments, wait: 5m}
        - {call: payments, wait: 5m}
        - {notify: [carol, dave], wait: 10m}
        - {notify: all}
    routes:
      - {match: {team: payments}, policy: default}

Each model checks its own shape (a shift that is not a duration, a hand-off that is not a local date and
time, an unknown time zone, a step that both notifies and calls); `check_references` checks the names
between them and `users:` (a member who is not a user, a step naming nothing known, a route to a policy
that does not exist). Errors name the key at fault, never a phone number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from intents.durations import compact_seconds

ALL = "all"
"""The step target that means every subscribed user (each by their own alert preferences)."""
MIN_SHIFT_S = 3600
"""Shorter shifts are not rotations people keep, and a shift shorter than a DST jump could end before it
starts on the day the clocks change."""
DEFAULT_WAIT_S = 300


def duration_seconds(value: Any, what: str) -> int:
    """Seconds in "30s", "5m", "1h30m", "1w" or a plain number; ValueError naming `what` otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return round(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("0", "0s", "0m"):
            return 0
        seconds = compact_seconds(text)
        if seconds is not None:
            return seconds
    raise ValueError(f"{what} is not a duration (write it like 30s, 5m, 12h, 1d or 1w)")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc


class Schedule(BaseModel):
    """A rotation: `members` take turns, each for `shift`, the first from `handoff` (local time in
    `timezone`). Boundaries are kept on the local clock, so a daily hand-off at 09:00 stays at 09:00
    when daylight saving time starts or ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: tuple[str, ...] = Field(min_length=1)
    """User names from `users:`, in rotation order."""
    shift: int
    """Seconds each member holds the pager (from "12h", "1d", "1w"); at least an hour, whole minutes."""
    handoff: datetime
    """The start of members[0]'s first shift, on the local clock of `timezone` (naive)."""
    timezone: str = "UTC"

    @field_validator("members", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            names = [str(name).strip() for name in value]
            if any(not name for name in names):
                raise ValueError("a member name is empty")
            doubled = sorted({name for name in names if names.count(name) > 1})
            if doubled:
                raise ValueError(f"{', '.join(doubled)} listed twice")
            return names
        return value

    @field_validator("shift", mode="before")
    @classmethod
    def _shift(cls, value: Any) -> int:
        seconds = duration_seconds(value, "shift")
        if seconds < MIN_SHIFT_S:
            raise ValueError("shift must be at least 1h")
        if seconds % 60:
            raise ValueError("shift must be whole minutes")
        return seconds

    @field_validator("handoff", mode="before")
    @classmethod
    def _handoff(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"handoff {value!r} is not a local date and time like 2026-01-05 09:00") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _local_handoff(self) -> Schedule:
        if self.handoff.tzinfo is not None:  # a YAML timestamp with an offset: the same moment, on the local clock
            local = self.handoff.astimezone(zone(self.timezone)).replace(tzinfo=None)
            object.__setattr__(self, "handoff", local)
        return self


class Step(BaseModel):
    """One step of a policy: text (`notify`) or call (`call`) a schedule's person on call, named users, or
    `all`; then wait `wait` for an ack before the next step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notify: tuple[str, ...] | None = None
    call: tuple[str, ...] | None = None
    wait: int = DEFAULT_WAIT_S
    """Seconds to wait for an ack before the next step (from "30s", "5m"); 0 runs the next step at once."""

    @field_validator("notify", "call", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            names = [str(name).strip() for name in value]
            if not names or any(not name for name in names):
                raise ValueError("name a schedule, users, or all")
            if ALL in names and len(names) > 1:
                raise ValueError("'all' already means everyone; give it alone")
            return names
        return value

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, value: Any) -> int:
        return duration_seconds(value, "wait")

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if (self.notify is None) == (self.call is None):
            raise ValueError("a step either notifies or calls (give exactly one of notify, call)")
        return self

    @property
    def action(self) -> Literal["sms", "call"]:
        return "sms" if self.notify is not None else "call"

    @property
    def targets(self) -> tuple[str, ...]:
        return self.notify if self.notify is not None else self.call or ()


class Route(BaseModel):
    """Alerts whose labels have every `match` pair follow `policy` (the first matching route wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str] = Field(default_factory=dict)
    policy: str

    @field_validator("match", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        return value.strip().lower()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match.items())


def lower_keys(value: Any) -> Any:
    """Schedule and policy names as people text them: trimmed, lowercase (the parser's catalog is too)."""
    if isinstance(value, dict):
        return {str(key).strip().lower(): item for key, item in value.items()}
    return value


def user_names(names: Iterable[str]) -> dict[str, int]:
    """How many users carry each name (casefolded), so a name given twice is caught where it is used."""
    counts: dict[str, int] = {}
    for name in names:
        if name:
            counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    return counts


def _user_problem(name: str, users: Mapping[str, int]) -> str | None:
    count = users.get(name.casefold(), 0)
    if count == 0:
        known = ", ".join(sorted(users)) or "none"
        return f"{name!r} is not a user name in users: (known: {known})"
    if count > 1:
        return f"{name!r} is the name of {count} users; give them different names"
    return None


def check_members(schedules: Mapping[str, Schedule], users: Mapping[str, int]) -> None:
    """ValueError naming every schedule member who is not exactly one user."""
    problems = [
        f"{schedule}.members: {problem}"
        for schedule, spec in schedules.items()
        for member in spec.members
        if (problem := _user_problem(member, users))
    ]
    if problems:
        raise ValueError("; ".join(problems))


def check_steps(escalation: Mapping[str, list[Step]], schedules: Iterable[str], users: Mapping[str, int]) -> None:
    """ValueError naming every step target that is neither a schedule nor exactly one user, nor `all`."""
    known_schedules = set(schedules)
    problems = []
    for policy, steps in escalation.items():
        if not steps:
            problems.append(f"{policy}: a policy needs at least one step")
        for number, step in enumerate(steps, 1):
            for target in step.targets:
                where = f"{policy} step {number} ({step.action if step.action == 'call' else 'notify'})"
                if target == ALL:
                    continue
                is_schedule = target.lower() in known_schedules
                if is_schedule and users.get(target.casefold()):
                    problems.append(f"{where}: {target!r} is both a schedule and a user; rename one")
                elif not is_schedule and (problem := _user_problem(target, users)):
                    problems.append(f"{where}: {target!r} is neither a schedule nor a user"
                                    if users.get(target.casefold(), 0) == 0 else f"{where}: {problem}")  # fmt: skip
    if problems:
        raise ValueError("; ".join(problems))


def check_routes(routes: Iterable[Route], policies: Iterable[str]) -> None:
    known = set(policies)
    problems = [
        f"route {number}: no escalation policy named {route.policy!r} (known: {', '.join(sorted(known)) or 'none'})"
        for number, route in enumerate(routes, 1)
        if route.policy not in known
    ]
    if problems:
        raise ValueError("; ".join(problems))
