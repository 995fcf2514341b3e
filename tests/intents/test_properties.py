"""Properties over many generated texts: the parser never raises, and every output keeps the contract."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intents import Catalog, Intent, Parser, Source
from intents.catalog import ALERT_STATE_WORDS, DB_METRIC_WORDS, LEVEL_WORDS
from intents.strict import HELP_TOPICS, parse_strict
from tests.examples import examples

SLOTS = {
    "help": {"topic"}, "status": set(), "health": {"system"}, "metrics": {"metric", "service", "range_s"},
    "logs": {"terms", "service", "level", "range_s"}, "db": {"metric"}, "gateway": {"endpoint"},
    "alerts": {"state"}, "silence": {"alert", "duration_s", "until"}, "ack": {"alert"},
    "graph": {"metric", "service", "range_s"}, "more": set(), "subscribe": set(), "unsubscribe": set(),
    "reset": set(), "confirm": {"code"}, "undo": set(), "unsilence": {"id"}, "unknown": {"suggestion"},
    "oncall": {"schedule"}, "take": {"schedule", "duration_s"}, "escalate": {"alert"},
}  # fmt: skip
REQUIRED = {
    "metrics": {"metric"},
    "graph": {"metric"},
    "silence": {"alert"},
    "ack": {"alert"},
    "escalate": {"alert"},
    "unsilence": {"id"},
}

WORDS = [
    "status", "logs", "metrics", "graph", "silence", "ack", "alerts", "help", "db", "gateway", "health", "more",
    "undo", "reset", "y", "yes", "no", "subscribe", "stop", "cpu", "memory", "p99", "latency", "error", "errors",
    "warnings", "rate", "error rate", "checkout", "payment", "paymnt", "chekout", "auth", "web", "mobile-backend",
    "service=auth", "range=1h", "level=warn", "1h", "30m", "last", "6", "hours", "half an hour", "2 days", "#2",
    "alert 3", "HighCPU", "DiskFull", "for", "the", "any", "on", "in", "what", "about", "and", "same", "it",
    "that", "4821", "conns", "pools", "firing", "muted", "is", "up", "down", "prod", "fire", "restart", "thanks",
    "?", "!", ";", "&&", "$(whoami)", '"', "'", "{", "}", "(", ")", "[5m]", "rate(x[5m])", "|~", "🔥", "\u200b",
    "\x00", "ｓｔａｔｕｓ", "é", "what's", "how's", "r", "u", "pls", "search", "for", "timeout", "/api/v1",
    "oncall", "take", "escalate", "payments", "infra", "until", "9am", "14:30", "noon", "till", "forty", "five",
    "one hundred", "twenty-five", "and a half", "bump it", "who's on call", "pager", "\n", "|", "paymenterrors",
    "checkoutcpu", "pymnt", "ltncy", "service=$(id)", "until=09:00", "duration=4h", "alert number two",
]  # fmt: skip
texts = st.one_of(
    st.text(max_size=5000),
    st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=6).map(lambda w: " ".join(w) * 50),
)


def check_contract(output: dict[str, Any], catalog: Catalog) -> None:
    assert set(output) == {"intent", "slots", "command", "confidence", "source"}
    intent, slots = output["intent"], output["slots"]
    assert intent in SLOTS
    assert set(slots) <= SLOTS[intent], output
    assert REQUIRED.get(intent, set()) <= set(slots), output
    assert all(value is not None for value in slots.values())
    assert 0.0 <= output["confidence"] <= 1.0
    assert output["source"] in {s.value for s in Source}
    assert (output["command"] == "") == (intent == "unknown")
    for name in ("range_s", "duration_s"):
        if name in slots:
            assert isinstance(slots[name], int) and slots[name] > 0
    if intent == "silence":
        assert ("duration_s" in slots) != ("until" in slots), output  # one of them, never both
    if "until" in slots:
        assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", slots["until"]), output
    if "schedule" in slots:
        assert slots["schedule"] in catalog.schedules
    if "service" in slots:
        assert slots["service"] in catalog.services
    if "terms" in slots:
        assert all(isinstance(t, str) and t == t.lower() and t.strip() for t in slots["terms"])
    if "level" in slots:
        assert slots["level"] in LEVEL_WORDS
    if intent == "health" and "system" in slots:
        assert slots["system"] in catalog.systems
    if intent == "db" and "metric" in slots:
        assert slots["metric"] in DB_METRIC_WORDS
    if intent in ("metrics", "graph"):
        assert isinstance(slots["metric"], str) and slots["metric"]
    if "state" in slots:
        assert slots["state"] in ALERT_STATE_WORDS
    if "topic" in slots:
        assert slots["topic"] in set(HELP_TOPICS.values())
    if "code" in slots:
        assert slots["code"].isdigit()


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_any_text_parses_to_a_contract_output(parser: Parser, catalog: Catalog, text: str) -> None:
    parse = parser.parse(text)
    check_contract(parse.to_json(), catalog)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_the_command_texted_back_gives_the_same_parse(parser: Parser, catalog: Catalog, text: str) -> None:
    parse = parser.parse(text)
    if parse.intent is Intent.UNKNOWN:
        if parse.suggestion:  # a suggestion is itself a runnable strict command
            assert parse_strict(parse.suggestion, catalog) is not None, parse.suggestion
        return
    again = parse_strict(parse.command, catalog)
    assert again is not None, parse.command
    assert (again.intent, dict(again.slots)) == (parse.intent, _strict_form(parse)), parse.command


def _strict_form(parse: Any) -> dict[str, Any]:
    """Strict logs always carry `terms` (maybe empty); other slots are as parsed."""
    return dict(parse.slots)
