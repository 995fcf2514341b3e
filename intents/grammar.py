"""The keyword grammar (`grammar.yaml`) and the scorer that ranks intents with it.

Keeping the words and weights as data lets the team tune the bot from the REPL without touching
code; this module only knows how to add them up.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import yaml

OUT_OF_SCOPE = "_outofscope"
"""The pseudo-intent for requests Operator does not perform ("restart auth"): they are `unknown`."""
SMALLTALK = "_smalltalk"
"""The pseudo-intent for greetings, thanks and chat: `unknown` unless a real intent is also present."""
PSEUDO_INTENTS = frozenset({OUT_OF_SCOPE, SMALLTALK})

Phrase = str
"""A phrase as its words joined by single spaces, padded with one space each side for matching."""


@dataclass(frozen=True)
class IntentRules:
    """The scoring rules of one intent, as written in the YAML."""

    name: str
    commands: frozenset[str] = frozenset()
    words: Mapping[str, float] = field(default_factory=dict)
    phrases: Mapping[Phrase, float] = field(default_factory=dict)
    solo: frozenset[str] = frozenset()
    features: Mapping[str, float] = field(default_factory=dict)
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Score:
    """One intent's total for one text, and what contributed to it (shown by the REPL)."""

    intent: str
    total: float
    explicit: bool
    """The text names this command outright ("logs", "mute", "sign me up"), not just its slots."""
    hits: tuple[tuple[str, float], ...]
    """What added to the total, with its weight."""


