"""Entity extraction: spaCy `blank("en")` with Matcher/PhraseMatcher rules built from the catalog.

No statistical model can be downloaded here, and none is needed: what the bot must find is a
closed vocabulary (services, metric words, systems, levels …) plus a few shapes (durations, list
numbers), which rules find exactly and explainably.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import spacy
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from intents.catalog import (
    ALERT_STATE_WORDS,
    DB_METRIC_WORDS,
    LEVEL_WORDS,
    SERVICE_SUFFIXES,
    Catalog,
)
from intents.durations import COMPACT, NUMBER_WORDS, SINGULAR_UNITS, UNIT_SECONDS, phrase_seconds
from intents.models import Entity
from intents.tokens import Token, tokenize

ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "top": 1,
}  # fmt: skip
_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_LIST_NUMBER = re.compile(r"^\d{1,3}$")
_REF = re.compile(r"^#\d{1,3}$")
SHAPE_DURATION, SHAPE_SMALL_INT, SHAPE_NUMBER, SHAPE_REF = "__duration__", "__int__", "__number__", "__ref__"
_REF_WORDS = ["alert", "alarm", "number", "num", "no", "nr", "item", "#", "page", "incident"]
_SEARCH_VERB_NEXT = frozenset({"for", "the", "logs", "log", "through", "thru", "all", "any", "my", "everything",
                               "across", "in", "our"})  # fmt: skip
_UP_WORDS = frozenset({"up", "down"})
_STATE_VERBS = frozenset(
    {
        "is",
        "are",
        "still",
        "it",
        "its",
        "was",
        "were",
        "be",
        "been",
        "being",
        "go",
        "goes",
        "went",
        "gone",
        "going",
        "stay",
        "staying",
        "come",
        "came",
        "back",
        "all",
        "everything",
    }
)


class _Tokenizer:
    """Makes spaCy cut pattern phrases exactly as `intents.tokens` cuts texts."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        return Doc(self.vocab, words=[t.lower for t in tokenize(text)])


class EntityRules:
    """spaCy matchers built from the catalog, and the post-rules that give each entity its value.

    A PhraseMatcher (on LOWER) finds the catalog's words and phrases, a Matcher the shapes
    (durations, list numbers); overlaps resolve to the longest match, then the earliest, as an
    EntityRuler would, without the pipeline overhead per text.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.nlp: Language = spacy.blank("en")
        self.nlp.tokenizer = _Tokenizer(self.nlp.vocab)
        self.phrases = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self.shapes = Matcher(self.nlp.vocab, validate=False)
        phrase_docs: dict[str, list[Doc]] = {}
        for pattern in patterns(catalog):
            key = f"{pattern['label']}|{pattern.get('id', '')}"
            if isinstance(pattern["pattern"], str):
                doc = self.nlp.make_doc(pattern["pattern"])
                if len(doc):
                    phrase_docs.setdefault(key, []).append(doc)
            else:
                self.shapes.add(key, [pattern["pattern"]])
        for key, docs in phrase_docs.items():
            self.phrases.add(key, docs)

    def doc(self, words: Sequence[str]) -> Doc:
        # Token shapes the patterns need (a compact duration, a number, a list number) go in LEMMA,
        # so the Matcher compares one hash per token instead of running regexes.
        return Doc(self.nlp.vocab, words=list(words), lemmas=[shape_of(w) for w in words])

    def spans(self, words: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """(label, catalog value, start, end) of every match, overlaps resolved longest-first."""
        doc = self.doc(words)
        strings = self.nlp.vocab.strings
        matches = {(strings[m], start, end) for m, start, end in self.shapes(doc)}
        matches |= {(strings[m], start, end) for m, start, end in self.phrases(doc)}
        taken: set[int] = set()
        chosen: list[tuple[str, str, int, int]] = []
        for key, start, end in sorted(matches, key=lambda m: (m[1] - m[2], m[1], m[0])):
            if taken.isdisjoint(range(start, end)):
                taken.update(range(start, end))
                label, _, value = key.partition("|")
                chosen.append((label, value, start, end))
        return sorted(chosen, key=lambda span: span[2])

    def extract(self, tokens: Sequence[Token], words: Sequence[str]) -> list[Entity]:
        """Entities of a tokenised text; `words` are the tokens' corrected lowercase forms."""
        if not words:
            return []
        spans = self.spans(words)
        services = [value for label, value, _, _ in spans if label == "SERVICE"]
        service_ends = {end for label, _, _, end in spans if label == "SERVICE"}
        found: list[Entity] = []
        for label, canonical, start, end in spans:
            if any(tokens[i].quoted for i in range(start, end)):
                continue
            span_words = list(words[start:end])
            value: str | int | None = canonical or " ".join(span_words)
            if label == "SERVICE" and value == "search" and _is_search_verb(words, start, end, services):
                continue
            if label == "METRIC" and len(span_words) == 1 and span_words[0] in _UP_WORDS:
                before = words[start - 1] if start else ""
                if not services or not (start in service_ends or before in _STATE_VERBS):
                    continue  # "pull up cpu", "slow down": a phrasal verb, not "is it up?"
            if label == "ALERTNAME":
                value = "".join(t.text for t in tokens[start:end])
            elif label == "DURATION":
                value = phrase_seconds(span_words)
            elif label == "ALERTREF":
                value = _list_number(span_words)
            if value is None:
                continue
            found.append(Entity(label, " ".join(t.text for t in tokens[start:end]), value, start, end))
        found.extend(self._alert_names_in(tokens, {i for e in found for i in range(e.start, e.end)}))
        return sorted(found, key=lambda e: e.start)

    def _alert_names_in(self, tokens: Sequence[Token], taken: set[int]) -> Iterable[Entity]:
        """Alert names the catalog does not know: CamelCase words (HighCPU, SSLCertExpiring)."""
        for index, token in enumerate(tokens):
            if index not in taken and token.kind == "word" and looks_like_alert_name(token.text):
                yield Entity("ALERTNAME", token.text, token.text, index, index + 1)


