"""The strict syntax: `metrics cpu service=checkout range=1h`, `logs error payment 2h`, `ack 2`.

A text that is a well-formed strict command is taken literally and wins over every guess. Anything
not well-formed (an unknown key, an unconfigured service, filler words) returns None, and the
language rules get their turn; except that a read-only command led by its own word and a configured
alias keeps what is valid of its `key=value` parts and drops the rest (`metrics cpu service=$(curl x)`
is `metrics cpu`): the contract's answer to text injected after a valid alias, which must never become
raw PromQL. Write commands (silence, ack, take, escalate) never drop a part: a value they cannot read
sends the text to the language rules, which ask rather than guess.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from intents.catalog import Catalog
from intents.durations import clock_time, compact_seconds
from intents.models import Intent, Parse, SlotValue, Source
from intents.render import render
from intents.stopwords import FILLER

COMMANDS: dict[str, Intent] = {
    "help": Intent.HELP, "status": Intent.STATUS, "health": Intent.HEALTH, "metrics": Intent.METRICS,
    "metric": Intent.METRICS, "promql": Intent.METRICS, "logs": Intent.LOGS, "log": Intent.LOGS,
    "db": Intent.DB, "gateway": Intent.GATEWAY, "alerts": Intent.ALERTS, "silence": Intent.SILENCE,
    "ack": Intent.ACK, "acknowledge": Intent.ACK, "graph": Intent.GRAPH, "more": Intent.MORE,
    "subscribe": Intent.SUBSCRIBE, "unsubscribe": Intent.UNSUBSCRIBE, "reset": Intent.RESET,
    "confirm": Intent.CONFIRM, "y": Intent.CONFIRM, "yes": Intent.CONFIRM, "undo": Intent.UNDO,
    "unsilence": Intent.UNSILENCE, "oncall": Intent.ONCALL, "on-call": Intent.ONCALL, "take": Intent.TAKE,
    "escalate": Intent.ESCALATE,
}  # fmt: skip
"""Command words of the strict syntax, any case."""

HELP_TOPICS: dict[str, str] = {
    **{intent.value: intent.value for intent in Intent if intent not in (Intent.UNKNOWN, Intent.HELP)},
    "metric": "metrics", "log": "logs", "alert": "alerts", "mute": "silence", "snooze": "silence",
    "acknowledge": "ack", "chart": "graph", "plot": "graph", "graphs": "graph", "database": "db",
    "kong": "gateway", "health": "health", "stop": "unsubscribe", "start": "subscribe", "pager": "oncall",
    "schedule": "oncall", "schedules": "oncall", "escalation": "escalate", "override": "take",
}  # fmt: skip
"""Words that name a command as a help topic ("help mute" is help on silence)."""

_KEY_VALUE = re.compile(r"^([a-z_]+)=(.+)$", re.IGNORECASE)
_ALERT = re.compile(r"^#?\d{1,3}$|^[A-Za-z][\w.:-]{0,127}$")
_CODE = re.compile(r"^\d{3,8}$")
_TERM = re.compile(r"^[\w./:%-]+$")
_ENDPOINT = re.compile(r"^/?[\w./{}:-]{1,128}$")
_IDENTIFIER = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PAIRS = {")": "(", "]": "[", "}": "{"}
_NOT_ENDPOINTS = frozenset({"health", "healthy", "up", "down", "ok", "okay", "alive", "reachable", "responding"})
"""Words after "gateway" that ask about its health ("gateway health"), not about a route."""

Slots = dict[str, SlotValue]


Speller = Callable[[str], str | None]
"""A typo corrector for one word ("paymnet" -> payment), or None to leave it."""


def parse_strict(text: str, catalog: Catalog, spell: Speller | None = None) -> Parse | None:
    """The command if `text` is well-formed strict syntax, else None.

    `spell` corrects a `service=` value that is one typo off ("service=chekout"); without it such a
    value is invalid.
    """
    head, _, rest = text.strip().partition(" ")
    intent = COMMANDS.get(head.lower())
    if intent is None:
        return None
    slots = _PARSERS[intent](rest.strip(), _Lookup(catalog, spell))
    if slots is None:
        return None
    return Parse(intent, slots, render(intent, slots, catalog), 1.0, Source.STRICT)


class _Lookup:
    """The catalog as the strict parsers see it: lookups, plus the speller for service values."""

    def __init__(self, catalog: Catalog, spell: Speller | None) -> None:
        self.catalog = catalog
        self.spell = spell

    def lookup(self, kind: str, word: str) -> str | None:
        return self.catalog.lookup(kind, word)

    def service(self, word: str) -> str | None:
        found = self.catalog.lookup("service", word)
        if found is None and self.spell is not None and word.isalpha():
            corrected = self.spell(word.lower())
            found = self.catalog.lookup("service", corrected) if corrected else None
        return found


def _split(rest: str, keep_quotes: bool = False) -> tuple[dict[str, str], list[str]] | None:
    """key=value pairs and positional words; None on a repeated key or unbalanced quotes.

    With `keep_quotes`, a quoted positional keeps its quotes so the caller can tell `"error"` (a
    word to search for) from `error` (the level).
    """
    try:
        words = shlex.split(rest, posix=not keep_quotes)
    except ValueError:
        return None
    keyed: dict[str, str] = {}
    positional: list[str] = []
    for word in words:
        match = _KEY_VALUE.match(word)
        if match:
            key = match.group(1).lower()
            if key in keyed:
                return None
            keyed[key] = match.group(2)
        else:
            positional.append(word)
    return keyed, positional


def _none(rest: str, catalog: _Lookup) -> Slots | None:
    return {} if not rest else None


def _one(kind: str, key: str, slot: str) -> Callable[[str, _Lookup], Slots | None]:
    """A command with one optional argument looked up in the catalog (`health db`, `alerts firing`)."""

    def parse(rest: str, catalog: _Lookup) -> Slots | None:
        split = _split(rest)
        if split is None:
            return None
        keyed, positional = split
        if set(keyed) - {key} or len(positional) + len(keyed) > 1:
            return None
        word = keyed.get(key) or (positional[0] if positional else None)
        if word is None:
            return {}
        value = catalog.lookup(kind, word)
        return {slot: value} if value else None

    return parse


def _help(rest: str, catalog: _Lookup) -> Slots | None:
    if not rest:
        return {}
    topic = HELP_TOPICS.get(rest.lower())
    return {"topic": topic} if topic else None


def _gateway(rest: str, catalog: _Lookup) -> Slots | None:
    split = _split(rest)
    if split is None:
        return None
    keyed, positional = split
    if set(keyed) - {"endpoint"} or len(positional) + len(keyed) > 1:
        return None
    word = keyed.get("endpoint") or (positional[0] if positional else None)
    if word is None:
        return {}
    is_service = catalog.lookup("service", word) is not None
    if not _ENDPOINT.match(word) or (word.lower() in FILLER | _NOT_ENDPOINTS and not is_service):
        return None
    return {"endpoint": word if word.startswith("/") else word.lower()}


def _alert_command(intent: Intent) -> Callable[[str, _Lookup], Slots | None]:
    """`silence <alert> <duration>`, `silence <alert> until=09:00`, `ack <alert>`, `escalate <alert>`."""
    silence = intent is Intent.SILENCE

    def parse(rest: str, catalog: _Lookup) -> Slots | None:
        split = _split(rest)
        if split is None:
            return None
        keyed, positional = split
        allowed = {"alert", "duration", "until", "for"} if silence else {"alert"}
        if set(keyed) - allowed or ("duration" in keyed and "for" in keyed):
            return None
        alert = keyed.get("alert")
        duration: int | None = None
        if "duration" in keyed or "for" in keyed:
            duration = compact_seconds(keyed.get("duration") or keyed["for"])
            if duration is None:
                return None
        until: str | None = None
        if "until" in keyed:
            until = _clock(keyed["until"].lower().split())
            if until is None:
                return None
        index = 0
        while index < len(positional):
            word = positional[index]
            lower = word.lower()
            seconds = compact_seconds(word) if silence else None
            if seconds is not None and duration is None:
                duration = seconds
            elif silence and lower in _UNTIL and until is None:
                time = clock_time([w.lower() for w in positional[index + 1 : index + 3]])
                if time is None:
                    return None
                until, index = time[0], index + time[1]
            elif alert is None and _ALERT.match(word) and lower not in FILLER:
                alert = word
            else:
                return None
            index += 1
        if alert is None or not _ALERT.match(alert):
            return None
        if silence and (duration is None) == (until is None):
            return None  # one of them, never both (the contract)
        slots: Slots = {"alert": catalog.catalog.alert_name(alert.lstrip("#"))}
        if duration is not None:
            slots["duration_s"] = duration
        if until is not None:
            slots["until"] = until
        return slots

    return parse


_UNTIL = frozenset({"until", "till", "til"})


def _clock(words: list[str]) -> str | None:
    time = clock_time(words)
    return time[0] if time is not None and time[1] == len(words) else None


_SCHEDULE_KEYS = frozenset({"schedule", "rotation", "sched", "team", "pager", "name"})
_DURATION_KEYS = frozenset({"duration", "for", "time", "length", "range"})


def _schedule_command(takes_duration: bool) -> Callable[[str, _Lookup], Slots | None]:
    """`oncall [schedule]` and `take [schedule] [duration]`; `schedule=` and `duration=` (or `rotation=`,
    `for=` …) as keys. A schedule that is not configured, or a duration that does not read, is not
    strict: `take` is a write, so it goes to the language rules, which ask."""

    def parse(rest: str, catalog: _Lookup) -> Slots | None:
        split = _split(rest)
        if split is None:
            return None
        keyed, positional = split
        schedule_keys = set(keyed) & _SCHEDULE_KEYS
        duration_keys = set(keyed) & _DURATION_KEYS if takes_duration else set()
        if set(keyed) - schedule_keys - duration_keys or len(schedule_keys) > 1 or len(duration_keys) > 1:
            return None
        slots: Slots = {}
        for key in schedule_keys:
            schedule = catalog.catalog.schedule(keyed[key])
            if schedule is None:
                return None
            slots["schedule"] = schedule
        for key in duration_keys:
            seconds = compact_seconds(keyed[key])
            if seconds is None:
                return None
            slots["duration_s"] = seconds
        for word in positional:
            schedule = catalog.catalog.schedule(word)
            seconds = compact_seconds(word) if takes_duration else None
            if schedule is not None and "schedule" not in slots:
                slots["schedule"] = schedule
            elif seconds is not None and "duration_s" not in slots:
                slots["duration_s"] = seconds
            else:
                return None
        return slots

    return parse


_SILENCE_ID = re.compile(r"^[0-9a-f]{8}(?:-?[0-9a-f]{4}){0,3}(?:-?[0-9a-f]{12})?$", re.IGNORECASE)


def _unsilence(rest: str, catalog: _Lookup) -> Slots | None:
    """`unsilence <id>`: only with something shaped like a silence id; "unsilence" alone is an undo."""
    return {"id": rest.lower()} if _SILENCE_ID.match(rest) else None


def _confirm(rest: str, catalog: _Lookup) -> Slots | None:
    if not rest:
        return {}
    return {"code": rest} if _CODE.match(rest) else None


def _logs(rest: str, catalog: _Lookup) -> Slots | None:
    split = _split(rest, keep_quotes=True)
    if split is None:
        return None
    keyed, positional = split
    if set(keyed) - {"service", "level", "range", "terms"}:
        return None
    slots: Slots = {}
    _keyed_common(keyed, slots, catalog)
    if "level" in keyed:
        level = catalog.lookup("level", keyed["level"])
        if level is not None:  # an invalid value is dropped, like an invalid service or range
            slots["level"] = level
    terms: list[str] = [t for t in _unquote(keyed.get("terms", "")).lower().replace(",", " ").split() if t]
    for word in positional:
        lower = word.lower()
        if len(lower) >= 2 and lower[0] == lower[-1] and lower[0] in "\"'":  # a quoted phrase: its words are terms
            terms += [w for w in lower[1:-1].split() if w not in FILLER]
            continue
        seconds = compact_seconds(lower)
        level = catalog.lookup("level", lower)
        service = catalog.lookup("service", lower)
        if seconds is not None and "range_s" not in slots:
            slots["range_s"] = seconds
        elif level is not None and "level" not in slots:
            slots["level"] = level
        elif service is not None and "service" not in slots:
            slots["service"] = service
        elif _TERM.match(lower) and lower not in FILLER:
            terms.append(lower)
        else:
            return None
    if not all(_TERM.match(t) for t in terms):
        return None
    slots["terms"] = tuple(dict.fromkeys(terms))
    return slots


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value


def _metric_command(rest: str, catalog: _Lookup) -> Slots | None:
    """`metrics <alias|PromQL> [service] [range]`; see the contract's rule on raw PromQL."""
    words = rest.split(" ") if rest else []
    if len(words) > 1 and catalog.lookup("metric", words[0]) and any(_KEY_VALUE.match(w) for w in words[1:]):
        return _alias_with_slots(words, catalog)
    keyed: dict[str, str] = {}
    while words and (match := _KEY_VALUE.match(words[-1])) and match.group(1).lower() in {"service", "range", "metric"}:
        key = match.group(1).lower()
        if key in keyed:
            return None
        keyed[key] = match.group(2)
        words.pop()
    positional: dict[str, str] = {}
    while len(words) > 1 and len(positional) < 2:
        last = words[-1].lower()
        if compact_seconds(last) is not None and "range" not in positional:
            positional["range"] = last
        elif catalog.lookup("service", last) and "service" not in positional:
            positional["service"] = last
        else:
            break
        words.pop()
    for key, value in positional.items():
        if key in keyed:
            return None
        keyed[key] = value
    expression = " ".join(words) or keyed.pop("metric", "")
    if "metric" in keyed or not expression:
        return None
    slots: Slots = {}
    metric = _metric(expression, catalog)
    if metric is None:
        leading = re.match(r"[A-Za-z_]+", expression)
        alias = catalog.lookup("metric", leading.group()) if leading else None
        if alias is None or balanced(expression):
            return None
        return {"metric": alias}  # unbalanced: keep the alias, drop the rest (contract)
    _keyed_common(keyed, slots, catalog)
    slots["metric"] = metric
    return slots


