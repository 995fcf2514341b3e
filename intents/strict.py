"""The strict syntax: `metrics cpu service=checkout range=1h`, `logs error payment 2h`, `ack 2`.

A text that is a well-formed strict command is taken literally and wins over every guess. Anything
not well-formed (an unknown key, an unconfigured service, filler words) returns None, and the
language rules get their turn.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from intents.catalog import Catalog
from intents.durations import compact_seconds
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
    "unsilence": Intent.UNSILENCE,
}  # fmt: skip
"""Command words of the strict syntax, any case."""

HELP_TOPICS: dict[str, str] = {
    **{intent.value: intent.value for intent in Intent if intent not in (Intent.UNKNOWN, Intent.HELP)},
    "metric": "metrics", "log": "logs", "alert": "alerts", "mute": "silence", "snooze": "silence",
    "acknowledge": "ack", "chart": "graph", "plot": "graph", "graphs": "graph", "database": "db",
    "kong": "gateway", "health": "health", "stop": "unsubscribe", "start": "subscribe",
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


def parse_strict(text: str, catalog: Catalog) -> Parse | None:
    """The command if `text` is well-formed strict syntax, else None."""
    head, _, rest = text.strip().partition(" ")
    intent = COMMANDS.get(head.lower())
    if intent is None:
        return None
    slots = _PARSERS[intent](rest.strip(), catalog)
    if slots is None:
        return None
    return Parse(intent, slots, render(intent, slots, catalog), 1.0, Source.STRICT)


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


def _none(rest: str, catalog: Catalog) -> Slots | None:
    return {} if not rest else None


def _one(kind: str, key: str, slot: str) -> Callable[[str, Catalog], Slots | None]:
    """A command with one optional argument looked up in the catalog (`health db`, `alerts firing`)."""

    def parse(rest: str, catalog: Catalog) -> Slots | None:
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


def _help(rest: str, catalog: Catalog) -> Slots | None:
    if not rest:
        return {}
    topic = HELP_TOPICS.get(rest.lower())
    return {"topic": topic} if topic else None


def _gateway(rest: str, catalog: Catalog) -> Slots | None:
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


def _alert_command(needs_duration: bool) -> Callable[[str, Catalog], Slots | None]:
    def parse(rest: str, catalog: Catalog) -> Slots | None:
        split = _split(rest)
        if split is None:
            return None
        keyed, positional = split
        allowed = {"alert", "duration"} if needs_duration else {"alert"}
        if set(keyed) - allowed:
            return None
        alert = keyed.get("alert")
        duration = compact_seconds(keyed["duration"]) if "duration" in keyed else None
        if "duration" in keyed and duration is None:
            return None
        for word in positional:
            seconds = compact_seconds(word) if needs_duration else None
            if seconds is not None and duration is None:
                duration = seconds
            elif alert is None and _ALERT.match(word) and word.lower() not in FILLER:
                alert = word
            else:
                return None
        if alert is None or not _ALERT.match(alert) or (needs_duration and duration is None):
            return None
        slots: Slots = {"alert": alert.lstrip("#")}
        if needs_duration and duration is not None:
            slots["duration_s"] = duration
        return slots

    return parse


_SILENCE_ID = re.compile(r"^[0-9a-f]{8}(?:-?[0-9a-f]{4}){0,3}(?:-?[0-9a-f]{12})?$", re.IGNORECASE)


def _unsilence(rest: str, catalog: Catalog) -> Slots | None:
    """`unsilence <id>`: only with something shaped like a silence id; "unsilence" alone is an undo."""
    return {"id": rest.lower()} if _SILENCE_ID.match(rest) else None


def _confirm(rest: str, catalog: Catalog) -> Slots | None:
    if not rest:
        return {}
    return {"code": rest} if _CODE.match(rest) else None


def _logs(rest: str, catalog: Catalog) -> Slots | None:
    split = _split(rest, keep_quotes=True)
    if split is None:
        return None
    keyed, positional = split
    if set(keyed) - {"service", "level", "range", "terms"}:
        return None
    slots: Slots = {}
    if not _keyed_common(keyed, slots, catalog):
        return None
    if "level" in keyed:
        level = catalog.lookup("level", keyed["level"])
        if level is None:
            return None
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


def _metric_command(rest: str, catalog: Catalog) -> Slots | None:
    """`metrics <alias|PromQL> [service] [range]`; see the contract's rule on raw PromQL."""
    words = rest.split(" ") if rest else []
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
    if "metric" in keyed:
        return None
    slots: Slots = {}
    if not expression or not _keyed_common(keyed, slots, catalog):
        return None
    metric = _metric(expression, catalog)
    if metric is None:
        leading = re.match(r"[A-Za-z_]+", expression)
        alias = catalog.lookup("metric", leading.group()) if leading else None
        if alias is None or balanced(expression):
            return None
        return {"metric": alias}  # unbalanced: keep the alias, drop the rest (contract)
    slots["metric"] = metric
    return slots


def _metric(expression: str, catalog: Catalog) -> str | None:
    alias = catalog.lookup("metric", expression) if " " not in expression else None
    if alias is not None:
        return alias
    if not balanced(expression):
        return None
    if any(c in expression for c in "({[") or (_IDENTIFIER.match(expression) and any(c in expression for c in "_:")):
        return expression
    return None


def _keyed_common(keyed: dict[str, str], slots: Slots, catalog: Catalog) -> bool:
    if "service" in keyed:
        service = catalog.lookup("service", keyed["service"])
        if service is None:
            return False
        slots["service"] = service
    if "range" in keyed:
        seconds = compact_seconds(keyed["range"])
        if seconds is None:
            return False
        slots["range_s"] = seconds
    return True


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


_PARSERS: dict[Intent, Callable[[str, Catalog], Slots | None]] = {
    Intent.HELP: _help,
    Intent.STATUS: _none,
    Intent.HEALTH: _one("system", "system", "system"),
    Intent.METRICS: _metric_command,
    Intent.LOGS: _logs,
    Intent.DB: _one("db", "metric", "metric"),
    Intent.GATEWAY: _gateway,
    Intent.ALERTS: _one("state", "state", "state"),
    Intent.SILENCE: _alert_command(needs_duration=True),
    Intent.ACK: _alert_command(needs_duration=False),
    Intent.GRAPH: _metric_command,
    Intent.MORE: _none,
    Intent.SUBSCRIBE: _none,
    Intent.UNSUBSCRIBE: _none,
    Intent.RESET: _none,
    Intent.CONFIRM: _confirm,
    Intent.UNDO: _none,
    Intent.UNSILENCE: _unsilence,
}
