"""NRQL text for the New Relic monitor, built from parts and never from a user's words as they came.

Everything a user texts (a service, a level, search words) goes into NRQL as a string literal: NRQL
quotes strings with single quotes ("Syntax for strings" in New Relic's NRQL introduction) and a
backslash escapes the next character, so a value has its backslashes and quotes escaped and its control
characters turned into spaces. A service called `x' OR appName LIKE '%` is then searched for as that
odd name, and nothing it contains can end the literal. Attribute and event-type names come only from
the configuration, are checked against NRQL's name alphabet and are wrapped in backticks.

The finished NRQL is not spliced into GraphQL either: `monitors.newrelic` sends it as the `$nrql`
variable of a fixed GraphQL document, so no NRQL text can change the GraphQL around it.

Metric aliases are NRQL templates without a time clause (`SELECT average(duration) FROM Transaction
WHERE appName = '{service}'`); `{service}` may appear only as the whole right side of `attribute =
'{service}'`. For every service the comparison becomes `attribute IS NOT NULL` and the query is
faceted by that attribute, so "latency" without a service names each app's own figure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monitors.base import LogQuery
from monitors.errors import BackendQueryError

BACKEND = "New Relic"
MAX_NRQL = 4000
"""New Relic: "The query string must be less than 4 KB"; longer texts are refused before a request."""
MAX_VALUE = 200
"""Longest service or search word put in a literal."""
NAME = r"[A-Za-z_][A-Za-z0-9_.:-]{0,254}"
"""Attribute and event-type names that need no escaping inside backticks (no backtick, no space)."""

DEFAULT_TEMPLATES: dict[str, str] = {
    "cpu": "SELECT average(apm.service.cpu.usertime.utilization) * 100 FROM Metric WHERE appName = '{service}'",
    "memory": "SELECT average(apm.service.memory.physical) * 1048576 FROM Metric WHERE appName = '{service}'",
    "latency": "SELECT average(duration) FROM Transaction WHERE appName = '{service}'",
    "error_rate": "SELECT percentage(count(*), WHERE error IS true) FROM Transaction WHERE appName = '{service}'",
    "requests": "SELECT rate(count(*), 1 second) FROM Transaction WHERE appName = '{service}'",
}
"""The built-in aliases, for APM services named by `appName`: APM agents' CPU utilisation (a fraction,
as %) and physical memory (MB, as bytes), and transactions' duration (seconds), error share (%) and rate
(per second). `disk` and `up` have no natural query in APM data, so they have no default; a `metrics:`
mapping in the section adds aliases or replaces these."""

LEVELS: dict[str, tuple[str, ...]] = {
    "error": ("error", "err", "fatal", "critical", "crit", "emergency", "alert", "severe", "panic"),
    "warn": ("warn", "warning"),
    "info": ("info", "information", "notice"),
}
"""A level -> the values of the level attribute that mean it. NRQL's LIKE without a wildcard matches
the whole value ignoring case, so `ERROR`, `Error` and `error` all count."""

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|`[^`]*`", re.DOTALL)
_SERVICE_COMPARISON = re.compile(r"(`[^`]+`|[A-Za-z_][\w.:]*)\s*=\s*'\{service\}'")
_TIME_CLAUSES = re.compile(r"\b(SINCE|UNTIL|TIMESERIES|COMPARE\s+WITH)\b", re.IGNORECASE)
_STARTS = re.compile(r"\s*(SELECT|FROM)\b", re.IGNORECASE)
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def clean(value: str) -> str:
    """A value as one line of printable text, runs of whitespace and control characters one space."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def literal(value: str) -> str:
    """`value` as a NRQL string literal, quotes included; a value too long or empty is refused."""
    text = clean(value)
    if not text or len(text) > MAX_VALUE:
        raise BackendQueryError(BACKEND, "value too long" if text else "empty value")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def name(attribute: str) -> str:
    """A configured attribute or event-type name in backticks (they are checked against `NAME` on load)."""
    if not re.fullmatch(NAME, attribute):
        raise ValueError(f"not a plain NRQL name: {attribute!r}")
    return f"`{attribute}`"


