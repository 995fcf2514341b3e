"""Entity extraction: a spaCy PhraseMatcher built from the catalog, plus shape rules.

No statistical model can be downloaded here, and none is needed: what the bot must find is a
closed vocabulary (services, metric words, systems, levels …), which the PhraseMatcher finds in one
pass in C, plus a few shapes (durations, list numbers, times of day), which the small scanner below
reads with their values. Overlaps resolve to the longest match, then the earliest, as an
EntityRuler would, without its pipeline overhead per text.

The shapes were spaCy `Matcher` patterns until issue 13: the Matcher cost a third of a parse (its
token predicates run per pattern per token), and the values needed Python afterwards anyway. The
matcher runs on a bare `Vocab`, not `spacy.blank("en")`: the words arrive already cut (see
`intents.tokens`), so the English tokenizer and its exception tables, 110 ms of start-up, went unused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from intents.catalog import (
    ALERT_STATE_WORDS,
    DB_METRIC_WORDS,
    LEVEL_WORDS,
    SERVICE_SUFFIXES,
    Catalog,
)
from intents.durations import COMPACT, NUMBER_WORDS, SINGULAR_UNITS, UNIT_SECONDS, clock_time, phrase_seconds
from intents.models import Entity
from intents.tokens import Token, tokenize

ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "top": 1,
}  # fmt: skip
UNTIL_WORDS = frozenset({"until", "till", "til", "untill"})
"""Words that end a silence at a time of day ("until 9am")."""

_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_LIST_NUMBER = re.compile(r"^\d{1,3}$")
_REF = re.compile(r"^#\d{1,3}$")
_REF_WORDS = frozenset({"alert", "alarm", "number", "num", "no", "nr", "item", "#", "page", "incident"})
_REF_NUMBER_WORDS = frozenset({"alert", "alarm", "number", "incident", "item"})
_ORDINAL_NOUNS = frozenset({"one", "alert", "alarm", "item"})
_NOT_COUNTS = frozenset({"a", "an", "half", "couple", "few", "several"})
_RANGE_WORDS = frozenset({"last", "past", "previous", "prior", "next", "lst", "lat", "las", "pst", "prev"})
"""Words before a lone unit that make it a span ("last hour"), with their common slips ("lst hour")."""
_SINGULAR = frozenset(SINGULAR_UNITS)
_HALF_UNITS = frozenset({"hour", "hr", "day", "minute"})
_QUARTERS = frozenset({"quarter", "quarters"})
_HTTP_ERRORS = frozenset({"500s", "502s", "503s", "504s"})
"""Server errors, not 500 seconds ("how many 500s on api")."""
_AND_A_HALF = ["and", "a", "half"]
_SEARCH_VERB_NEXT = frozenset({"for", "the", "logs", "log", "through", "thru", "all", "any", "my", "everything",
                               "across", "in", "our"})  # fmt: skip
_DETERMINERS = frozenset({"the", "all", "my", "our", "every", "everything", "across", "any", "these", "those"})
_SEARCHED_FOR = frozenset({"for", "through", "thru", "containing", "mentioning", "matching", "with", "about"})
_UP_WORDS = frozenset({"up", "down"})
_STATE_VERBS = frozenset(
    "is are still it its was were be been being go goes went gone going stay staying come came back all "
    "everything".split()
)

_SHAPE_STARTS = frozenset(
    {
        *_RANGE_WORDS,
        "half",
        "a",
        "an",
        "couple",
        "few",
        "several",
        *NUMBER_WORDS,
        *_REF_WORDS,
        *ORDINALS,
        *UNTIL_WORDS,
        *_QUARTERS,
        *SINGULAR_UNITS,
    }
)
"""Words a duration, list reference or time can start with (besides digits and "#")."""

Span = tuple[str, str, int, int]
"""(label, canonical value or "", first token, one past the last token)."""


class EntityRules:
    """A PhraseMatcher built from the catalog and the post-rules that give each entity its value.

    Build them with `for_catalog`: a catalog's rules are built once per process and shared by every
    parser over an equal catalog (the app, the CLI's tools, a test suite's hundreds of apps). Matching
    only reads them; the one thing it writes, the vocabulary's string store, grows the same way under
    one parser or many.
    """

    @staticmethod
    def for_catalog(catalog: Catalog) -> EntityRules:
        return _rules_for(catalog)

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.vocab = Vocab()
        self.phrases = PhraseMatcher(self.vocab)
        self._keys: dict[int, tuple[str, str]] = {}
        phrase_docs: dict[str, list[Doc]] = {}
        for pattern in patterns(catalog):
            words = [t.lower for t in tokenize(pattern["pattern"])]
            if words:
                key = f"{pattern['label']}|{pattern.get('id', '')}"
                phrase_docs.setdefault(key, []).append(Doc(self.vocab, words=words))
        for key, docs in phrase_docs.items():
            self.phrases.add(key, docs)
            label, _, value = key.partition("|")
            self._keys[self.vocab.strings[key]] = (label, value)
        self._alert_names = frozenset(name.lower() for name in catalog.alert_names)

    def spans(self, words: Sequence[str]) -> list[Span]:
        """Every match, overlaps resolved longest-first, then earliest, then by label and value."""
        keys = self._keys
        matches: list[Span] = [
            (*keys[m], start, end) for m, start, end in self.phrases(Doc(self.vocab, words=list(words)))
        ]
        matches += shape_spans(words)
        if len(matches) < 2:
            return matches
        taken: set[int] = set()
        chosen: list[Span] = []
        for span in sorted(matches, key=lambda m: (m[2] - m[3], m[2], m[0], m[1])):
            if taken.isdisjoint(range(span[2], span[3])):
                taken.update(range(span[2], span[3]))
                chosen.append(span)
        chosen.sort(key=lambda span: span[2])
        return chosen

    def extract(self, tokens: Sequence[Token], words: Sequence[str]) -> list[Entity]:
        """Entities of a tokenised text; `words` are the tokens' corrected lowercase forms."""
        if not words:
            return []
        spans = self.spans(words)
        services = [value for label, value, _, _ in spans if label == "SERVICE"]
        service_ends = {end for label, _, _, end in spans if label == "SERVICE"}
        found: list[Entity] = []
        quotes = any(t.quoted for t in tokens)
        for label, canonical, start, end in spans:
            if quotes and any(tokens[i].quoted for i in range(start, end)):
                continue
            span_words = words[start:end]
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
                value = int(canonical) if canonical else phrase_seconds(span_words)
            elif label == "ALERTREF":
                value = _list_number(span_words)
            if value is None:
                continue
            found.append(Entity(label, " ".join(t.text for t in tokens[start:end]), value, start, end))
        taken = {i for e in found for i in range(e.start, e.end)}
        found.extend(self._alert_names_in(tokens, taken))
        found.extend(self._schedules_in(tokens, words))
        found.sort(key=lambda e: e.start)
        return found

    def _alert_names_in(self, tokens: Sequence[Token], taken: set[int]) -> Iterable[Entity]:
        """Alert names the catalog does not know: CamelCase words (HighCPU, SSLCertExpiring)."""
        for index, token in enumerate(tokens):
            if index not in taken and token.kind == "word" and looks_like_alert_name(token.text):
                yield Entity("ALERTNAME", token.text, token.text, index, index + 1)

    def _schedules_in(self, tokens: Sequence[Token], words: Sequence[str]) -> Iterable[Entity]:
        """On-call schedules named in the text. They may overlap a service ("payments" is both): only
        `oncall` and `take` read them, so they shadow the other entities instead of replacing them."""
        if not self.catalog.schedules:
            return
        for index, word in enumerate(words):
            schedule = self.catalog.schedule(word)
            if schedule is not None and not tokens[index].quoted:
                yield Entity("SCHEDULE", tokens[index].text, schedule, index, index + 1)


