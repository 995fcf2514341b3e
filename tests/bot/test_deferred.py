"""A slow answer follows by the REST API naming its question ("checkout cpu: Prometheus timed out …")."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from bot.web.webhook import labelled, question_label
from intents import Parser
from tests.bot.appserver import ALICE, TWILIO, bodies, message_of, mocked_twilio, serve, settings_for, until
from tests.servers import FaultServer

pytestmark = pytest.mark.anyio


async def test_a_hung_prometheus_answer_follows_naming_its_question(tmp_path: Path) -> None:
    hung = FaultServer()
    hung.hang(10)
    try:
        config = f"reply_budget_s: 0.2\nmonitors: {{prometheus: {{url: '{hung.url}', timeout_s: 0.5}}}}\n"
        with respx.mock(assert_all_called=False) as mock:
            twilio = mocked_twilio(mock)
            async with serve(settings_for(tmp_path, config, TWILIO_API_BASE_URL=TWILIO)) as bot:
                assert message_of(await bot.text("cpu on checkout")).startswith("Working on it")
                await until(lambda: twilio.called, 10)
                await bot.webhook.drain()
        [sent] = bodies(twilio)
        assert sent["To"] == ALICE and sent["Body"] == "checkout cpu: Prometheus timed out after 0.5 s"
    finally:
        hung.stop()


@pytest.mark.parametrize(
    "text, label",
    [
        ("cpu on checkout", "checkout cpu"),
        ("chekout latncy last 6h", "checkout latency 6h"),
        ("graph latency checkout 6h", "checkout latency graph 6h"),
        ("logs timeout service=payment level=error range=30m", "payment error logs 30m"),
        ("is the database responding?", "database health"),
        ("db conns?", "db connections"),
        ("status", "status"),
        ('metrics rate(x{a="b"}[5m])', "query"),
        ("silence HighCPU 1h", "silence HighCPU 1h"),
    ],
)
def test_question_labels(parser: Parser, text: str, label: str) -> None:
    assert question_label(parser.parse(text)) == label


@pytest.mark.parametrize(
    "text, sent",
    [
        ("Prometheus: timed out after 4 s", "checkout cpu: Prometheus timed out after 4 s"),
        ("Datadog: access denied (HTTP 403), check credentials", "checkout cpu: Datadog access denied (HTTP 403), check credentials"),
        ("checkout cpu: 42.1%", "checkout cpu: 42.1%"),  # already names it
        ("No metrics backend is configured.", "checkout cpu: No metrics backend is configured."),
    ],
)  # fmt: skip
def test_labelled_answers(text: str, sent: str) -> None:
    assert labelled("checkout cpu", text) == sent
