"""Follow-ups: conversations as tables, each turn's text and the command it should become."""

from __future__ import annotations

import pytest

from intents import Context, Intent, Parse, Parser, remember
from intents.followup import carried, merge

CONVERSATIONS = {
    "contract-example": [
        ("logs service=payment level=error", "logs service=payment level=error", "strict"),
        ("what about checkout?", "logs service=checkout level=error", "context"),
        ("and the last 6 hours", "logs service=checkout level=error range=6h", "context"),
        ("same for auth", "logs service=auth level=error range=6h", "context"),
        ("and warnings?", "logs service=auth level=warn range=6h", "context"),
    ],
    "metrics-then-graph": [
        ("how hot is the api cpu", "metrics cpu service=api", "nl"),
        ("now show latency", "metrics latency service=api", "context"),
        ("graph that", "graph latency service=api", "context"),
        ("past 3 hours", "graph latency service=api range=3h", "context"),
        ("what about disk?", "graph disk service=api range=3h", "context"),
    ],
    "errors-then-chart": [
        ("any payment errors in the last hour?", "logs service=payment level=error range=1h", "nl"),
        ("chart it", "graph error_rate service=payment range=1h", "context"),
    ],
    "repeat": [
        ("cpu on cart 30m", "metrics cpu service=cart range=30m", "nl"),
        ("again", "metrics cpu service=cart range=30m", "context"),
    ],
    "explicit-command-does-not-inherit": [
        ("logs timeout service=payment level=error", "logs timeout service=payment level=error", "strict"),
        ("logs for auth", "logs service=auth", "nl"),
    ],
    "reset-forgets": [
        ("latency for payment", "metrics latency service=payment", "nl"),
        ("reset", "reset", "strict"),
        ("what about checkout?", "", "nl"),
    ],
    "alert-it": [
        ("ack 2", "ack 2", "strict"),
        ("silence it for 1h", "silence 2 1h", "context"),
    ],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_conversation(parser: Parser, name: str) -> None:
    context = Context()
    for text, command, source in CONVERSATIONS[name]:
        parse = parser.parse(text, context)
        assert (parse.command, parse.source.value) == (command, source), text
        context = remember(context, parse)


def test_yes_runs_the_suggestion(parser: Parser) -> None:
    context = Context()
    first = parser.parse("checkout?", context)
    assert first.intent is Intent.UNKNOWN and first.suggestion
    context = remember(context, first)
    assert context.suggestion == first.suggestion
    second = parser.parse("Y", context)
    assert second.command == first.suggestion
    assert second.source.value == "context"


def test_bare_yes_confirms_the_pending_code(parser: Parser) -> None:
    context = Context(pending_code="4821")
    assert parser.parse("yes", context).slots == {"code": "4821"}
    assert parser.parse("4821", context).slots == {"code": "4821"}
    assert parser.parse("Y 4821", Context()).slots == {"code": "4821"}


def test_bare_yes_without_a_question_is_a_confirmation_without_code(parser: Parser) -> None:
    parse = parser.parse("yes", Context())
    assert parse.intent is Intent.CONFIRM and "code" not in parse.slots
    assert parser.parse("ok", Context()).intent is Intent.UNKNOWN


def test_ack_with_one_alert_in_context(parser: Parser) -> None:
    assert parser.parse("ack", Context(alerts=("HighCPU",))).slots == {"alert": "1"}
    many = parser.parse("ack", Context(alerts=("HighCPU", "DiskFull")))
    assert many.intent is Intent.UNKNOWN and many.suggestion == "alerts"


def test_carried_slots_between_commands() -> None:
    assert carried(Intent.LOGS, Intent.LOGS) == {"terms", "service", "level", "range_s"}
    assert carried(Intent.METRICS, Intent.GRAPH) == {"metric", "service", "range_s"}
    assert carried(Intent.LOGS, Intent.METRICS) == {"service", "range_s"}
    assert carried(Intent.ALERTS, Intent.METRICS) == frozenset()


def test_merge_keeps_new_slots_and_reports_what_it_took() -> None:
    context = Context(Intent.LOGS, {"service": "payment", "level": "error", "terms": ("timeout",), "range_s": 60})
    slots, used = merge(context, Intent.LOGS, {"service": "auth", "terms": ()})
    assert slots == {"service": "auth", "level": "error", "terms": ("timeout",), "range_s": 60}
    assert set(used) == {"level", "terms", "range_s"}


def test_remember() -> None:
    logs = Parse(Intent.LOGS, {"service": "web"}, "logs service=web")
    context = remember(Context(), logs)
    assert context.intent is Intent.LOGS and context.slots == {"service": "web"}
    unknown = Parse(Intent.UNKNOWN, {"suggestion": "status"})
    assert remember(context, unknown).suggestion == "status"
    assert remember(context, unknown).intent is Intent.LOGS
    assert remember(context, Parse(Intent.RESET)) == Context()
    assert remember(Context(pending_code="1"), Parse(Intent.HELP)).pending_code is None
