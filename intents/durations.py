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

UNITS_1_19: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
COUNTING_WORDS = frozenset({*UNITS_1_19, *TENS, "hundred", "a", "and"})
"""Words a spelt-out number is made of ("one hundred and twenty", "forty-five")."""


def compose_number(words: Sequence[str]) -> tuple[int, int] | None:
    """A spelt-out whole number at the start of `words`: (value, words it took), or None.

    Only numbers that need composing are returned: two or more words ("forty five", "one hundred
    twenty", "a hundred and twenty"), a hyphenated word ("twenty-five") or a single word the duration
    rules do not know ("seventeen", "eighty"). A lone "two" stays a word: "alert number two" and "two
    hours" read it in place. Words that do not compose ("five forty") give None for the pair, so the
    caller sees a number it could not read instead of taking half of it.
    """
    parts: list[tuple[str, int]] = [(part, i) for i, word in enumerate(words[:8]) for part in word.split("-")]
    names = [part for part, _ in parts]
    if names[:2] == ["a", "hundred"]:
        value, index = 1, 1
    else:
        head = _below_hundred(names, 0)
        if head is None:
            return None
        value, index = head
    if index < len(names) and names[index] == "hundred" and value < 10:
        value, index = value * 100, index + 1
        after_and = index + 1 if index < len(names) and names[index] == "and" else index
        rest = _below_hundred(names, after_and)
        if rest is not None:
            value, index = value + rest[0], rest[1]
    if index < len(parts) and parts[index][1] == parts[index - 1][1]:
        return None  # a hyphenated word only partly a number ("twenty-something")
    taken = parts[index - 1][1] + 1
    if taken == 1 and "-" not in words[0] and words[0] in NUMBER_WORDS:
        return None
    return value, taken


def _below_hundred(names: Sequence[str], index: int) -> tuple[int, int] | None:
    """ "forty five", "forty", "seventeen" at `index`: (value, index after it)."""
    if index >= len(names):
        return None
    word = names[index]
    if word in TENS:
        value = TENS[word]
        following = names[index + 1] if index + 1 < len(names) else ""
        if UNITS_1_19.get(following, 10) < 10:
            return value + UNITS_1_19[following], index + 2
        return value, index + 1
    if word in UNITS_1_19:
        return UNITS_1_19[word], index + 1
    return None


_CLOCK = re.compile(r"^(\d{1,2})(?:[:.h](\d{2}))?(am|pm|a|p)?$")
_MILITARY = re.compile(r"^([01]\d|2[0-3])([0-5]\d)$")
NAMED_TIMES = {"noon": "12:00", "midday": "12:00", "midnight": "00:00"}
MERIDIEM = {"am": "am", "pm": "pm", "a.m": "am", "p.m": "pm", "a.m.": "am", "p.m.": "pm", "a": "am", "p": "pm"}


def clock_time(words: Sequence[str]) -> tuple[str, int] | None:
    """A time of day at the start of `words` as 24-hour "HH:MM", with the words it took; None if none.

    "9am", "9 am", "9:30pm", "14:30", "08:15", "0900", "noon", "midnight", "12 noon". A bare hour
    ("until 9") is left out: without am/pm or minutes it could be 09:00 or 21:00, and the contract
    prefers asking to silencing for the wrong twelve hours.
    """
    if not words:
        return None
    first = words[0]
    if first in NAMED_TIMES:
        return NAMED_TIMES[first], 1
    following = words[1] if len(words) > 1 else ""
    if following in NAMED_TIMES and first == "12":
        return NAMED_TIMES[following], 2
    military = _MILITARY.match(first)
    if military:
        return f"{military.group(1)}:{military.group(2)}", 1
    match = _CLOCK.match(first)
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    meridiem = MERIDIEM.get(match.group(3) or "")
    used = 1
    if meridiem is None and following in MERIDIEM and len(following) > 1:
        meridiem, used = MERIDIEM[following], 2
    if minute > 59:
        return None
    if meridiem is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    elif match.group(2) is None or hour > 23:
        return None  # "until 9": morning or evening?
    return f"{hour:02d}:{minute:02d}", used


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
            "lst",
            "lat",
            "las",
            "pst",
            "prev",
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
    if any(w in ("quarter", "quarters") for w in words):  # "a quarter of an hour", "three quarters of an hour"
        count = _number(words[0]) if words[0] not in ("quarter", "quarters") else 1.0
        unit = UNIT_SECONDS.get(words[-1])
        return _bounded(count * unit / 4) if count is not None and unit is not None else None
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
    if len(words) == 1 and half and words[0] in SINGULAR_UNITS:  # "hour and a half"
        words = ["1", words[0]]
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
