"""The keyword grammar (`grammar.yaml`) and the scorer that ranks intents with it.

Keeping the words and weights as data lets the team tune the bot from the REPL without touching
code; this module only knows how to add them up.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, NamedTuple

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it: the grammar loads in a tenth of the time."""

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


class Score(NamedTuple):
    """One intent's total for one text, and what contributed to it (shown by the REPL).

    A named tuple rather than a dataclass: every text makes one per intent, and a frozen dataclass
    costs five times as much to build.
    """

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
        data: dict[str, Any] = yaml.load(text, Loader=_Loader)
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
        """The grammar shipped in the package (read on demand, never at import; once per process, as it
        is frozen and read only)."""
        return _shipped()

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

    def phrases(self, words: Sequence[str]) -> Mapping[str, set[Phrase]]:
        """Every phrase of the grammar found in the text, by owner; compute once per text and pass it to
        `lexicon_features` and `score`."""
        return self._phrases_in(words)

    def lexicon_features(self, words: Sequence[str], found: Mapping[str, set[Phrase]] | None = None) -> set[str]:
        """The lexicon classes (HEALTHWORD, FOLLOWUP …) present in the text."""
        found = self._phrases_in(words) if found is None else found
        return {owner.removeprefix("lexicon:") for owner in found if owner.startswith("lexicon:")}

    def has(self, lexicon_class: str, words: Sequence[str]) -> bool:
        return f"lexicon:{lexicon_class}" in self._phrases_in(words)

    @cached_property
    def _lexicon_words(self) -> dict[str, frozenset[str]]:
        """Lexicon class -> its one-word phrases, for `has` on a single word."""
        return {
            name: frozenset(p.strip() for p in phrases if " " not in p.strip())
            for name, phrases in self.lexicon.items()
        }

    def has_word(self, lexicon_class: str, word: str) -> bool:
        """`has(lexicon_class, [word])` without scanning the phrase index."""
        return word in self._lexicon_words.get(lexicon_class, frozenset())

    def _longest_first(self, classes: Collection[str]) -> tuple[Phrase, ...]:
        key = tuple(sorted(classes))
        cached = self._only_phrases.get(key)
        if cached is None:
            cached = tuple(sorted((p for c in key for p in self.lexicon.get(c, ())), key=len, reverse=True))
            self._only_phrases[key] = cached
        return cached

    @cached_property
    def _only_phrases(self) -> dict[tuple[str, ...], tuple[Phrase, ...]]:
        return {}

    def only(self, classes: Collection[str], words: Sequence[str]) -> bool:
        """True when the text is nothing but phrases of the given lexicon classes ("yes please")."""
        if not words:
            return False
        remaining = _haystack(words)
        phrases = self._longest_first(classes)
        changed = True
        while changed and remaining.strip():
            changed = False
            for phrase in phrases:
                if phrase in remaining:
                    remaining = remaining.replace(phrase, " ")
                    changed = True
        return not remaining.strip()

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
    def _feature_index(self) -> dict[str, list[tuple[str, frozenset[str], str, float]]]:
        """A feature's first part -> (intent, all its parts, the feature as written, weight)."""
        index: dict[str, list[tuple[str, frozenset[str], str, float]]] = {}
        for name, rules in self.intents.items():
            for feature, weight in rules.features.items():
                parts = feature.split("+")
                index.setdefault(parts[0], []).append((name, frozenset(parts), feature, weight))
        return index

    @cached_property
    def _lead_index(self) -> dict[str, tuple[str, ...]]:
        """A first word -> the intents it names ("logs …", "alert …" for alerts)."""
        index: dict[str, list[str]] = {}
        for name in self.intents:
            for word in dict.fromkeys((name, name.rstrip("s"))):
                index.setdefault(word, []).append(name)
        return {word: tuple(names) for word, names in index.items()}

    @cached_property
    def _zero_scores(self) -> dict[str, Score]:
        """The score of an intent the text says nothing for (immutable, so shared by every text)."""
        return {name: Score(name, 0.0, False, ()) for name in self.intents}

    @cached_property
    def _solo_index(self) -> dict[str, tuple[str, ...]]:
        index: dict[str, list[str]] = {}
        for name, rules in self.intents.items():
            for word in rules.solo:
                index.setdefault(word, []).append(name)
        return {word: tuple(names) for word, names in index.items()}

    def score(
        self, words: Sequence[str], features: Collection[str], found: Mapping[str, set[Phrase]] | None = None
    ) -> list[Score]:
        """Every intent's score, best first (ties keep the YAML order).

        Only what the text holds is visited (its words, phrases, leading word and features, each through
        an index); every intent still gets a `Score`, so callers see the whole table.
        """
        found = self._phrases_in(words) if found is None else found
        polite = found.get("lexicon:POLITE", set())
        content = [w for w in words if f" {w} " not in polite]
        solo_word = content[0] if len(content) == 1 else None
        totals: dict[str, float] = {}
        explicit: set[str] = set()
        hits: dict[str, list[tuple[str, float]]] = {}

        def add(intent: str, what: str, weight: float) -> None:
            totals[intent] = totals.get(intent, 0.0) + weight
            hits.setdefault(intent, []).append((what, weight))

        for word in dict.fromkeys(words):
            for intent, weight, names_it in self._word_index.get(word, ()):
                add(intent, word, weight)
                if names_it:
                    explicit.add(intent)
        strong = self.command_weight - 0.5
        for owner, phrases in found.items():
            rules = self.intents.get(owner)
            if rules is None:
                continue
            for phrase in phrases:
                weight = rules.phrases[phrase]
                add(owner, f"'{phrase.strip()}'", weight)
                if weight >= strong:
                    explicit.add(owner)
        if words:
            for intent in self._lead_index.get(words[0], ()):
                add(intent, "lead", self.lead_weight)
        if solo_word is not None:
            for intent in self._solo_index.get(solo_word, ()):
                add(intent, f"solo {solo_word}", self.solo_weight)
                explicit.add(intent)
        present = set(features)
        for feature in present:
            for intent, parts, written, weight in self._feature_index.get(feature, ()):
                if parts <= present:
                    add(intent, written, weight)
        zero = self._zero_scores
        scores = [
            Score(name, round(totals[name], 3), name in explicit, tuple(hits[name])) if name in totals else zero[name]
            for name in self.intents
        ]
        scores.sort(key=_by_total)
        return scores


def _by_total(score: Score) -> float:
    return -score.total


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


@functools.cache
def _shipped() -> Grammar:
    return Grammar.from_yaml(resources.files(__package__).joinpath("grammar.yaml").read_text("utf-8"))