def _is_search_verb(words: Sequence[str], start: int, end: int, services: Sequence[str]) -> bool:
    """ "search for timeouts", "search the logs", "search auth logs for x" use the verb, not the service."""
    following = words[end] if end < len(words) else ""
    if following in {"for", "through", "thru"}:
        return True
    return start == 0 and (following in _SEARCH_VERB_NEXT or any(s != "search" for s in services))


MAX_ALERT_NAME = 128
"""Longer words are not alert names (and would not fit an SMS reply anyway)."""
_CAMEL = re.compile(r"^[A-Za-z][A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*$|^[A-Z]{2,}[a-z][A-Za-z0-9]*$")


def looks_like_alert_name(text: str) -> bool:
    """Prometheus alert names are CamelCase: HighCPU, DiskFull, SSLCertExpiring, KubePodCrashLooping."""
    return len(text) <= MAX_ALERT_NAME and bool(_CAMEL.match(text)) and not COMPACT.match(text.lower())


def shape_of(word: str) -> str:
    """The pattern class of a word: a compact duration, a small integer, a number, a list reference."""
    if _LIST_NUMBER.match(word):
        return SHAPE_SMALL_INT
    if _NUMBER.match(word):
        return SHAPE_NUMBER
    if _REF.match(word):
        return SHAPE_REF
    if word[:1].isdigit() and COMPACT.match(word):
        return SHAPE_DURATION
    return word


def _list_number(words: Sequence[str]) -> str | None:
    for word in words:
        digits = word.lstrip("#")
        if digits.isdigit():
            return str(int(digits)) if int(digits) > 0 else None
        if word in ORDINALS:
            return str(ORDINALS[word])
        if word in NUMBER_WORDS and word not in {"a", "an", "half", "couple", "few", "several"}:
            return str(int(NUMBER_WORDS[word]))
    return None


