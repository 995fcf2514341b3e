"""Token rewrites before typo correction: split words joined, run-together words split, numbers composed."""

from __future__ import annotations

import pytest

from intents import Parser
from intents.tokens import tokenize


def rewritten(parser: Parser, text: str) -> tuple[list[str], list[tuple[str, str]]]:
    tokens, notes = parser.rewriter.rewrite(tokenize(text))
    return [t.lower for t in tokens], [(n.original, n.corrected) for n in notes]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("paymenterrors", ["payment", "errors"]),
        ("checkoutcpu", ["checkout", "cpu"]),
        ("searchwarnings", ["search", "warnings"]),
        ("inventorylogs", ["inventory", "logs"]),
        ("dbconnections", ["db", "connections"]),
        ("healthdatabase", ["health", "database"]),
        ("graph webcpu 6h", ["graph", "web", "cpu", "6h"]),
    ],
)
def test_run_together_words_split_when_both_halves_are_known(parser: Parser, text: str, words: list[str]) -> None:
    assert rewritten(parser, text)[0] == words


@pytest.mark.parametrize(
    "text",
    [
        "download",  # an English word ("down" + "load")
        "upload",
        "uptime",  # a known word of its own
        "postgresdown",  # a known alert name ("postgres" + "down")
        "apidown",
        "webhook",  # "hook" is no word of ours
        "checkouts",
        "PaymentErrors",  # not all lowercase: could be an alert name
        "cartoon",
    ],
)
def test_words_that_stay_whole(parser: Parser, text: str) -> None:
    assert rewritten(parser, text)[0] == [text.lower()]


@pytest.mark.parametrize(
    ("text", "words", "note"),
    [
        ("forty five minutes", ["45", "minutes"], ("forty five", "45")),
        ("for twenty-five mins", ["for", "25", "mins"], ("twenty-five", "25")),
        ("one hundred twenty minutes", ["120", "minutes"], ("one hundred twenty", "120")),
        ("a hundred and twenty seconds", ["120", "seconds"], ("a hundred and twenty", "120")),
        ("alert number twenty two", ["alert", "number", "22"], ("twenty two", "22")),
    ],
)
def test_spelt_out_numbers_become_one_token(parser: Parser, text: str, words: list[str], note: tuple[str, str]) -> None:
    got_words, notes = rewritten(parser, text)
    assert got_words == words
    assert note in notes


@pytest.mark.parametrize(
    "text", ["two hours", "the second one", "alert number two", "five forty minutes", "an hour and a half"]
)
def test_numbers_left_for_the_duration_rules(parser: Parser, text: str) -> None:
    assert rewritten(parser, text) == (text.split(), [])


def test_split_names_join_and_are_noted(parser: Parser) -> None:
    assert rewritten(parser, "cpu on check out") == (["cpu", "on", "checkout"], [("check out", "checkout")])
    assert rewritten(parser, "check out the logs")[0] == ["check", "out", "the", "logs"]


def test_quoted_words_are_never_rewritten(parser: Parser) -> None:
    assert rewritten(parser, 'logs "paymenterrors" "forty five"')[1] == []
