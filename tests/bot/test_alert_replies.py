"""Replies about an alert (ack, silence, its confirmation, undo, "which one?") show its name and labels
cleaned exactly as alert texts are: a link inside an alert name or label never reaches a phone."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.texts import alert_name, format_firing, label_value, numbered
from intents import Context, Parser
from tests.bot.test_confirmations import USER, Phone

LINKY = AlertEvent(
    fingerprint="fp-linky",
    name="DiskFull see https://runbooks.internal.example/disk?token=s3cret",
    labels={
        "alertname": "DiskFull see https://runbooks.internal.example/disk?token=s3cret",
        "instance": "http://db1.internal.example:9100/metrics",
        "service": "checkout [dashboard](https://grafana.internal.example/d/abc)",
        "runbook": "https://wiki.internal.example/runbook",
        "severity": "critical",
    },
    status="firing",
    severity=Severity.CRITICAL,
    starts_at=datetime(2026, 11, 21, 23, 0, tzinfo=UTC),
)
LINK = re.compile(r"https?:|://|s3cret|/d/abc|/metrics|/runbook|/disk", re.IGNORECASE)
"""A link, or what only a link carries (a path, a query). A URL label shows as its host, as in alert texts."""
OTHER = AlertEvent("fp-other", "HighCPU", {"alertname": "HighCPU", "service": "auth"}, "firing")


def test_the_helpers_drop_links_as_alert_texts_do() -> None:
    assert alert_name(LINKY.name) == "DiskFull see"
    assert label_value(LINKY.labels["instance"]) == "db1.internal.example:9100"
    assert label_value(LINKY.labels["service"]) == "checkout dashboard"
    assert label_value(LINKY.labels["runbook"]) == "wiki.internal.example"
    assert label_value("") == "" and alert_name("https://x.example/y") == "(unnamed)"
    text = format_firing(Notification("alertmanager", "g", "firing", (LINKY,)), numbered([LINKY]),
                         datetime(2026, 11, 21, 23, 5, tzinfo=UTC))  # fmt: skip
    assert "DiskFull see" in text and not re.search(r"https?:|/metrics|s3cret", text)


@pytest.fixture
def phone(parser: Parser) -> Phone:
    phone = Phone(parser)

    async def notified() -> None:  # as the notifier leaves it: the alert open, numbered 1 for this person
        await phone.services.alerts.update(Notification("alertmanager", "g", "firing", (LINKY, OTHER)))
        await phone.conversation.store.put(USER, Context(alerts=(LINKY.fingerprint, OTHER.fingerprint)))

    asyncio.run(notified())
    return phone


def test_ack_silence_confirm_and_undo_replies_carry_no_link(phone: Phone) -> None:
    [acked] = phone("ack 1")
    assert acked.startswith("Acked DiskFull see{")
    [undone] = phone("undo")
    [question] = phone("silence 1 1h")
    code = question.rsplit(" ", 1)[1]
    [silenced] = phone(f"y {code}")
    [lifted] = phone("undo")
    [question_again] = phone("silence 1 2h")
    [cancelled] = phone("no")
    replies = [acked, undone, question, silenced, lifted, question_again, cancelled]
    for reply in replies:
        assert not LINK.search(reply), reply
    assert question.startswith("Silence DiskFull see{instance=db1.internal.example:9100,runbook=wiki.internal.example")
    assert silenced.startswith("Silenced DiskFull see{") and cancelled.startswith("OK, DiskFull see{")


def test_which_one_lists_cleaned_names(phone: Phone) -> None:
    [which] = phone("ack")
    assert which == "Which one? Reply ack N:\n1) DiskFull see checkout dashboard\n2) HighCPU auth"
