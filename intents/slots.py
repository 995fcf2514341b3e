"""Fill an intent's slots from what the entity rules found in a free-form text.

One small function per intent family; each reads the same `Analysis` and returns only the slots
the text determines, so a follow-up can tell what is missing and take it from context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from intents.catalog import Catalog
from intents.entities import ORDINALS
from intents.models import Correction, Entity, Intent, SlotValue
from intents.stopwords import FILLER
from intents.strict import HELP_TOPICS
from intents.tokens import Token

Slots = dict[str, SlotValue]

_LIST_NUMBER = re.compile(r"^#?(\d{1,3})$")
_ALERT_WORD = re.compile(r"^[A-Za-z][\w.:-]{1,127}$")
_ALERT_VERBS = frozenset({"silence", "mute", "snooze", "shush", "hush", "quiet", "suppress", "ack", "acknowledge",
                          "acked", "acking", "ackd", "ak", "ackn", "silense", "shh", "quieten"})  # fmt: skip
_REFERENCES = frozenset({"it", "that", "this", "them", "one"})
_NOT_ALERT_NAMES = FILLER | {"alert", "alerts", "alarm", "alarms", "for", "until", "till", "til", "up", "down",
                             "please", "now", "asap", "pager", "page", "notification", "notifications"}  # fmt: skip
_ROUTE_WORDS = frozenset({"route", "routes", "endpoint", "endpoints", "upstream", "upstreams", "path"})
_GATEWAY_STATUS = frozenset({"status", "stats", "overview", "summary", "health", "numbers", "everything"})
_TERM_EXCLUDED = frozenset({"LEVEL", "SERVICE", "DURATION", "ALERTREF", "STATE"})


@dataclass(frozen=True)
class Analysis:
    """A text as the language rules see it."""

    tokens: tuple[Token, ...]
    words: tuple[str, ...]
    """Every token's corrected lowercase form (aligned with `tokens`)."""
    corrections: tuple[Correction, ...]
    entities: tuple[Entity, ...]
    content: tuple[str, ...] = ()
    """Unquoted words, corrected, shorthand spelt out, punctuation dropped: what the grammar scores."""

    def first(self, label: str) -> Entity | None:
        return next((e for e in self.entities if e.label == label), None)

    def labels(self) -> set[str]:
        return {e.label for e in self.entities}

    def covered(self, labels: frozenset[str] | None = None) -> set[int]:
        """Token indexes inside entities (of the given labels)."""
        return {i for e in self.entities if labels is None or e.label in labels for i in range(e.start, e.end)}


def fill(intent: Intent, analysis: Analysis, catalog: Catalog) -> Slots:
    """The slots `intent` takes from this text (only those the text determines)."""
    filler = _FILLERS.get(intent)
    return filler(analysis, catalog) if filler else {}


def _service_and_range(analysis: Analysis, slots: Slots, range_slot: str = "range_s") -> Slots:
    service = analysis.first("SERVICE")
    if service is not None:
        slots["service"] = service.value
    duration = analysis.first("DURATION")
    if duration is not None:
        slots[range_slot] = duration.value
    return slots


def _metrics(analysis: Analysis, catalog: Catalog) -> Slots:
    slots: Slots = {}
    metric = analysis.first("METRIC")
    level = analysis.first("LEVEL")
    errors = level is not None and level.value == "error" and "error_rate" in catalog.metrics
    if metric is not None:
        # "failing requests on api", "% of requests erroring": the error rate, not the request rate
        slots["metric"] = "error_rate" if metric.value == "requests" and errors else metric.value
    elif errors:
        slots["metric"] = "error_rate"  # "graph payment errors"
    return _service_and_range(analysis, slots)


def _logs(analysis: Analysis, catalog: Catalog) -> Slots:
    slots: Slots = {}
    level = analysis.first("LEVEL")
    if level is not None:
        slots["level"] = level.value
    _service_and_range(analysis, slots)
    slots["terms"] = terms(analysis)
    return slots


def terms(analysis: Analysis) -> tuple[str, ...]:
    """The content words of a log search, lowercase, in the user's order, without filler."""
    taken = analysis.covered(_TERM_EXCLUDED)
    found: list[str] = []
    for index, (token, word) in enumerate(zip(analysis.tokens, analysis.words, strict=True)):
        if index in taken or token.kind != "word" or word in FILLER:
            continue
        if not token.quoted and _is_key(analysis, index):
            continue
        if len(word) > 1 and not word.isdigit() or (word.isdigit() and len(word) >= 3):
            found.append(word)
    return tuple(dict.fromkeys(found))


def _is_key(analysis: Analysis, index: int) -> bool:
    """ "level" in "level=error" is syntax, not a search word."""
    following = analysis.tokens[index + 1].text if index + 1 < len(analysis.tokens) else ""
    return following == "="


def _health(analysis: Analysis, catalog: Catalog) -> Slots:
    system = analysis.first("SYSTEM")
    return {"system": system.value} if system is not None else {}


