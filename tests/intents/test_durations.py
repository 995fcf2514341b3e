from __future__ import annotations

import pytest

from intents.durations import MAX_SECONDS, clock_time, compact_seconds, compose_number, format_duration, phrase_seconds


@pytest.mark.parametrize(
    ("token", "seconds"),
    [("30m", 1800), ("6h", 21600), ("2d", 172800), ("1w", 604800), ("45s", 45), ("1h30m", 5400), ("1.5h", 5400),
     ("90min", 5400), ("2hrs", 7200), ("10mins", 600), ("1H", 3600)],
)  # fmt: skip
def test_compact(token: str, seconds: int) -> None:
    assert compact_seconds(token) == seconds


@pytest.mark.parametrize("token", ["30", "h", "5xx", "p99", "2nd", "0m", "1y", "999999w"])
def test_not_compact(token: str) -> None:
    assert compact_seconds(token) is None


@pytest.mark.parametrize(
    ("words", "seconds"),
    [
        ("last hour", 3600), ("past 15 min", 900), ("2 days", 172800), ("since 30m", 1800), ("past day", 86400),
        ("last 20 minutes", 1200), ("an hour", 3600), ("half an hour", 1800), ("half hour", 1800),
        ("an hour and a half", 5400), ("1 and a half hours", 5400), ("a couple of hours", 7200),
        ("couple hours", 7200), ("two hours", 7200), ("ninety minutes", 5400), ("the last week", 604800),
        ("1.5 hours", 5400), ("48 hours", 172800), ("a quarter of an hour", 900), ("three quarters of an hour", 2700),
        ("quarter hour", 900), ("hour and a half", 5400),
    ],
)  # fmt: skip
def test_phrases(words: str, seconds: int) -> None:
    assert phrase_seconds(words.split()) == seconds


@pytest.mark.parametrize("words", ["last", "hours", "two", "minus 5 hours", "0 minutes", "5000 days"])
def test_not_durations(words: str) -> None:
    assert phrase_seconds(words.split()) is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "1h"), (5400, "90m"), (86400, "1d"), (172800, "2d"), (45, "45s"), (900, "15m"),
                          (604800, "7d"), (3605, "3605s")],
)  # fmt: skip
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert compact_seconds(text) == seconds


def test_bound() -> None:
    assert compact_seconds(f"{MAX_SECONDS // 86400}d") == MAX_SECONDS
    assert compact_seconds(f"{MAX_SECONDS // 86400 + 1}d") is None


@pytest.mark.parametrize(
    ("words", "number"),
    [("forty five minutes", (45, 2)), ("twenty-five mins", (25, 1)), ("one hundred twenty minutes", (120, 3)),
     ("a hundred and twenty", (120, 4)), ("one hundred and five", (105, 4)), ("seventeen", (17, 1)),
     ("eighty", (80, 1)), ("ninety nine", (99, 2)), ("fourty five", (45, 2))],
)  # fmt: skip
def test_spelt_out_numbers_compose(words: str, number: tuple[int, int]) -> None:
    assert compose_number(words.split()) == number


@pytest.mark.parametrize(
    "words",
    ["two hours", "ninety minutes", "one", "five forty", "twenty-something", "two and a half", "forty", "hundred",
     "a couple", "minutes"],
)  # fmt: skip
def test_numbers_that_need_no_composing_or_do_not_compose(words: str) -> None:
    """Single known words stay for the duration rules; a pair that does not compose is not read at all."""
    assert compose_number(words.split()) is None


@pytest.mark.parametrize(
    ("words", "time"),
    [("9am", ("09:00", 1)), ("9 am", ("09:00", 2)), ("9:30pm", ("21:30", 1)), ("14:30", ("14:30", 1)),
     ("08:15", ("08:15", 1)), ("0900", ("09:00", 1)), ("noon", ("12:00", 1)), ("midnight", ("00:00", 1)),
     ("12 noon", ("12:00", 2)), ("12am", ("00:00", 1)), ("12pm", ("12:00", 1)), ("7 p.m", ("19:00", 2)),
     ("9.30", ("09:30", 1))],
)  # fmt: skip
def test_clock_times(words: str, time: tuple[str, int]) -> None:
    assert clock_time(words.split()) == time


@pytest.mark.parametrize("words", ["9", "25:00", "13pm", "9:75", "tomorrow", "the morning", ""])
def test_not_clock_times(words: str) -> None:
    """A bare hour could be morning or evening: a silence asks rather than guess twelve hours."""
    assert clock_time(words.split()) is None