def patterns(catalog: Catalog) -> Iterable[dict[str, Any]]:
    """Every EntityRuler pattern, generated from the catalog; the `id` carries the canonical value."""
    for service in catalog.services:
        for name in _service_names(service, catalog.service_aliases.get(service, ())):
            yield {"label": "SERVICE", "pattern": name, "id": service}
    for alias, words in catalog.metrics.items():
        for phrase in _variants(words):
            yield {"label": "METRIC", "pattern": phrase, "id": alias}
    for system, words in catalog.systems.items():
        for phrase in _variants(words):
            yield {"label": "SYSTEM", "pattern": phrase, "id": system}
    for table, label in ((LEVEL_WORDS, "LEVEL"), (DB_METRIC_WORDS, "DBMETRIC"), (ALERT_STATE_WORDS, "STATE")):
        for value, words in table.items():
            for phrase in _variants(words):
                yield {"label": label, "pattern": phrase, "id": value}
    for name in catalog.alert_names:
        yield {"label": "ALERTNAME", "pattern": name.lower()}  # the value is the name as typed
    yield from _duration_patterns()
    yield from _alert_ref_patterns()


def _service_names(service: str, aliases: Iterable[str]) -> Iterable[str]:
    plural = service + ("es" if service.endswith(("s", "ch", "sh", "x")) else "s")
    heads = [service, plural]
    yield from heads
    yield from aliases
    for head in heads:
        for suffix in SERVICE_SUFFIXES:
            yield f"{head} {suffix}"
            yield f"{head}-{suffix}"
            yield f"{head}_{suffix}"
            yield f"{head}{suffix}"


def _variants(phrases: Iterable[str]) -> Iterable[str]:
    """Each phrase as typed, plus hyphen and underscore joins of two-word phrases ("error-rate")."""
    seen: set[str] = set()
    for phrase in phrases:
        forms = [phrase]
        parts = phrase.split()
        if len(parts) == 2 and all(p.isalnum() for p in parts):
            forms += ["-".join(parts), "_".join(parts)]
        for form in forms:
            if form not in seen:
                seen.add(form)
                yield form


def _duration_patterns() -> Iterable[dict[str, Any]]:
    units = sorted(UNIT_SECONDS)
    numbers = sorted(NUMBER_WORDS)
    number: dict[str, Any] = {"LEMMA": {"IN": [SHAPE_SMALL_INT, SHAPE_NUMBER]}}
    unit: dict[str, Any] = {"LOWER": {"IN": units}}
    half = [{"LOWER": "and"}, {"LOWER": "a"}, {"LOWER": "half"}]
    half_unit: dict[str, Any] = {"LOWER": {"IN": ["hour", "hr", "day", "minute"]}}
    shapes: list[list[dict[str, Any]]] = [
        [{"LEMMA": SHAPE_DURATION}],
        [number, unit],
        [{"LOWER": {"IN": numbers}}, unit],
        [{"LOWER": {"IN": ["a", "an"]}}, {"LOWER": {"IN": ["couple", "few"]}}, {"LOWER": "of", "OP": "?"}, unit],
        [{"LOWER": {"IN": ["couple", "few", "several"]}}, {"LOWER": "of"}, unit],
        [{"LOWER": {"IN": ["last", "past", "previous", "prior"]}}, {"LOWER": {"IN": list(SINGULAR_UNITS)}}],
        [{"LOWER": "half"}, {"LOWER": {"IN": ["a", "an"]}, "OP": "?"}, half_unit],
        [{"LOWER": {"IN": ["a", "an", "one"]}}, unit, *half],
        [number, unit, *half],
        [number, *half, unit],
        [{"LOWER": {"IN": numbers}}, *half, unit],
    ]  # fmt: skip
    for shape in shapes:
        yield {"label": "DURATION", "pattern": shape}


def _alert_ref_patterns() -> Iterable[dict[str, Any]]:
    list_number: dict[str, Any] = {"LEMMA": SHAPE_SMALL_INT}
    yield {"label": "ALERTREF", "pattern": [{"LEMMA": SHAPE_REF}]}
    yield {"label": "ALERTREF", "pattern": [{"LOWER": {"IN": _REF_WORDS}}, {"LOWER": ".", "OP": "?"}, list_number]}
    yield {
        "label": "ALERTREF",
        "pattern": [{"LOWER": {"IN": list(ORDINALS)}}, {"LOWER": {"IN": ["one", "alert", "alarm", "item"]}}],
    }  # noqa: E501
    yield {"label": "ALERTREF", "pattern": [{"LOWER": {"IN": ["alert", "alarm", "number"]}},
                                            {"LOWER": {"IN": ["one", "two", "three", "four", "five"]}}]}  # fmt: skip
