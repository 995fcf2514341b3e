"""Follow-ups: completing a short text from the same user's previous command, and remembering it.

"what about checkout?" after `logs service=payment level=error` is `logs service=checkout level=error`;
"and the last 6 hours" keeps intent and service and sets the range; "graph that" charts what was
just shown. Only slots the new intent takes are carried, and only between related commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from intents.models import Context, Intent, Parse, SlotValue

QUERY_FAMILY = frozenset({Intent.METRICS, Intent.GRAPH, Intent.LOGS})
ALERT_FAMILY = frozenset({Intent.SILENCE, Intent.ACK})

SLOTS_OF: dict[Intent, frozenset[str]] = {
    Intent.METRICS: frozenset({"metric", "service", "range_s"}),
    Intent.GRAPH: frozenset({"metric", "service", "range_s"}),
    Intent.LOGS: frozenset({"terms", "service", "level", "range_s"}),
    Intent.HEALTH: frozenset({"system"}),
    Intent.DB: frozenset({"metric"}),
    Intent.GATEWAY: frozenset({"endpoint"}),
    Intent.ALERTS: frozenset({"state"}),
    Intent.SILENCE: frozenset({"alert", "duration_s"}),
    Intent.ACK: frozenset({"alert"}),
    Intent.HELP: frozenset({"topic"}),
    Intent.CONFIRM: frozenset({"code"}),
    Intent.UNSILENCE: frozenset({"id"}),
}
"""The slots each intent takes (the contract's table)."""

REMEMBERED = frozenset(SLOTS_OF) - {Intent.HELP, Intent.CONFIRM, Intent.UNSILENCE}
"""Commands a follow-up can continue; help, confirmations and paging don't change the subject."""


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
    if context.intent is None:
        return merged, ()
    previous = dict(context.slots)
    allowed = set(carried(context.intent, intent))
    if context.intent is Intent.LOGS and intent in (Intent.GRAPH, Intent.METRICS) and previous.get("level") == "error":
        previous["metric"] = "error_rate"  # "graph that" after error logs charts the error rate
        allowed.add("metric")
    for name in sorted(allowed):
        empty_terms = name == "terms" and not merged.get("terms")
        if name in previous and (name not in merged or empty_terms) and previous[name]:
            merged[name] = previous[name]
            used.append(name)
    return merged, tuple(used)


def remember(context: Context, parse: Parse) -> Context:
    """The user's context after this parse (the bot adds pending codes and alert numbers itself)."""
    if parse.intent is Intent.RESET:
        return Context()
    if parse.intent is Intent.UNKNOWN:
        return replace(context, suggestion=parse.suggestion, pending_code=None)
    if parse.intent in REMEMBERED:
        return replace(context, intent=parse.intent, slots=dict(parse.slots), suggestion=None, pending_code=None)
    return replace(context, suggestion=None, pending_code=None)