def _alias_with_slots(words: list[str], catalog: _Lookup) -> Slots:
    """`metrics cpu service=$(curl x) range=1h`: a configured alias first, then `key=value` parts. The
    parts that read are slots; everything else (an invalid value, an unknown key, stray words) is
    dropped. Balanced brackets after an alias never make the text PromQL."""
    slots: Slots = {"metric": catalog.lookup("metric", words[0]) or words[0]}
    keyed: dict[str, str] = {}
    for word in words[1:]:
        match = _KEY_VALUE.match(word)
        if match:
            keyed.setdefault(match.group(1).lower(), match.group(2))
        elif catalog.service(word) and "service" not in keyed:
            keyed["service"] = word
        elif compact_seconds(word) is not None and "range" not in keyed:
            keyed["range"] = word
    _keyed_common(keyed, slots, catalog)
    return slots


def _metric(expression: str, catalog: _Lookup) -> str | None:
    alias = catalog.lookup("metric", expression) if " " not in expression else None
    if alias is not None:
        return alias
    if not balanced(expression):
        return None
    if any(c in expression for c in "({[") or (_IDENTIFIER.match(expression) and any(c in expression for c in "_:")):
        return expression
    return None


def _keyed_common(keyed: dict[str, str], slots: Slots, catalog: _Lookup) -> None:
    """`service=` and `range=` of a read-only command; a value that does not read is dropped (an
    unconfigured service is never invented, an injected one never reaches a query)."""
    if "service" in keyed:
        service = catalog.service(keyed["service"])
        if service is not None:
            slots["service"] = service
    if "range" in keyed:
        seconds = compact_seconds(keyed["range"])
        if seconds is not None:
            slots["range_s"] = seconds


