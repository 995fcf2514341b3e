"""Datadog's webhook, Twilio's status callbacks, and threshold rules evaluated inside the running bot
against a real Prometheus, each texting through a mocked Twilio REST API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import respx

from bot.settings import DEFAULT_METRICS
from tests.bot.appserver import ALICE, BOB, SID, TWILIO, bodies, mocked_twilio, serve, settings_for, sign, until
from tests.servers import Exporter, PrometheusServer

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
TOKEN = "hook-" + "y" * 27


async def test_datadog_webhook_with_the_shared_secret(tmp_path: Path) -> None:
    payload = {"id": "7001", "date": "1763767200000", "last_updated": "1763767200000", "event_type": "query_alert_monitor",
               "title": "[Triggered] High error rate on checkout", "body": "error rate above 5%",
               "alert_id": "9001", "alert_title": "High error rate on checkout", "alert_transition": "Triggered",
               "alert_type": "error", "alert_priority": "P1", "alert_scope": "service:checkout", "aggreg_key": "k1",
               "tags": "service:checkout"}  # fmt: skip
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        settings = settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=TOKEN)
        async with serve(settings) as bot:
            url = f"{bot.url}/webhooks/datadog"
            assert (await bot.client.post(url, json=payload, headers={"X-Operator-Secret": "wrong"})).status_code == 401
            response = await bot.client.post(url, json=payload, headers={"X-Operator-Secret": TOKEN})
            assert response.status_code == 202
            await bot.app.state.alerts.drain()
        texts = bodies(twilio)
    assert sorted(t["To"] for t in texts) == [ALICE, BOB]
    assert all("High error rate on checkout" in t["Body"] for t in texts)
    assert all(t["StatusCallback"] == "https://ops.example.com/twilio/status" for t in texts)


async def test_status_callbacks_are_signed_and_recorded(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        params = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "delivered", "To": ALICE, "AccountSid": SID}
        url = f"{bot.url}/twilio/status"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await bot.client.post(url, content=urlencode(params), headers=headers)).status_code == 403
        signed = {**headers, "X-Twilio-Signature": sign(params, path="/twilio/status")}
        assert (await bot.client.post(url, content=urlencode(params), headers=signed)).status_code == 204
        failed = {**params, "MessageStatus": "undelivered", "ErrorCode": "30003"}
        signed = {**headers, "X-Twilio-Signature": sign(failed, path="/twilio/status")}
        assert (await bot.client.post(url, content=urlencode(failed), headers=signed)).status_code == 204
        entries = await bot.entries()
    assert [(e.outcome, e.message_sid, e.detail) for e in entries] == [
        ("undelivered", "SM" + "e" * 32, "error 30003"), ("delivered", "SM" + "e" * 32, None)]  # fmt: skip
    assert all(e.number == "+1555***0001" for e in entries)


RULES = """\
rules:
  - name: KnownValueHigh
    expr: 'operator_test_known_value{service="checkout"}'
    op: ">"
    threshold: 50
    for: 0s
    cooldown: 1m
    severity: critical
    summary: "known value is {value}"
"""


async def test_rules_fire_and_resolve_inside_the_running_bot(tmp_path: Path,
                                                             watched: tuple[Exporter, PrometheusServer]) -> None:  # fmt: skip
    exporter, server = watched
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = f"monitors: {{prometheus: {{url: '{server.url}'}}}}\nrules_file: {rules}\nrules_interval_s: 0.5\n"
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        async with serve(settings_for(tmp_path, config, TWILIO_API_BASE_URL=TWILIO)):
            exporter.known.labels("checkout").set(80)
            await until(lambda: len(twilio.calls) >= 2, 15)
            firing = bodies(twilio)
            exporter.known.labels("checkout").set(10)
            await until(lambda: len(twilio.calls) >= 4, 15)
            everything = bodies(twilio)
    assert sorted(t["To"] for t in firing) == [ALICE, BOB]
    assert all("KnownValueHigh" in t["Body"] and "known value is 80" in t["Body"] for t in firing)
    assert all(t["Body"].startswith("RESOLVED") for t in everything[2:])


def test_rules_check_against_the_live_prometheus(tmp_path: Path, watched: tuple[Exporter, PrometheusServer]) -> None:
    exporter, server = watched
    exporter.known.labels("checkout").set(10)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = tmp_path / "operator.yaml"
    config.write_text(f"monitors: {{prometheus: {{url: '{server.url}'}}}}\n")
    operator = str(Path(sys.executable).with_name("operator"))
    result = subprocess.run([operator, "rules", "check", str(rules), "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "KnownValueHigh" in result.stdout and "10" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES.replace('op: ">"', 'op: "bigger"'))
    bad = subprocess.run([operator, "rules", "check", str(broken), "--config", str(config)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "KnownValueHigh" in bad.stderr and "op" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert DEFAULT_METRICS  # the built-in aliases are what rules' `metric:` refers to