def code_only(nrql: str) -> str:
    """The NRQL with its string literals and backticked names blanked, for looking at its keywords."""
    return _STRING.sub(lambda m: " " * len(m[0]), nrql)


def has_clause(nrql: str, keyword: str) -> bool:
    return re.search(rf"\b{keyword}\b", code_only(nrql), re.IGNORECASE) is not None


def check_template(template: str) -> str:
    """A metric template as the config gives it, or ValueError saying what is wrong with it."""
    if not _STARTS.match(template) or "\n" in template.strip() or len(template) > MAX_NRQL - 200:
        raise ValueError("must be one line of NRQL starting with SELECT or FROM")
    if _TIME_CLAUSES.search(code_only(template)):
        raise ValueError("must not hold SINCE, UNTIL, TIMESERIES or COMPARE WITH (the bot adds the time range)")
    if template.count("{service}") != len(_SERVICE_COMPARISON.findall(template)):
        raise ValueError("{service} may only appear as attribute = '{service}'")
    return template


def expand(template: str, service: str | None) -> tuple[str, str | None]:
    """The template for one service, or for every service faceted by the service attribute.

    Returns the NRQL and the attribute the answer is faceted by for the service (None when the
    template names no service, or one service was asked for).
    """
    if service is not None:
        value = literal(service)
        return _SERVICE_COMPARISON.sub(lambda m: f"{m[1]} = {value}", template), None
    found = _SERVICE_COMPARISON.search(template)
    if found is None:
        return template, None
    nrql = _SERVICE_COMPARISON.sub(lambda m: f"{m[1]} IS NOT NULL", template)
    if has_clause(nrql, "FACET"):
        return nrql, None
    return f"{nrql} FACET {found[1]}", found[1].strip("`")


def ago(seconds: int) -> str:
    """ "1 hour ago", "90 minutes ago", "45 seconds ago": the largest unit that divides it exactly."""
    seconds = max(1, int(seconds))
    for unit, size in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return f"{seconds} second{'s' if seconds != 1 else ''} ago"


def metric_nrql(base: str, range_s: int | None, instant_s: int) -> str:
    """`base` with the time range added where it has none: SINCE the range (or the instant window),
    and TIMESERIES AUTO for a range (New Relic picks the buckets, never more than 366)."""
    nrql = base.strip()
    if not has_clause(nrql, "SINCE"):
        nrql += f" SINCE {ago(range_s or instant_s)}"
    if range_s and not has_clause(nrql, "TIMESERIES"):
        nrql += " TIMESERIES AUTO"
    return _bounded(nrql)


def log_nrql(
    query: LogQuery, event_type: str, service_attributes: Sequence[str], level_attribute: str, limit: int
) -> str:
    """The newest matching log records: service, level and words as escaped literals, newest first.

    A service matches any of the configured service attributes (`service.name` from OpenTelemetry,
    `entity.name` from APM agents' logs in context, `service` from the Log API's examples); a word
    matches when the message contains it (`LIKE '%word%'`, which NRQL compares ignoring case).
    """
    conditions: list[str] = []
    if query.service:
        value = literal(query.service)
        conditions.append(_any(f"{name(attribute)} = {value}" for attribute in service_attributes))
    if query.level:
        level = query.level.lower()
        values = LEVELS.get(level, (level,))
        conditions.append(_any(f"{name(level_attribute)} LIKE {literal(value)}" for value in values))
    for term in query.terms:
        if clean(term):
            conditions.append(f"{name('message')} LIKE {literal('%' + clean(term) + '%')}")
    columns = dict.fromkeys(["timestamp", "message", level_attribute, *service_attributes, "hostname"])
    select = ", ".join(name(column) for column in columns)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return _bounded(
        f"SELECT {select} FROM {name(event_type)}{where} SINCE {ago(query.range_s)}"
        f" ORDER BY timestamp DESC LIMIT {int(limit)}"
    )


def _any(parts: Iterable[str]) -> str:
    items = list(parts)
    return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"


def _bounded(nrql: str) -> str:
    if len(nrql.encode()) >= MAX_NRQL:
        raise BackendQueryError(BACKEND, "query too long")
    return nrql