def _is_search_verb(words: Sequence[str], start: int, end: int, services: Sequence[str]) -> bool:
    """ "search for timeouts", "search the logs", "search auth logs for x" use the verb, not the service."""
    following = words[end] if end < len(words) else ""
    if following in {"for", "through", "thru"} or following in _DETERMINERS:
        return True  # "search for …", "can you search the auth logs": a service is not followed by "the"
    if start == 0 and following in ("logs", "log") and not any(s != "search" for s in services):
        # "search logs 2h" is the search service's logs; "search logs for timeout" searches them
        return any(w in _SEARCHED_FOR for w in words[end + 1 :])
    return start == 0 and (following in _SEARCH_VERB_NEXT or any(s != "search" for s in services))


MAX_ALERT_NAME = 128
"""Longer words are not alert names (and would not fit an SMS reply anyway)."""
_CAMEL = re.compile(r"^[A-Za-z][A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*$|^[A-Z]{2,}[a-z][A-Za-z0-9]*$")


def looks_like_alert_name(text: str) -> bool:
    """Prometheus alert names are CamelCase: HighCPU, DiskFull, SSLCertExpiring, KubePodCrashLooping."""
    return len(text) <= MAX_ALERT_NAME and bool(_CAMEL.match(text)) and not COMPACT.match(text.lower())


def shape_spans(words: Sequence[str]) -> list[Span]:
    """Durations, list numbers and times of day: at each word, the longest shape starting there."""
    found: list[Span] = []
    for index, word in enumerate(words):
        if word not in _SHAPE_STARTS and not word[:1].isdigit() and word[:1] != "#":
            continue  # most words start no shape
        end = _duration_end(words, index, word)
        if end:
            found.append(_compound_duration(words, index, end))
        end = _ref_end(words, index, word)
        if end:
            found.append(("ALERTREF", "", index, end))
        if word in UNTIL_WORDS:
            time = clock_time(words[index + 1 : index + 3])
            if time is not None:
                found.append(("TIME", time[0], index, index + 1 + time[1]))
    return found