@dataclass(frozen=True)
class Grammar:
    command_weight: float
    lead_weight: float
    solo_weight: float
    min_score: float
    margin: float
    lexicon: Mapping[str, tuple[Phrase, ...]]
    intents: Mapping[str, IntentRules]
    shorthand: Mapping[str, str] = field(default_factory=dict)
    """Texting abbreviations -> what they stand for ("u" -> "you", "idk" -> "i dont know")."""
    lead_skip: frozenset[str] = frozenset()
    """Words skipped to find the verb a request starts with ("pls", "can", "you")."""

    @classmethod
    def from_yaml(cls, text: str) -> Grammar:
        data: dict[str, Any] = yaml.safe_load(text)
        _check_words(data)
        lexicon = {name: tuple(_phrase(p) for p in phrases) for name, phrases in data["lexicon"].items()}
        intents: dict[str, IntentRules] = {}
        for name, spec in data["intents"].items():
            spec = spec or {}
            intents[name] = IntentRules(
                name=name,
                commands=frozenset(str(w).lower() for w in spec.get("commands") or ()),
                words={str(w).lower(): float(v) for w, v in (spec.get("words") or {}).items()},
                phrases={_phrase(p): float(v) for p, v in (spec.get("phrases") or {}).items()},
                solo=frozenset(str(w).lower() for w in spec.get("solo") or ()),
                features={str(f): float(v) for f, v in (spec.get("features") or {}).items()},
                required=tuple(spec.get("required") or ()),
            )
        return cls(
            command_weight=float(data["command_weight"]),
            lead_weight=float(data.get("lead_weight", 0.0)),
            solo_weight=float(data["solo_weight"]),
            min_score=float(data["min_score"]),
            margin=float(data["margin"]),
            lexicon=lexicon,
            intents=intents,
            shorthand={str(k).lower(): str(v).lower() for k, v in (data.get("shorthand") or {}).items()},
            lead_skip=frozenset(str(w).lower() for w in data.get("lead_skip") or ()),
        )

    @classmethod
    def default(cls) -> Grammar:
        """The grammar shipped in the package (read on demand, never at import)."""
        return cls.from_yaml(resources.files(__package__).joinpath("grammar.yaml").read_text("utf-8"))

    def vocabulary(self) -> set[str]:
        """Every word the grammar knows, for the typo corrector."""
        words: set[str] = set(self.lead_skip)
        for rules in self.intents.values():
            words |= rules.commands | rules.solo | set(rules.words)
            for phrase in rules.phrases:
                words.update(phrase.split())
        for phrases in self.lexicon.values():
            for phrase in phrases:
                words.update(phrase.split())
        return words

    def command_words(self) -> set[str]:
        """Every word that names a command ("logs", "mute", "oncall"): what abbreviations expand to."""
        return {word for rules in self.intents.values() for word in rules.commands}

    def lead_word(self, words: Sequence[str]) -> str | None:
        """The first word of a request after greetings and politeness ("pls can u restart" -> restart)."""
        return next((w for w in words if w not in self.lead_skip), None)

    @cached_property
    def _index(self) -> dict[str, list[tuple[tuple[str, ...], str, Phrase]]]:
        """Every phrase (intent phrases and lexicon entries) by its first word, for one pass per text."""
        index: dict[str, list[tuple[tuple[str, ...], str, Phrase]]] = {}
        for rules in self.intents.values():
            for phrase in rules.phrases:
                words = tuple(phrase.split())
                index.setdefault(words[0], []).append((words, rules.name, phrase))
        for name, phrases in self.lexicon.items():
            for phrase in phrases:
                words = tuple(phrase.split())
                index.setdefault(words[0], []).append((words, f"lexicon:{name}", phrase))
        return index

    def _phrases_in(self, words: Sequence[str]) -> dict[str, set[Phrase]]:
        """Owner (intent name or "lexicon:CLASS") -> the phrases of it found in the text."""
        found: dict[str, set[Phrase]] = {}
        index = self._index
        for start, word in enumerate(words):
            for phrase_words, owner, phrase in index.get(word, ()):
                size = len(phrase_words)
                if size == 1 or tuple(words[start : start + size]) == phrase_words:
                    found.setdefault(owner, set()).add(phrase)
        return found

    def lexicon_features(self, words: Sequence[str]) -> set[str]:
        """The lexicon classes (HEALTHWORD, FOLLOWUP …) present in the text."""
        return {owner.removeprefix("lexicon:") for owner in self._phrases_in(words) if owner.startswith("lexicon:")}

    def has(self, lexicon_class: str, words: Sequence[str]) -> bool:
        return f"lexicon:{lexicon_class}" in self._phrases_in(words)

    def only(self, classes: Collection[str], words: Sequence[str]) -> bool:
        """True when the text is nothing but phrases of the given lexicon classes ("yes please")."""
        remaining = _haystack(words)
        phrases = sorted((p for c in classes for p in self.lexicon.get(c, ())), key=len, reverse=True)
        changed = True
        while changed and remaining.strip():
            changed = False
            for phrase in phrases:
                if phrase in remaining:
                    remaining = remaining.replace(phrase, " ")
                    changed = True
        return bool(words) and not remaining.strip()

    @cached_property
    def _word_index(self) -> dict[str, list[tuple[str, float, bool]]]:
        """word -> (intent, weight, names the command) for every command word and weighted word."""
        index: dict[str, list[tuple[str, float, bool]]] = {}
        for rules in self.intents.values():
            for word in rules.commands:
                index.setdefault(word, []).append((rules.name, self.command_weight, True))
            for word, weight in rules.words.items():
                index.setdefault(word, []).append((rules.name, weight, weight >= self.command_weight - 0.5))
        return index

    @cached_property
    def _features(self) -> dict[str, tuple[tuple[frozenset[str], str, float], ...]]:
        return {
            name: tuple((frozenset(f.split("+")), f, w) for f, w in rules.features.items())
            for name, rules in self.intents.items()
        }

    def score(self, words: Sequence[str], features: Collection[str]) -> list[Score]:
        """Every intent's score, best first (ties keep the YAML order)."""
        found = self._phrases_in(words)
        polite = found.get("lexicon:POLITE", set())
        content = [w for w in words if f" {w} " not in polite]
        solo_word = content[0] if len(content) == 1 else None
        lead = words[0] if words else None
        present = set(features)
        totals = dict.fromkeys(self.intents, 0.0)
        explicit = dict.fromkeys(self.intents, False)
        hits: dict[str, list[tuple[str, float]]] = {name: [] for name in self.intents}
        for word in set(words):
            for intent, weight, names_it in self._word_index.get(word, ()):
                totals[intent] += weight
                explicit[intent] = explicit[intent] or names_it
                hits[intent].append((word, weight))
        for owner, phrases in found.items():
            rules = self.intents.get(owner)
            if rules is None:
                continue
            for phrase in phrases:
                weight = rules.phrases[phrase]
                totals[owner] += weight
                explicit[owner] = explicit[owner] or weight >= self.command_weight - 0.5
                hits[owner].append((f"'{phrase.strip()}'", weight))
        for name, rules in self.intents.items():
            if lead is not None and lead in (name, name.rstrip("s")):
                totals[name] += self.lead_weight
                hits[name].append(("lead", self.lead_weight))
            if solo_word is not None and solo_word in rules.solo:
                totals[name] += self.solo_weight
                explicit[name] = True
                hits[name].append((f"solo {solo_word}", self.solo_weight))
            for parts, feature, weight in self._features[name]:
                if parts <= present:
                    totals[name] += weight
                    hits[name].append((feature, weight))
        scores = [Score(name, round(totals[name], 3), explicit[name], tuple(hits[name])) for name in self.intents]
        return sorted(scores, key=lambda s: -s.total)


def _check_words(data: Mapping[str, Any]) -> None:
    """Refuse YAML's implicit booleans and numbers: an unquoted `yes` or `no` would become True/False."""

    def check(value: object, where: str) -> None:
        if not isinstance(value, str):
            raise ValueError(f"grammar: {where}: {value!r} is not text; quote it")

    for name, phrases in data["lexicon"].items():
        for phrase in phrases:
            check(phrase, f"lexicon {name}")
    for short, long in (data.get("shorthand") or {}).items():
        check(short, "shorthand")
        check(long, "shorthand")
    for word in data.get("lead_skip") or ():
        check(word, "lead_skip")
    for name, spec in data["intents"].items():
        for key in ("commands", "solo"):
            for word in (spec or {}).get(key) or ():
                check(word, f"{name}.{key}")
        for key in ("words", "phrases", "features"):
            for word in (spec or {}).get(key) or {}:
                check(word, f"{name}.{key}")


def _phrase(text: object) -> Phrase:
    return f" {' '.join(str(text).lower().split())} "


def _haystack(words: Iterable[str]) -> str:
    return f" {' '.join(words)} "


def _has(haystack: str, phrase: Phrase) -> bool:
    return phrase in haystack
