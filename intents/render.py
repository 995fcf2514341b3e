"""Write a parsed command back in the strict syntax.

The `command` of every parse is this text, and texting it back must give the same parse; the
property tests hold `parse(render(p)) == p` for every output.
"""

from __future__ import annotations

from collections.abc import Mapping

from intents.catalog import LEVEL_WORDS, Catalog
from intents.durations import compact_seconds, format_duration
from intents.models import Intent, SlotValue, seconds_of, terms_of


def render(intent: Intent, slots: Mapping[str, SlotValue], catalog: Catalog | None = None) -> str:
    """The strict command for an intent and its slots ("" for unknown).

    Log terms the strict syntax would read as something else (a service, a level, a duration)
    are quoted, so `logs "api"` stays a search for the word.
    """
    if intent is Intent.UNKNOWN:
        return ""
    parts: list[str] = [intent.value]
    if intent in (Intent.METRICS, Intent.GRAPH):
        parts.append(str(slots["metric"]))
        parts += _keyed(slots)
    elif intent is Intent.LOGS:
        parts += [_term(t, catalog) for t in terms_of(slots)]
        parts += _keyed(slots)
    elif intent is Intent.SILENCE:
        parts.append(str(slots["alert"]))
        until = slots.get("until")
        parts.append(
            f"until={until}" if isinstance(until, str) else format_duration(seconds_of(slots, "duration_s") or 0)
        )
    elif intent is Intent.TAKE:
        if "schedule" in slots:
            parts.append(str(slots["schedule"]))
        seconds = seconds_of(slots, "duration_s")
        if seconds is not None:
            parts.append(format_duration(seconds))
    elif intent is Intent.CONFIRM:
        parts = ["y", str(slots["code"])] if "code" in slots else ["confirm"]
    else:
        single = {Intent.HELP: "topic", Intent.HEALTH: "system", Intent.DB: "metric",
                  Intent.GATEWAY: "endpoint", Intent.ALERTS: "state", Intent.ACK: "alert",
                  Intent.UNSILENCE: "id", Intent.ESCALATE: "alert", Intent.ONCALL: "schedule"}.get(intent)  # fmt: skip
        if single and single in slots:
            parts.append(str(slots[single]))
    return " ".join(parts)


def _keyed(slots: Mapping[str, SlotValue]) -> list[str]:
    parts = [f"{name}={slots[name]}" for name in ("service", "level") if name in slots]
    seconds = seconds_of(slots, "range_s")
    if seconds is not None:
        parts.append(f"range={format_duration(seconds)}")
    return parts


def _term(term: str, catalog: Catalog | None) -> str:
    level_word = any(term in words for words in LEVEL_WORDS.values())
    service = catalog is not None and catalog.lookup("service", term) is not None
    return f'"{term}"' if level_word or service or compact_seconds(term) is not None else term
