from __future__ import annotations

import pytest

from intents.tokens import tokenize


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("what's the p99 on checkout-api, last 1h30m?", ["whats", "the", "p99", "on", "checkout-api", ",", "last",
                                                         "1h30m", "?"]),
        ("service=auth range=30m", ["service", "=", "auth", "range", "=", "30m"]),
        ("ack #2", ["ack", "#2"]),
        ("any 5xx on mobile-backend", ["any", "5xx", "on", "mobile-backend"]),
        ("disk_full at 90%", ["disk_full", "at", "90%"]),
        ("checkout.", ["checkout", "."]),
        ("gateway /api/v1/orders", ["gateway", "/api/v1/orders"]),
        ("$(whoami)", ["$", "(", "whoami", ")"]),
    ],
)  # fmt: skip
def test_words(text: str, words: list[str]) -> None:
    assert [t.lower for t in tokenize(text)] == words


def test_kinds_and_offsets() -> None:
    tokens = tokenize("ack #2 /x")
    assert [t.kind for t in tokens] == ["word", "ref", "path"]
    assert [(t.start, t.end) for t in tokens] == [(0, 3), (4, 6), (7, 9)]


def test_quoted_words_are_marked() -> None:
    tokens = tokenize("logs \"connection reset\" and 'disk full' on auth")
    quoted = [t.lower for t in tokens if t.quoted]
    assert quoted == ["connection", "reset", "disk", "full"]
    assert not any(t.quoted for t in tokens if t.lower in {"logs", "and", "on", "auth"})


def test_apostrophes_inside_words_do_not_open_quotes() -> None:
    tokens = tokenize("what's checkout's p99")
    assert [t.lower for t in tokens] == ["whats", "checkouts", "p99"]
    assert not any(t.quoted for t in tokens)
