"""Follow-ups: completing a short text from the same user's previous command, and remembering it.

"what about checkout?" after `logs service=payment level=error` is `logs service=checkout level=error`;
"and the last 6 hours" keeps intent and service and sets the range; "graph that" charts what was
just shown; "cpu?" after payment's error logs is payment's cpu (the service carries across query
commands, log terms do not). Only query commands replace what a follow-up continues; `more`, `help`,
`confirm`, `undo`, `oncall` … leave it as it was. Alert commands (silence, ack, escalate) only leave
their alert behind, for "ack it" and "bump it".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from intents.models import Context, Intent, Parse, SlotValue

QUERY_FAMILY = frozenset({Intent.METRICS, Intent.GRAPH, Intent.LOGS})
"""Commands that share `service` and `range_s` with each other."""
QUERY_COMMANDS = frozenset({*QUERY_FAMILY, Intent.HEALTH, Intent.DB, Intent.GATEWAY, Intent.ALERTS})
"""The contract's query commands: the only ones a follow-up continues, so the only ones remembered."""
ALERT_FAMILY = frozenset({Intent.SILENCE, Intent.ACK, Intent.ESCALATE})
"""Commands on one alert; "ack it" after any of them takes its alert."""

SLOTS_OF: dict[Intent, frozenset[str]] = {
    Intent.METRICS: frozenset({"metric", "service", "range_s"}),
    Intent.GRAPH: frozenset({"metric", "service", "range_s"}),
    Intent.LOGS: frozenset({"terms", "service", "level", "range_s"}),
    Intent.HEALTH: frozenset({"system"}),
    Intent.DB: frozenset({"metric"}),
    Intent.GATEWAY: frozenset({"endpoint"}),
    Intent.ALERTS: frozenset({"state"}),
    Intent.SILENCE: frozenset({"alert", "duration_s", "until"}),
    Intent.ACK: frozenset({"alert"}),
    Intent.ESCALATE: frozenset({"alert"}),
    Intent.ONCALL: frozenset({"schedule"}),
    Intent.TAKE: frozenset({"schedule", "duration_s"}),
    Intent.HELP: frozenset({"topic"}),
    Intent.CONFIRM: frozenset({"code"}),
    Intent.UNSILENCE: frozenset({"id"}),
}
"""The slots each intent takes (the contract's table)."""

_EXCLUSIVE = {"duration_s": "until", "until": "duration_s"}

REMEMBERED = QUERY_COMMANDS
"""Commands a follow-up can continue; help, confirmations, paging and on-call don't change the subject."""


def carried(previous: Intent, current: Intent) -> frozenset[str]:
    """Which of the previous command's slots the current one may inherit."""
    if previous == current:
        return SLOTS_OF.get(current, frozenset())
    if previous in QUERY_FAMILY and current in QUERY_FAMILY:
        shared = {"service", "range_s"}
        if {previous, current} <= {Intent.METRICS, Intent.GRAPH}:
            shared.add("metric")
        return frozenset(shared)
    if previous in ALERT_FAMILY and current in ALERT_FAMILY:
        return frozenset({"alert"})
    return frozenset()


def merge(
    context: Context, intent: Intent, slots: Mapping[str, SlotValue]
) -> tuple[dict[str, SlotValue], tuple[str, ...]]:
    """The new slots completed from context, and the names of the slots that came from it."""
    merged = dict(slots)
    used: list[str] = []
    previous = dict(context.slots)
    allowed = set(carried(context.intent, intent)) if context.intent is not None else set()
    if intent in ALERT_FAMILY:
        allowed.add("alert")  # "ack it", "bump it": the alert of the last alert command
    if context.intent is Intent.LOGS and intent in (Intent.GRAPH, Intent.METRICS) and previous.get("level") == "error":
        previous["metric"] = "error_rate"  # "graph that" after error logs charts the error rate
        allowed.add("metric")
    for name in sorted(allowed):
        if name in _EXCLUSIVE and _EXCLUSIVE[name] in merged:
            continue  # a silence ends after a duration or at a time, never both
        empty_terms = name == "terms" and not merged.get("terms")
        if name in previous and (name not in merged or empty_terms) and previous[name]:
            merged[name] = previous[name]
            used.append(name)
    return merged, tuple(used)


def remember(context: Context, parse: Parse) -> Context:
    """The user's context after this parse (the bot adds pending codes and alert numbers itself).

    A query command replaces the subject; an alert command leaves its alert beside it; anything else
    (more, help, confirm, undo, oncall, take, subscribe …) leaves the context as it was.
    """
    if parse.intent is Intent.RESET:
        return Context()
    if parse.intent is Intent.UNKNOWN:
        return replace(context, suggestion=parse.suggestion, pending_code=None)
    if parse.intent in REMEMBERED:
        slots = dict(parse.slots)
        alert = context.slots.get("alert")
        renumbered = parse.intent is Intent.ALERTS and str(alert).isdigit()
        if alert is not None and not renumbered and context.intent not in ALERT_FAMILY:
            slots["alert"] = alert  # after a new alert list, "it" is no longer alert number 2 of the old one
        return replace(context, intent=parse.intent, slots=slots, suggestion=None, pending_code=None)
    if parse.intent in ALERT_FAMILY and "alert" in parse.slots:
        kept = dict(context.slots) if context.intent not in ALERT_FAMILY else {}
        kept["alert"] = parse.slots["alert"]
        intent = context.intent if context.intent not in ALERT_FAMILY else None
        return replace(context, intent=intent, slots=kept, suggestion=None, pending_code=None)
    return replace(context, suggestion=None, pending_code=None)


def query_slots(context: Context) -> dict[str, SlotValue]:
    """The remembered query command's own slots (without the alert kept beside them)."""
    if context.intent is None:
        return {}
    own = SLOTS_OF.get(context.intent, frozenset())
    return {name: value for name, value in context.slots.items() if name in own}


def same_subject(
    strict: Parse, normalized: str, context: Context
) -> tuple[dict[str, SlotValue], tuple[str, ...]] | None:
    """ "logs?" just after "error rate on payment": a bare command asked as a question continues the
    subject (the service carries across intents), as (slots, the names taken from context); typed
    without the question mark it is the strict command it is, every service's logs."""
    if not normalized.endswith("?") or strict.intent not in QUERY_FAMILY or context.intent not in QUERY_FAMILY:
        return None
    if any(value for value in strict.slots.values()):
        return None
    merged, used = merge(context, strict.intent, strict.slots)
    return (merged, tuple(used)) if "service" in used else None


_EVERY_SERVICE = frozenset({"all", "every", "everywhere", "overall", "across", "total", "globally", "fleet"})


def carries_service(context: Context, intent: Intent, slots: Mapping[str, SlotValue], words: Sequence[str]) -> bool:
    """ "memory on cart", then "any errors in the logs?": the subject stays cart (the service carries
    across query commands) unless the new text names a service or asks about all of them."""
    return (
        intent in QUERY_FAMILY
        and context.intent in QUERY_FAMILY
        and "service" not in slots
        and "service" in context.slots
        and not _EVERY_SERVICE.intersection(words)
    )