def _compound_duration(words: Sequence[str], start: int, end: int) -> Span:
    """A duration, extended by a smaller one right after it ("2 hours 30 minutes", "an hour and ten
    minutes"): the value is then their sum, written in the span (a single duration leaves it empty)."""
    after = end + 1 if end < len(words) and words[end] == "and" else end
    second_end = _duration_end(words, after, words[after]) if after < len(words) else 0
    if not second_end:
        return ("DURATION", "", start, end)
    first, second = phrase_seconds(words[start:end]), phrase_seconds(words[after:second_end])
    if first is None or second is None:
        return ("DURATION", "", start, end)
    unit = max((size for size in (60, 3600, 86400, 604800) if first % size == 0), default=1)
    if second >= unit:
        return ("DURATION", "", start, end)  # "1 hour 90 minutes": two durations, not one
    return ("DURATION", str(first + second), start, second_end)


def _is_count(word: str) -> bool:
    return bool(_NUMBER.match(word)) or word in NUMBER_WORDS


def _duration_end(words: Sequence[str], index: int, word: str) -> int:
    """One past the end of the duration starting at `index`, or 0.

    "30m", "6 hours", "two days", "a couple of hours", "last hour", "half an hour", "an hour and a
    half", "2 and a half hours", "1 hour and a half". Spelt-out numbers arrive composed ("forty
    five" is the word "45" by then).
    """
    following = words[index + 1] if index + 1 < len(words) else ""
    if word[:1].isdigit():
        if COMPACT.match(word) and word not in _HTTP_ERRORS:
            return index + 1
    elif word in _RANGE_WORDS:
        return index + 2 if following in _SINGULAR else 0
    elif word == "half":
        after = index + 2 if following in ("a", "an") else index + 1
        return after + 1 if after < len(words) and words[after] in _HALF_UNITS else 0
    elif word in ("a", "an") and following in ("couple", "few"):
        after = index + 3 if index + 2 < len(words) and words[index + 2] == "of" else index + 2
        return after + 1 if after < len(words) and words[after] in UNIT_SECONDS else 0
    elif word in ("couple", "few", "several") and following == "of":
        return index + 3 if index + 2 < len(words) and words[index + 2] in UNIT_SECONDS else 0
    elif word in _QUARTERS:
        return _quarter_end(words, index + 1)
    elif word in _SINGULAR and list(words[index + 1 : index + 4]) == _AND_A_HALF:
        return index + 4  # "hour and a half"
    if not _is_count(word):
        return 0
    if following in _QUARTERS:
        return _quarter_end(words, index + 2)  # "three quarters of an hour"
    if following in UNIT_SECONDS:
        end = index + 2
        return end + 3 if list(words[end : end + 3]) == _AND_A_HALF else end
    if (
        list(words[index + 1 : index + 4]) == _AND_A_HALF
        and index + 4 < len(words)
        and words[index + 4] in UNIT_SECONDS
    ):
        return index + 5
    return 0


def _quarter_end(words: Sequence[str], after: int) -> int:
    """The end of "[of] [a|an] hour" after "quarter(s)", or 0."""
    for optional in (("of",), ("a", "an")):
        if after < len(words) and words[after] in optional:
            after += 1
    return after + 1 if after < len(words) and words[after] in ("hour", "hr", "hours", "hrs") else 0


def _ref_end(words: Sequence[str], index: int, word: str) -> int:
    """One past the end of a list reference at `index` ("#2", "alert 3", "no. 2", "the second one"), or 0."""
    if _REF.match(word):
        return index + 1
    following = words[index + 1] if index + 1 < len(words) else ""
    if word in _REF_WORDS:
        after = index + 2 if following == "." else index + 1
        if after < len(words) and _LIST_NUMBER.match(words[after]):
            return after + 1
        if word in _REF_NUMBER_WORDS and following in NUMBER_WORDS and following not in _NOT_COUNTS:
            return index + 2  # "alert number two"
        return 0
    if word in ORDINALS and following in _ORDINAL_NOUNS:
        return index + 2
    return 0


def _list_number(words: Sequence[str]) -> str | None:
    for word in words:
        digits = word.lstrip("#")
        if digits.isdigit():
            return str(int(digits)) if int(digits) > 0 else None
        if word in ORDINALS:
            return str(ORDINALS[word])
        if word in NUMBER_WORDS and word not in _NOT_COUNTS:
            return str(int(NUMBER_WORDS[word]))
    return None


def patterns(catalog: Catalog) -> Iterable[dict[str, Any]]:
    """Every phrase pattern, generated from the catalog; the `id` carries the canonical value."""
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


def _service_names(service: str, aliases: Iterable[str]) -> Iterable[str]:
    """A service, its plural and possessive ("checkouts", "auths" from "auth's"), aliases, and each with a
    generic suffix ("payment-svc", "checkout hosts")."""
    plural = service + ("es" if service.endswith(("s", "ch", "sh", "x")) else "s")
    heads = list(dict.fromkeys([service, plural, f"{service}s"]))
    yield from heads
    yield from aliases
    for head in heads[:2]:
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


@functools.lru_cache(maxsize=8)
def _rules_for(catalog: Catalog) -> EntityRules:
    return EntityRules(catalog)
