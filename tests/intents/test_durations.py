from __future__ import annotations

import pytest

from intents.durations import MAX_SECONDS, compact_seconds, format_duration, phrase_seconds


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
        ("1.5 hours", 5400), ("48 hours", 172800),
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