def balanced(expression: str) -> bool:
    """Quotes closed and brackets nested: the contract's test for taking a metric as raw PromQL."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in expression:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in _PAIRS:
            if not stack or stack.pop() != _PAIRS[char]:
                return False
    return quote is None and not stack


_PARSERS: dict[Intent, Callable[[str, _Lookup], Slots | None]] = {
    Intent.HELP: _help,
    Intent.STATUS: _none,
    Intent.HEALTH: _one("system", "system", "system"),
    Intent.METRICS: _metric_command,
    Intent.LOGS: _logs,
    Intent.DB: _one("db", "metric", "metric"),
    Intent.GATEWAY: _gateway,
    Intent.ALERTS: _one("state", "state", "state"),
    Intent.SILENCE: _alert_command(Intent.SILENCE),
    Intent.ACK: _alert_command(Intent.ACK),
    Intent.ESCALATE: _alert_command(Intent.ESCALATE),
    Intent.ONCALL: _schedule_command(takes_duration=False),
    Intent.TAKE: _schedule_command(takes_duration=True),
    Intent.GRAPH: _metric_command,
    Intent.MORE: _none,
    Intent.SUBSCRIBE: _none,
    Intent.UNSUBSCRIBE: _none,
    Intent.RESET: _none,
    Intent.CONFIRM: _confirm,
    Intent.UNDO: _none,
    Intent.UNSILENCE: _unsilence,
}
