"""Durations as people text them, to and from whole seconds.

"6h", "1h30m", "last hour", "past 15 min", "2 days", "half an hour", "an hour and a half": the
entity rules find the span, these functions give it a value; `format_duration` writes the value
back in the strict syntax ("90m", "1d").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

UNIT_SECONDS: dict[str, int] = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60, "mn": 60, "mns": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "hrz": 3600, "hourz": 3600,
    "d": 86400, "day": 86400, "days": 86400, "dy": 86400, "dys": 86400,
    "w": 604800, "wk": 604800, "wks": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
"""Unit words (after typo correction) and their length; "m" is minutes, as in PromQL."""

SINGULAR_UNITS = ("second", "sec", "minute", "min", "hour", "hr", "day", "week", "wk")
"""Units that make a duration on their own after "last"/"past"/"an": "last hour", "an hour"."""

NUMBER_WORDS: dict[str, float] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fortyfive": 45, "forty-five": 45, "fifty": 50, "sixty": 60,
    "ninety": 90, "couple": 2, "half": 0.5, "few": 3, "several": 3,
}  # fmt: skip
"""Number words people use before a unit ("two hours", "a couple of days", "half an hour")."""

_COMPACT_PART = re.compile(r"(\d+(?:\.\d+)?)([a-z]+)")
COMPACT = re.compile(r"^(?:\d+(?:\.\d+)?(?:s|secs?|m|mins?|h|hrs?|d|w|wks?))+$")
"""A compact duration token: 30m, 6h, 1.5h, 1h30m, 2d, 1w."""

MAX_SECONDS = 366 * 86400
"""Longer spans are not meaningful for on-call questions and would overflow backends' limits."""


def compact_seconds(token: str) -> int | None:
    """Seconds in a compact token such as "1h30m", or None if it is not one."""
    token = token.lower()
    if not COMPACT.match(token):
        return None
    total = sum(float(number) * UNIT_SECONDS[unit] for number, unit in _COMPACT_PART.findall(token))
    return _bounded(total)


def phrase_seconds(words: Sequence[str]) -> int | None:
    """Seconds in a spoken duration given as lowercase words.

    Handles "last hour", "past 15 min", "2 days", "a couple of hours", "half an hour",
    "an hour and a half", "1 and a half hours", "90 minutes". Leading "last"/"past"/"since"/
    "for"/"over"/"the" are skipped by the caller's span or ignored here.
    """
    words = [
        w
        for w in words
        if w
        not in {
            "last",
            "past",
            "previous",
            "prior",
            "since",
            "for",
            "over",
            "the",
            "of",
            "in",
            "within",
            "during",
            "next",
        }
    ]
    if len(words) >= 3 and words[0] in {"a", "an"} and words[1] in NUMBER_WORDS:  # a couple hours
        words = words[1:]
    if not words:
        return None
    if len(words) == 1:
        compact = compact_seconds(words[0])
        if compact is not None:
            return compact
        unit = UNIT_SECONDS.get(words[0])
        return unit if unit is not None and words[0] in SINGULAR_UNITS else None
    # "an hour and a half", "1 and a half hours", "two and a half days"
    half = 0.0
    if words[-3:] == ["and", "a", "half"]:
        half, words = 0.5, words[:-3]
    elif len(words) >= 4 and words[-4:-1] == ["and", "a", "half"]:
        half, words = 0.5, [*words[:-4], words[-1]]
    if len(words) == 3 and words[0] == "half" and words[1] in {"a", "an"}:  # half an hour
        words = ["half", words[2]]
    if len(words) != 2:
        return None
    amount, unit_word = words
    unit = UNIT_SECONDS.get(unit_word)
    if unit is None:
        return None
    number = _number(amount)
    if number is None:
        return None
    return _bounded((number + half) * unit)


def _number(word: str) -> float | None:
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    try:
        value = float(word)
    except ValueError:
        return None
    return value if value > 0 else None


def _bounded(seconds: float) -> int | None:
    value = round(seconds)
    return value if 0 < value <= MAX_SECONDS else None


def format_duration(seconds: int) -> str:
    """The strict-syntax form of a duration: the largest whole unit ("1h", "90m", "2d", "45s")."""
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"
