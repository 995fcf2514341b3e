"""Write a parsed command back in the strict syntax.

The `command` of every parse is this text, and texting it back must give the same parse; the
property tests hold `parse(render(p)) == p` for every output.
"""

from __future__ import annotations

from collections.abc import Mapping

from intents.durations import format_duration
from intents.models import Intent, SlotValue, seconds_of, terms_of


def render(intent: Intent, slots: Mapping[str, SlotValue]) -> str:
    """The strict command for an intent and its slots ("" for unknown)."""
    if intent is Intent.UNKNOWN:
        return ""
    parts: list[str] = [intent.value]
    if intent in (Intent.METRICS, Intent.GRAPH):
        parts.append(str(slots["metric"]))
        parts += _keyed(slots)
    elif intent is Intent.LOGS:
        parts += terms_of(slots)
        parts += _keyed(slots)
    elif intent is Intent.SILENCE:
        parts += [str(slots["alert"]), format_duration(seconds_of(slots, "duration_s") or 0)]
    elif intent is Intent.CONFIRM:
        parts = ["y", str(slots["code"])] if "code" in slots else ["confirm"]
    else:
        single = {Intent.HELP: "topic", Intent.HEALTH: "system", Intent.DB: "metric",
                  Intent.GATEWAY: "endpoint", Intent.ALERTS: "state", Intent.ACK: "alert"}.get(intent)  # fmt: skip
        if single and single in slots:
            parts.append(str(slots[single]))
    return " ".join(parts)


def _keyed(slots: Mapping[str, SlotValue]) -> list[str]:
    parts = [f"{name}={slots[name]}" for name in ("service", "level") if name in slots]
    seconds = seconds_of(slots, "range_s")
    if seconds is not None:
        parts.append(f"range={format_duration(seconds)}")
    return parts