def _db(analysis: Analysis, catalog: Catalog) -> Slots:
    metric = analysis.first("DBMETRIC")
    if metric is not None:
        return {"metric": metric.value}
    proxy = analysis.first("METRIC")
    if proxy is not None and proxy.value in {"requests", "latency"}:
        return {"metric": "stats"}  # "db throughput", "db latency": pgBouncer's SHOW STATS
    return {}


def _gateway(analysis: Analysis, catalog: Catalog) -> Slots:
    words = analysis.words
    for token in analysis.tokens:
        if token.kind == "path":
            return {"endpoint": token.text}
    service = analysis.first("SERVICE")
    if service is not None:
        return {"endpoint": service.value}
    for index, word in enumerate(words):
        if word in _ROUTE_WORDS:
            for neighbour in (index - 1, index + 1):
                if 0 <= neighbour < len(words) and _is_name(analysis.tokens[neighbour], words[neighbour]):
                    return {"endpoint": words[neighbour]}
    if any(w in _GATEWAY_STATUS for w in analysis.content):
        return {"endpoint": "status"}
    return {}


def _is_name(token: Token, word: str) -> bool:
    return token.kind == "word" and word not in FILLER and word not in _ROUTE_WORDS and word.isidentifier()


def _alerts(analysis: Analysis, catalog: Catalog) -> Slots:
    state = analysis.first("STATE")
    return {"state": state.value} if state is not None else {}


def _silence(analysis: Analysis, catalog: Catalog) -> Slots:
    slots = _ack(analysis, catalog)
    duration = analysis.first("DURATION")
    if duration is not None:
        slots["duration_s"] = duration.value
    return slots


def _ack(analysis: Analysis, catalog: Catalog) -> Slots:
    alert = alert_reference(analysis)
    return {"alert": alert} if alert else {}


def alert_reference(analysis: Analysis) -> str | None:
    """Which alert a silence or ack means: a list number, a name, or the word after the verb."""
    ref = analysis.first("ALERTREF")
    if ref is not None:
        return str(ref.value)
    for index, word in enumerate(analysis.words):
        if word in {"alertname", "alert"} and _next_text(analysis, index) == "=" and index + 2 < len(analysis.tokens):
            return analysis.tokens[index + 2].text
    name = analysis.first("ALERTNAME")
    if name is not None:
        return str(name.value)
    in_duration = analysis.covered(frozenset({"DURATION"}))
    for index, token in enumerate(analysis.tokens):
        match = _LIST_NUMBER.match(token.text)
        if match and index not in in_duration and int(match.group(1)) > 0 and token.kind in ("word", "ref"):
            return str(int(match.group(1)))
        if token.lower in ORDINALS and token.lower != "top":
            return str(ORDINALS[token.lower])
    return _word_after_verb(analysis, in_duration | analysis.covered())


def _word_after_verb(analysis: Analysis, taken: set[int]) -> str | None:
    words = analysis.words
    for index, word in enumerate(words):
        if word not in _ALERT_VERBS:
            continue
        for following in range(index + 1, min(index + 4, len(words))):
            token = analysis.tokens[following]
            if following in taken or token.kind != "word":
                continue
            lower = words[following]
            if lower in _REFERENCES:
                return None
            if lower in _NOT_ALERT_NAMES:
                continue
            return token.text if _ALERT_WORD.match(token.text) else None
        return None
    return None


def _next_text(analysis: Analysis, index: int) -> str:
    return analysis.tokens[index + 1].text if index + 1 < len(analysis.tokens) else ""


def refers_back(analysis: Analysis) -> bool:
    """ "ack it", "silence that for 1h", "graph this": the object is whatever was last discussed."""
    return any(w in _REFERENCES - {"one"} for w in analysis.content)


def _help(analysis: Analysis, catalog: Catalog) -> Slots:
    for word in analysis.content:
        topic = HELP_TOPICS.get(word)
        if topic is not None and word not in {"help", "more", "start", "stop", "health", "status"}:
            return {"topic": topic}
    for word in analysis.content:  # weaker topic words only if nothing better was named
        if word in {"health", "status"}:
            return {"topic": word}
    return {}


def _confirm(analysis: Analysis, catalog: Catalog) -> Slots:
    for token in analysis.tokens:
        if token.kind == "word" and token.text.isdigit() and 3 <= len(token.text) <= 8:
            return {"code": token.text}
    return {}


_FILLERS: dict[Intent, Callable[[Analysis, Catalog], Slots]] = {
    Intent.METRICS: _metrics,
    Intent.GRAPH: _metrics,
    Intent.LOGS: _logs,
    Intent.HEALTH: _health,
    Intent.DB: _db,
    Intent.GATEWAY: _gateway,
    Intent.ALERTS: _alerts,
    Intent.SILENCE: _silence,
    Intent.ACK: _ack,
    Intent.HELP: _help,
    Intent.CONFIRM: _confirm,
}
