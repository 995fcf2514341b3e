from __future__ import annotations

import pytest

from intents import Parser
from intents.fuzzy import Corrector, max_distance


@pytest.mark.parametrize(
    ("typo", "word"),
    [("paymnt", "payment"), ("stauts", "status"), ("staus", "status"), ("latncy", "latency"), ("latnecy", "latency"),
     ("chekcout", "checkout"), ("chekout", "checkout"), ("memroy", "memory"), ("inventry", "inventory"),
     ("warnngs", "warnings"), ("silnce", "silence"), ("acknowlege", "acknowledge"), ("databse", "database"),
     ("alrets", "alerts"), ("grpah", "graph"), ("metircs", "metrics"), ("unsubscibe", "unsubscribe"),
     ("statussss", "status"), ("helth", "health")],
)  # fmt: skip
def test_typos_are_corrected(parser: Parser, typo: str, word: str) -> None:
    correction = parser.corrector.correct(typo)
    assert correction is not None and correction.corrected == word


@pytest.mark.parametrize(
    "word",
    ["card", "author", "poll", "app", "login", "logins", "orders", "billing", "mobile", "checking", "locks",
     "redis", "kafka", "pasta", "db", "mem", "cpu", "payment", "timeout"],
)  # fmt: skip
def test_real_and_short_words_stay(parser: Parser, word: str) -> None:
    assert parser.corrector.correct(word) is None


def test_distance_grows_with_length() -> None:
    assert [max_distance(n) for n in (2, 3, 4, 6, 7, 10, 11)] == [0, 0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize(
    ("typo", "word"), [("akc", "ack"), ("wbe", "web"), ("lantecy", "latency"), ("getway", "gateway"), ("yse", "yes")]
)
def test_swaps_and_near_command_names(parser: Parser, typo: str, word: str) -> None:
    correction = parser.corrector.correct(typo)
    assert correction is not None and correction.corrected == word


@pytest.mark.parametrize("word", ["sigterm", "logins", "cup", "ram1", "abc"])
def test_far_lookalikes_stay(parser: Parser, word: str) -> None:
    assert parser.corrector.correct(word) is None


def test_common_word_guard_is_injectable() -> None:
    corrector = Corrector(["cart", "payment"], is_common=lambda word: word == "carts")
    assert corrector.correct("cartt") is not None
    assert corrector.correct("carts") is None
    assert corrector.correct("paymnt") is not None


def test_ambiguous_typo_prefers_command_names() -> None:
    corrector = Corrector(["stats", "status"], is_common=lambda word: False, preferred=["status"])
    correction = corrector.correct("staus")
    assert correction is not None and correction.corrected == "status"


@pytest.mark.parametrize(
    ("abbreviation", "word"),
    [("pymnt", "payment"), ("chkout", "checkout"), ("chckout", "checkout"), ("ltncy", "latency"),
     ("mmry", "memory"), ("stts", "status"), ("invntry", "inventory"), ("hlth", "health"),
     ("srch", "search"), ("mtrcs", "metrics"), ("cnnctions", "connections"), ("wrnings", "warnings"),
     ("grph", "graph"), ("slnce", "silence"), ("untl", "until"), ("dsk", "disk"), ("lgs", "logs")],
)  # fmt: skip
def test_vowels_dropped_as_people_text(parser: Parser, abbreviation: str, word: str) -> None:
    correction = parser.corrector.correct(abbreviation)
    assert correction is not None and correction.corrected == word


@pytest.mark.parametrize(
    ("doubled", "word"),
    [("paymment", "payment"), ("lattency", "latency"), ("checkkout", "checkout"), ("apii", "api"),
     ("authh", "auth"), ("memmory", "memory")],
)  # fmt: skip
def test_doubled_letters(parser: Parser, doubled: str, word: str) -> None:
    correction = parser.corrector.correct(doubled)
    assert correction is not None and correction.corrected == word


def test_abbreviations_need_a_dropped_vowel_and_one_answer() -> None:
    corrector = Corrector([], is_common=lambda word: False, names=["last", "list", "payment", "pymnta"])
    assert corrector.correct("lst") is None  # last or list: no answer beats a wrong one
    assert corrector.correct("pymnt") is not None
    assert Corrector([], lambda word: False, names=["cart"]).correct("crt") is not None
    assert Corrector([], lambda word: False, names=["start"]).correct("sart") is None  # a consonant dropped
