"""Fill an intent's slots from what the entity rules found in a free-form text.

One small function per intent family; each reads the same `Analysis` and returns only the slots
the text determines, so a follow-up can tell what is missing and take it from context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from intents.catalog import Catalog
from intents.durations import NUMBER_WORDS
from intents.entities import ORDINALS, UNTIL_WORDS
from intents.models import Correction, Entity, Intent, SlotValue
from intents.stopwords import FILLER
from intents.strict import HELP_TOPICS
from intents.tokens import Token

Slots = dict[str, SlotValue]

_LIST_NUMBER = re.compile(r"^#?(\d{1,3})$")
_ALERT_WORD = re.compile(r"^[A-Za-z][\w.:-]{1,127}$")
_ALERT_VERBS = frozenset({"silence", "mute", "snooze", "shush", "hush", "quiet", "suppress", "ack", "acknowledge",
                          "acked", "acking", "ackd", "ak", "ackn", "silense", "shh", "quieten", "escalate",
                          "bump"})  # fmt: skip
_REFERENCES = frozenset({"it", "that", "this", "them", "one"})
_NOT_ALERT_NAMES = FILLER | {"alert", "alerts", "alarm", "alarms", "for", "until", "till", "til", "up", "down",
                             "please", "now", "asap", "pager", "page", "notification", "notifications"}  # fmt: skip
_TARGETS = frozenset({"to", "towards", "onto"})
_ROUTE_WORDS = frozenset({"route", "routes", "endpoint", "endpoints", "upstream", "upstreams", "path"})
_GATEWAY_STATUS = frozenset({"status", "stats", "overview", "summary", "health", "numbers", "everything"})
_PEOPLE = frozenset({"team", "teams", "folks", "people", "guys", "squad", "crew", "devs"})
"""Words after a service that make it a group of people, not the thing asked about."""
_TERM_EXCLUDED = frozenset({"LEVEL", "SERVICE", "DURATION", "ALERTREF", "STATE"})
UNSURE = "?unsure"
"""A pseudo-slot a write command's filler sets when the text names its alert, duration or time in two
ways or in a way it cannot read: the parser then asks instead of acting (and drops the pseudo-slot)."""
_NOT_A_RANGE_AFTER = frozenset({"ago", "later", "earlier", "before", "back"})
"""A duration followed by these is a point in time ("an hour ago"), not the span asked about."""
_RANGE_BEFORE = frozenset({"last", "past", "previous", "prior", "over", "since", "within"})
_SINCE = frozenset({"since", "from", "starting", "after"})
_COUNT_WORDS = frozenset(NUMBER_WORDS) - {"a", "an", "half", "couple", "few", "several"}
_FRACTIONS = frozenset({"half", "halves", "third", "thirds", "quarter", "quarters", "fifth", "fifths"})
_WEAK_METRIC_WORDS = frozenset({"load", "slow", "slowness", "sluggish", "laggy", "lag", "speed", "how fast", "up",
                                "down", "hits", "calls per second", "traffic", "volume", "volumes", "storage",
                                "heap", "cores"})  # fmt: skip
"""Everyday words for a metric that give way to a metric named outright ("checkout is slow to load,
what's the latency?" asks for latency)."""
_SHIFT_END = frozenset({"shift", "rotation", "day", "week", "night", "tonight"})


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

    def service(self) -> Entity | None:
        """The service asked about: the first one that does not just name people ("the payments team says
        auth is off" asks about auth), else the first one."""
        services = [e for e in self.entities if e.label == "SERVICE"]
        asked = [e for e in services if e.end >= len(self.words) or self.words[e.end] not in _PEOPLE]
        return (asked or services)[0] if services else None

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
    service = analysis.service()
    if service is not None:
        slots["service"] = service.value
    spans = durations(analysis)
    if spans:
        asked = [d for d in spans if _before(analysis, d) in _RANGE_BEFORE]
        slots[range_slot] = (asked or spans)[0].value
    return slots


def durations(analysis: Analysis) -> list[Entity]:
    """The DURATION entities that are spans of time, not points in it ("we deployed an hour ago"; but
    "since an hour ago" is the last hour)."""
    return [
        d for d in analysis.entities
        if d.label == "DURATION" and (_after(analysis, d) not in _NOT_A_RANGE_AFTER or _before(analysis, d) in _SINCE)
    ]  # fmt: skip


def _before(analysis: Analysis, entity: Entity) -> str:
    index = entity.start - 1
    while index >= 0 and analysis.words[index] in {"the", "for"}:
        index -= 1
    return analysis.words[index] if index >= 0 else ""


def _after(analysis: Analysis, entity: Entity) -> str:
    return analysis.words[entity.end] if entity.end < len(analysis.words) else ""


def _metric(analysis: Analysis) -> Entity | None:
    """The metric asked about: the first named outright, else the first everyday word for one ("load"
    after "to" is the verb: "slow to load")."""
    found = [
        e for e in analysis.entities
        if e.label == "METRIC" and not (e.text.lower() == "load" and e.start and analysis.words[e.start - 1] == "to")
    ]  # fmt: skip
    strong = [e for e in found if e.text.lower() not in _WEAK_METRIC_WORDS]
    best = strong or found
    return best[0] if best else None


def _metrics(analysis: Analysis, catalog: Catalog) -> Slots:
    slots: Slots = {}
    metric = _metric(analysis)
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
    """The content words of a log search, lowercase, in the user's order, without filler.

    In a long text (a ramble) only the clauses that ask for logs give terms: "quick one before i board
    my flight, can you show me the warnings on inventory" searches for nothing, not for "board flight".
    """
    taken = analysis.covered(_TERM_EXCLUDED)
    asked = _asking_clauses(analysis)
    found: list[str] = []
    for index, (token, word) in enumerate(zip(analysis.tokens, analysis.words, strict=True)):
        if index in taken or token.kind != "word" or word in FILLER:
            continue
        if asked is not None and index not in asked and not token.quoted:
            continue
        if not token.quoted and _is_key(analysis, index):
            continue
        if len(word) > 1 and not word.isdigit() or (word.isdigit() and len(word) >= 3):
            found.append(word)
    return tuple(dict.fromkeys(found))


RAMBLE_WORDS = 15
"""Texts with at least this many words are read clause by clause for log terms."""
_CLAUSE_MARKS = frozenset({",", ".", "?", "!", ";", ":"})
_LOG_WORDS = frozenset({"logs", "log", "grep", "lines", "loglines", "containing", "mentioning", "matching"})


def _asking_clauses(analysis: Analysis) -> set[int] | None:
    """Token indexes of the clauses that ask for logs in a long text, or None to keep every clause.

    A clause asks for logs when it names them, a service or quoted words (strong), or else a level or a
    range (weak); the strong ones win, then the weak ones; a text with no such clause keeps everything.
    """
    if sum(1 for t in analysis.tokens if t.kind == "word") < RAMBLE_WORDS:
        return None
    clauses: list[range] = []
    start = 0
    for index, token in enumerate(analysis.tokens):
        if token.kind == "punct" and token.text in _CLAUSE_MARKS:
            clauses.append(range(start, index))
            start = index + 1
    clauses.append(range(start, len(analysis.tokens)))
    if len(clauses) < 2:
        return None
    strong_at = analysis.covered(frozenset({"SERVICE"})) | {
        i for i, (t, w) in enumerate(zip(analysis.tokens, analysis.words, strict=True)) if t.quoted or w in _LOG_WORDS
    }
    weak_at = analysis.covered(frozenset({"LEVEL", "DURATION"}))
    for evidence in (strong_at, weak_at):
        chosen = [clause for clause in clauses if evidence.intersection(clause)]
        if chosen:
            return {i for clause in chosen for i in clause}
    return None


def _is_key(analysis: Analysis, index: int) -> bool:
    """ "level" in "level=error" is syntax, not a search word."""
    following = analysis.tokens[index + 1].text if index + 1 < len(analysis.tokens) else ""
    return following == "="


def _health(analysis: Analysis, catalog: Catalog) -> Slots:
    system = analysis.first("SYSTEM")
    return {"system": system.value} if system is not None else {}


def _db(analysis: Analysis, catalog: Catalog) -> Slots:
    named = [e.value for e in analysis.entities if e.label == "DBMETRIC"]
    if named:
        # "a connection storm … who is connected, which clients": the clients named are the ask
        return {"metric": "clients" if "clients" in named else named[0]}
    proxy = analysis.first("METRIC")
    if proxy is not None and proxy.value in {"requests", "latency"}:
        return {"metric": "stats"}  # "db throughput", "db latency": pgBouncer's SHOW STATS
    return {}


def _gateway(analysis: Analysis, catalog: Catalog) -> Slots:
    words = analysis.words
    for token in analysis.tokens:
        if token.kind == "path":
            return {"endpoint": token.text}
    service = analysis.service()
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
    """The alert and either a duration or a time of day; anything read two ways marks the parse unsure."""
    slots = _ack(analysis, catalog)
    spans = durations(analysis)
    times = [e for e in analysis.entities if e.label == "TIME"]
    values = {d.value for d in spans}
    until_word = any(w in UNTIL_WORDS for w in analysis.words)
    if len(values) > 1 or (spans and times) or len({t.value for t in times}) > 1:
        slots[UNSURE] = "two different ends for the silence"
    elif spans and _loose_number(analysis, spans[0]):
        slots[UNSURE] = f"a number next to {spans[0].text!r} that does not read as part of it"
    elif until_word and not times:
        slots[UNSURE] = "an end time that does not read as a time of day (say 9am or 21:00)"
    if times:
        slots["until"] = str(times[0].value)
    elif spans:
        slots["duration_s"] = spans[0].value
    return slots


def _loose_number(analysis: Analysis, duration: Entity) -> bool:
    """A spelt-out number right before a duration that did not compose with it ("five forty minutes",
    "one twenty minutes"): the duration may have lost a part, so a write must ask."""
    before = duration.start - 1
    if before >= 0 and analysis.words[before] in _COUNT_WORDS:
        return True
    words = analysis.words
    return any(  # "two thirds of an hour": a fraction the rules did not read ("the third alert" is no fraction)
        words[i] in _FRACTIONS and (i == before or words[i + 1] == "of")
        for i in range(max(duration.start - 3, 0), duration.start)
    )


def _ack(analysis: Analysis, catalog: Catalog) -> Slots:
    alert, unsure = alert_reference(analysis)
    slots: Slots = {"alert": catalog.alert_name(alert)} if alert else {}
    if unsure:
        slots[UNSURE] = unsure
    return slots


def _take(analysis: Analysis, catalog: Catalog) -> Slots:
    """The schedule and how long; "till the end of my shift" is no duration at all (the override runs to
    the shift's end), any other end time is asked about: the parser cannot turn it into seconds."""
    slots = _oncall(analysis, catalog)
    spans = durations(analysis)
    if len({d.value for d in spans}) > 1:
        slots[UNSURE] = "two different lengths"
    elif spans and _loose_number(analysis, spans[0]):
        slots[UNSURE] = f"a number next to {spans[0].text!r} that does not read as part of it"
    elif any(e.label == "TIME" for e in analysis.entities):
        slots[UNSURE] = "an end time (say how long instead: take payments 4h)"
    if spans:
        slots["duration_s"] = spans[0].value
    return slots


def _oncall(analysis: Analysis, catalog: Catalog) -> Slots:
    """The schedule named, by its name or a service word that is its name's singular ("payment")."""
    names = list(dict.fromkeys(str(e.value) for e in analysis.entities if e.label == "SCHEDULE"))
    if not names:
        for entity in analysis.entities:
            schedule = catalog.schedule(str(entity.value)) if entity.label == "SERVICE" else None
            if schedule is not None:
                names.append(schedule)
    slots: Slots = {}
    if names:
        slots["schedule"] = names[0]
    if len(set(names)) > 1:
        slots[UNSURE] = "two schedules"
    return slots


def alert_reference(analysis: Analysis) -> tuple[str | None, str]:
    """Which alert a silence, ack or escalation means, and why it is unsure ("" when it is not).

    A list number, a name, `alert=…`, a bare number or ordinal, or the word after the verb. Two
    different alerts named in one text make it unsure: a write never picks one of them.
    """
    candidates: list[str] = []
    unreadable = ""
    for index, word in enumerate(analysis.words):
        if word in {"alertname", "alert"} and _next_text(analysis, index) == "=" and index + 2 < len(analysis.tokens):
            value = analysis.tokens[index + 2]
            if value.kind == "word" and (_ALERT_WORD.match(value.text) or value.text.isdigit()):
                candidates.append(value.text)
            else:
                unreadable = f"alert={value.text}… is no alert name"  # "ack alert=$(id)"
    for label in ("ALERTREF", "ALERTNAME"):
        candidates += [str(e.value) for e in analysis.entities if e.label == label]
    taken = analysis.covered(frozenset({"DURATION", "TIME", "ALERTREF"}))
    ordinals: list[str] = []  # "third page tonight" counts pages: an ordinal alone is only a fallback
    for index, token in enumerate(analysis.tokens):
        if index in taken:
            continue
        match = _LIST_NUMBER.match(token.text)
        if match and int(match.group(1)) > 0 and token.kind in ("word", "ref"):
            candidates.append(str(int(match.group(1))))
        elif token.lower in ORDINALS and token.lower != "top":
            ordinals.append(str(ORDINALS[token.lower]))
    candidates = candidates or ordinals[:1]
    distinct = list(dict.fromkeys(c.lower() for c in candidates))
    unsure = f"two alerts named ({', '.join(distinct[:3])})" if len(distinct) > 1 else unreadable
    if unreadable:
        return None, unsure
    if candidates:
        return candidates[0], unsure
    return _word_after_verb(analysis, taken | analysis.covered()), unsure


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
            if lower in _REFERENCES or lower in _TARGETS:
                return None  # "ack it"; "escalate to the SRE lead" names a person, not an alert
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
    Intent.ESCALATE: _ack,
    Intent.TAKE: _take,
    Intent.ONCALL: _oncall,
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
