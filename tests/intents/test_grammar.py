from __future__ import annotations

import pytest

from intents import Grammar
from intents.grammar import OUT_OF_SCOPE, SMALLTALK

MINIMAL = """
command_weight: 3.0
lead_weight: 1.0
solo_weight: 4.0
min_score: 2.0
margin: 0.5
shorthand: {u: you, idk: i dont know}
lead_skip: [pls, can, you]
lexicon:
  HEALTHWORD: [up, healthy]
  ACTION: [restart]
intents:
  logs:
    commands: [logs]
    words: {lines: 1.5}
    phrases: {look for: 2.5}
    features: {LEVEL: 2.5}
  health:
    commands: [health]
    features: {SYSTEM: 2.0, SYSTEM+HEALTHWORD: 1.5}
  more:
    solo: [more]
"""


@pytest.fixture
def grammar() -> Grammar:
    return Grammar.from_yaml(MINIMAL)


def test_commands_phrases_and_features_add_up(grammar: Grammar) -> None:
    scores = {s.intent: s for s in grammar.score(["logs", "look", "for", "lines"], {"LEVEL"})}
    assert scores["logs"].total == 3.0 + 1.0 + 2.5 + 1.5 + 2.5  # command, lead, phrase, word, feature
    assert scores["logs"].explicit


def test_pair_features_need_both(grammar: Grammar) -> None:
    alone = {s.intent: s.total for s in grammar.score(["db"], {"SYSTEM"})}
    both = {s.intent: s.total for s in grammar.score(["db", "up"], {"SYSTEM", "HEALTHWORD"})}
    assert alone["health"] == 2.0
    assert both["health"] == 3.5
    assert not next(s for s in grammar.score(["db"], {"SYSTEM"}) if s.intent == "health").explicit


def test_solo_words_count_only_alone(grammar: Grammar) -> None:
    assert grammar.score(["more"], set())[0].total == 4.0 + 1.0  # solo, and it leads with its own name
    assert next(s for s in grammar.score(["errors", "more"], set()) if s.intent == "more").total == 0.0


def test_phrases_match_whole_words(grammar: Grammar) -> None:
    assert grammar.score(["outlook", "for"], set())[0].total == 0.0


def test_shorthand_and_lead(grammar: Grammar) -> None:
    assert grammar.shorthand == {"u": "you", "idk": "i dont know"}
    assert grammar.lead_word(["pls", "can", "you", "restart", "auth"]) == "restart"
    assert grammar.only({"HEALTHWORD"}, ["up", "healthy"])
    assert not grammar.only({"HEALTHWORD"}, ["up", "now"])


def test_unquoted_yaml_booleans_are_refused() -> None:
    with pytest.raises(ValueError, match="quote it"):
        Grammar.from_yaml(MINIMAL.replace("ACTION: [restart]", "ACTION: [restart, yes]"))


def test_the_shipped_grammar_loads_and_names_every_intent() -> None:
    grammar = Grammar.default()
    from intents import Intent

    named = set(grammar.intents) - {OUT_OF_SCOPE, SMALLTALK}
    assert named == {i.value for i in Intent} - {"unknown"}
    assert grammar.min_score > 0 and grammar.margin > 0
    assert "payment" not in grammar.vocabulary()  # services come from the catalog, not the grammar
