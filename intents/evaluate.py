"""Scoring a parser against case files (the contract's case format), for `operator intents test`.

Pure: the caller reads the files and runs the parser with per-user context; this module compares
outputs with expectations and totals them. A slot listed as null must be absent; slots a case does
not list are not judged; `terms` compare as sets of lowercase words; `alert` and `code` as text.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    user: str
    text: str
    intent: str
    slots: Mapping[str, Any]
    tags: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, line: str) -> Case:
        data = json.loads(line)
        expect = data["expect"]
        return cls(
            id=str(data["id"]),
            user=str(data.get("user", "")),
            text=str(data["text"]),
            intent=str(expect["intent"]),
            slots=dict(expect.get("slots") or {}),
            tags=tuple(data.get("tags") or ()),
        )


def read_cases(lines: Iterable[str]) -> list[Case]:
    return [Case.from_json(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Outcome:
    case: Case
    got: Mapping[str, Any]
    """The parser's output object (`Parse.to_json()`)."""
    wrong_slots: tuple[str, ...]

    @property
    def intent_ok(self) -> bool:
        return self.got.get("intent") == self.case.intent

    @property
    def slots_ok(self) -> bool:
        return not self.wrong_slots

    @property
    def ok(self) -> bool:
        return self.intent_ok and self.slots_ok


def judge(case: Case, got: Mapping[str, Any]) -> Outcome:
    slots = got.get("slots") or {}
    wrong = tuple(name for name, want in case.slots.items() if not slot_matches(name, want, slots))
    return Outcome(case, got, wrong)


def slot_matches(name: str, want: Any, slots: Mapping[str, Any]) -> bool:
    if want is None:
        return name not in slots
    if name not in slots:
        return False
    have = slots[name]
    if name == "terms":
        return {str(w).lower() for w in want} == {str(w).lower() for w in have}
    if name in ("alert", "code"):
        return str(want) == str(have)
    return bool(want == have)


CATEGORIES = ("strict", "free", "typo", "followup", "unknown", "adversarial")
"""The issue's categories of texts, by case tag; each has its own target."""
_CATEGORY_ALIASES = {"follow-up": "followup"}


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    def _share(self, count: int, of: int) -> float:
        return count / of if of else 1.0

    @property
    def intent_accuracy(self) -> float:
        return self._share(sum(o.intent_ok for o in self.outcomes), self.total)

    @property
    def slot_accuracy(self) -> float:
        """Share of expected slots (over all cases) that came out right."""
        expected = sum(len(o.case.slots) for o in self.outcomes)
        wrong = sum(len(o.wrong_slots) for o in self.outcomes)
        return self._share(expected - wrong, expected)

    @property
    def joint_accuracy(self) -> float:
        return self._share(sum(o.ok for o in self.outcomes), self.total)

    def per_intent(self) -> dict[str, tuple[int, int]]:
        """Expected intent -> (cases right in full, cases)."""
        table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for outcome in self.outcomes:
            row = table[outcome.case.intent]
            row[0] += outcome.ok
            row[1] += 1
        return {intent: (row[0], row[1]) for intent, row in sorted(table.items())}

    def per_tag(self, tags: Iterable[str] | None = None) -> dict[str, tuple[int, int]]:
        """Tag -> (cases right in full, cases), for the given tags (default: `CATEGORIES` present)."""
        wanted = tuple(tags) if tags is not None else CATEGORIES
        table = {tag: [0, 0] for tag in wanted}
        for outcome in self.outcomes:
            for tag in {_CATEGORY_ALIASES.get(t, t) for t in outcome.case.tags}:
                if tag in table:
                    table[tag][0] += outcome.ok
                    table[tag][1] += 1
        return {tag: (row[0], row[1]) for tag, row in table.items() if row[1]}

    def confusion(self) -> Counter[tuple[str, str]]:
        """(expected, got) intent pairs that differ, with counts."""
        return Counter((o.case.intent, str(o.got.get("intent"))) for o in self.outcomes if not o.intent_ok)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def render(self, show_failures: bool = False) -> str:
        lines = [
            f"cases            {self.total}",
            f"intent accuracy  {self.intent_accuracy:.1%}",
            f"slot accuracy    {self.slot_accuracy:.1%}",
            f"joint accuracy   {self.joint_accuracy:.1%}",
            "",
            "per intent (joint)",
        ]
        for intent, (right, count) in self.per_intent().items():
            lines.append(f"  {intent:<12} {right:>4}/{count:<4} {self._share(right, count):6.1%}")
        categories = self.per_tag()
        if categories:
            lines += ["", "per category (joint, by tag)"]
            for tag, (right, count) in categories.items():
                lines.append(f"  {tag:<12} {right:>4}/{count:<4} {self._share(right, count):6.1%}")
        confusion = self.confusion()
        lines += ["", "confusion (expected -> got)"]
        if not confusion:
            lines.append("  none")
        for (want, got), count in confusion.most_common():
            lines.append(f"  {want:<12} -> {got:<12} {count}")
        if show_failures:
            lines += ["", "failures"]
            for outcome in self.failures():
                output = outcome.got
                detail = f"got {output.get('intent')} {json.dumps(output.get('slots'), ensure_ascii=False)}"
                if outcome.intent_ok:
                    detail += f" (wrong: {', '.join(outcome.wrong_slots)})"
                lines.append(f"  {outcome.case.id}: {outcome.case.text[:70]!r}")
                lines.append(
                    f"      want {outcome.case.intent} {json.dumps(dict(outcome.case.slots), ensure_ascii=False)}"
                )
                lines.append(f"      {detail}")
        return "\n".join(lines)
