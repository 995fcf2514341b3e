"""How the parser's decision becomes a `Parse`: the unknown answer, the confidence, the slots of its own."""

from __future__ import annotations

import math

from intents.grammar import Score
from intents.models import Intent, Parse, SlotValue, Source

Slots = dict[str, SlotValue]


def unknown(suggestion: str | None, best: Score | None = None, second: Score | None = None) -> Parse:
    slots: Slots = {"suggestion": suggestion} if suggestion else {}
    confidence = 0.5
    if best is not None and second is not None:
        confidence = 1.0 - confidence_of(best, second) / 2
    return Parse(Intent.UNKNOWN, slots, "", confidence, Source.NL)


def confidence_of(best: Score, second: Score) -> float:
    """0.5–1.0: higher for a strong winner far ahead of the runner-up."""
    if best.total <= 0:
        return 0.5
    strength = 1 - math.exp(-best.total / 3)
    separation = (best.total - max(second.total, 0.0)) / best.total
    return round(0.5 + 0.5 * strength * (0.5 + 0.5 * separation), 2)


def own(slots: Slots, used: tuple[str, ...]) -> Slots:
    """The slots without those taken from the context."""
    return {name: value for name, value in slots.items() if name not in used}
