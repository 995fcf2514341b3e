"""Escalation policies and routes: which policy an alert follows, and whom each step reaches.

Routes are tried in order and the first whose `match` labels the alert carries wins; an alert no route
matches follows the policy named `default`, and without one it is broadcast as before (the notifier's
recipients). A step's target is a schedule's person on call at that moment (overrides included), a
user by name, or `all` (every subscribed user by their own preferences, which the service applies).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from bot.oncall.config import ALL, Route, Schedule, Step
from bot.oncall.schedules import Override, Rotation, holder, rotations

DEFAULT_POLICY = "default"


@dataclass(frozen=True)
class Person:
    """Someone a step reaches."""

    number: str
    name: str
    role: str
    via: str = ""
    """The schedule they were reached through, when they were ("payments"); "" for a named user."""


class UserBook(Mapping[str, Person]):
    """Users by name (casefolded), from `users:`."""

    def __init__(self, users: Mapping[str, object]) -> None:
        self._by_name: dict[str, Person] = {}
        self._by_number: dict[str, Person] = {}
        for number, user in users.items():
            name = str(getattr(user, "name", "") or "")
            person = Person(number, name or number[-4:].rjust(len(number), "*"), str(getattr(user, "role", "viewer")))
            self._by_number[number] = person
            if name:
                self._by_name[name.casefold()] = person

    def __getitem__(self, name: str) -> Person:
        return self._by_name[name.casefold()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def by_number(self, number: str) -> Person | None:
        return self._by_number.get(number)


@dataclass(frozen=True)
class Reach:
    """Whom one step reaches now: named people, and whether `all` is asked for as well."""

    people: tuple[Person, ...]
    everyone: bool = False
    missing: tuple[str, ...] = ()
    """Targets that name nobody reachable now (a member no longer in users:)."""


class Policies:
    """The configured policies, routes and rotations, and the users they name."""

    def __init__(
        self,
        schedules: Mapping[str, Schedule],
        escalation: Mapping[str, Sequence[Step]],
        routes: Sequence[Route],
        users: Mapping[str, object],
    ) -> None:
        self.rotations: dict[str, Rotation] = rotations(dict(schedules))
        self.escalation = {name: tuple(steps) for name, steps in escalation.items()}
        self.routes = tuple(routes)
        self.users = UserBook(users)

    @property
    def paging(self) -> bool:
        """Whether any alert can follow a policy (otherwise every alert is broadcast, as without on-call)."""
        return bool(self.escalation)

    def policy_for(self, labels: Mapping[str, str]) -> str | None:
        """The policy an alert with these labels follows, or None for the broadcast."""
        for route in self.routes:
            if route.matches(labels) and route.policy in self.escalation:
                return route.policy
        return DEFAULT_POLICY if DEFAULT_POLICY in self.escalation else None

    def steps(self, policy: str) -> tuple[Step, ...]:
        return self.escalation.get(policy, ())

    def reach(self, step: Step, moment: float, overrides: Mapping[str, Sequence[Override]]) -> Reach:
        """Whom `step` reaches at `moment`: each schedule's holder (with its overrides), each named user."""
        people: dict[str, Person] = {}
        missing: list[str] = []
        everyone = False
        for target in step.targets:
            if target == ALL:
                everyone = True
                continue
            rotation = self.rotations.get(target.lower())
            name = holder(rotation, overrides.get(rotation.name, ()), moment) if rotation else target
            person = self.users.get(name)
            if person is None:
                missing.append(target)
                continue
            if rotation is not None:
                person = Person(person.number, person.name, person.role, rotation.name)
            people.setdefault(person.number, person)
        return Reach(tuple(people.values()), everyone, tuple(missing))
