"""Grafana alerting end to end: Grafana's webhook in, texts out (Twilio's REST API mocked with respx),
"silence 1 1h" and "Y <code>" by SMS, and the silence made in Grafana's own Alertmanager API (mocked with
respx: Debian ships no Grafana) with the alert's labels and the service-account token; "undo" and
"unsilence" expire it there. With a real Alertmanager configured too, each alert is silenced where it
came from."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from monitors.grafana import API
from tests.bot.appserver import (
    ALICE,
    BOB,
    TWILIO,
    Running,
    bodies,
    message_of,
    mocked_twilio,
    serve,
    settings_for,
)
from tests.monitors.servers_alertmanager import AlertmanagerServer, alertmanager, webhook_receiver
from tests.servers import free_port

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures"
GF = FIXTURES / "grafana"
GRAFANA = "http://grafana.test"
GRAFANA_TOKEN = "glsa_" + "t" * 32 + "_5e6f7a8b"
HOOK = "hook-" + "g" * 27
SILENCE_ID = "eafcacf6-632a-4244-809a-a3e4013262fc"
CPU_EU = {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"}


def grafana_api(mock: respx.MockRouter) -> dict[str, respx.Route]:
    """Grafana's API as its docs and source answer: health, the (empty) alert list, silences in and out."""
    json_type = {"content-type": "application/json"}
    return {
        "health": mock.get(f"{GRAFANA}/api/health").mock(
            return_value=httpx.Response(200, content=(GF / "api_health_response.json").read_bytes(), headers=json_type)
        ),
        "alerts": mock.get(f"{GRAFANA}{API}/alerts").mock(return_value=httpx.Response(200, json=[])),
        "create": mock.post(f"{GRAFANA}{API}/silences").mock(
            return_value=httpx.Response(
                202, content=(GF / "silences_post_response.json").read_bytes(), headers=json_type
            )
        ),
        "expire": mock.delete(f"{GRAFANA}{API}/silence/{SILENCE_ID}").mock(
            return_value=httpx.Response(200, json={"message": "silence deleted"})
        ),
    }


@contextlib.asynccontextmanager
async def with_alertmanager(tmp_path: Path) -> AsyncIterator[tuple[Running, AlertmanagerServer]]:
    """The bot with both a real Alertmanager (posting to its webhook) and Grafana (respx) configured."""
    am_port = free_port()
    config = (f"monitors: {{alertmanager: {{url: 'http://127.0.0.1:{am_port}'}}, grafana: {{url: '{GRAFANA}'}}}}\n"
              "rate_burst: 30\n")  # fmt: skip
    settings = settings_for(tmp_path, config, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK,
                            GRAFANA_TOKEN=GRAFANA_TOKEN)  # fmt: skip
    (tmp_path / "am").mkdir()
    async with serve(settings) as bot:
        receiver = webhook_receiver(f"{bot.url}/webhooks/alertmanager", token=HOOK)
        with alertmanager(tmp_path / "am", receiver, port=am_port) as am:
            yield bot, am


async def test_a_grafana_alert_is_texted_silenced_in_grafana_and_lifted(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        api = grafana_api(mock)
        settings = settings_for(tmp_path, f"monitors: {{grafana: {{url: '{GRAFANA}'}}}}\nrate_burst: 20\n",
                                TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK, GRAFANA_TOKEN=GRAFANA_TOKEN)  # fmt: skip
        async with serve(settings) as bot:
            started = time.monotonic()
            response = await bot.client.post(f"{bot.url}/webhooks/grafana", content=(GF / "webhook_firing.json").read_bytes(),
                                             headers={"Authorization": f"Bearer {HOOK}"})  # fmt: skip
            assert response.status_code == 202
            await bot.app.state.alerts.drain()
            assert time.monotonic() - started < 3.0
            texts = {t["To"]: t["Body"] for t in bodies(twilio)}
            assert set(texts) == {ALICE, BOB}
            assert texts[ALICE].startswith("FIRING 2") and "1) High CPU usage" in texts[ALICE]
            assert "2) High memory usage" in texts[ALICE] and texts[ALICE].endswith("Reply ack N, silence N 1h")
            assert "Reply" not in texts[BOB]
            for text in texts.values():  # silenceURL, generatorURL, the runbook link: none of them
                assert "://" not in text and "grafana.org" not in text and "myrunbook" not in text

            question = message_of(await bot.text("silence 1 1h"))
            assert question.startswith("Silence High CPU usage{team=blue,zone=eu-1} for 1h? Reply Y ")
            assert not api["create"].called
            code = question.rsplit(" ", 1)[1]
            done = message_of(await bot.text(f"Y {code}"))
            assert done.startswith("Silenced High CPU usage{team=blue,zone=eu-1} for 1h (silence eafcacf6)")
            request = api["create"].calls.last.request
            assert request.headers["Authorization"] == f"Bearer {GRAFANA_TOKEN}"
            silence = json.loads(request.content)
            assert {m["name"]: m["value"] for m in silence["matchers"]} == CPU_EU
            assert all(m["isEqual"] and not m["isRegex"] for m in silence["matchers"])
            assert (silence["createdBy"], silence["comment"]) == ("alice", "silence 1 1h")

            assert message_of(await bot.text("undo")) == "Silence of High CPU usage{team=blue,zone=eu-1} lifted."
            assert api["expire"].call_count == 1
            assert message_of(await bot.text(f"unsilence {SILENCE_ID}")) == "Silence eafcacf6 ended."
            assert api["expire"].call_count == 2
            assert message_of(await bot.text("silence 1 1h", number=BOB)).startswith("Only operators")
            health = message_of(await bot.text("health grafana"))
            assert "Grafana" in health and "ready" in health
        assert GRAFANA_TOKEN not in "".join(t["Body"] for t in bodies(twilio))


async def test_a_resolved_grafana_alert_is_texted_once_and_a_late_firing_is_dropped(tmp_path: Path) -> None:
    resolved = json.loads((GF / "webhook_resolved.json").read_bytes())
    firing = json.loads(json.dumps(resolved))
    firing["status"] = "firing"
    firing["alerts"][0].update(status="firing", endsAt="0001-01-01T00:00:00Z")
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        settings = settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK)
        async with serve(settings) as bot:
            url, auth = f"{bot.url}/webhooks/grafana", {"Authorization": f"Bearer {HOOK}"}

            async def deliver(*payloads: dict[str, Any]) -> list[str]:
                before = len(twilio.calls)
                for payload in payloads:
                    assert (await bot.client.post(url, json=payload, headers=auth)).status_code == 202
                    await bot.app.state.alerts.drain()
                return [t["Body"].split()[0] for t in bodies(twilio)[before:]]

            assert await deliver(firing) == ["FIRING", "FIRING"]
            assert await deliver(resolved, resolved) == ["RESOLVED:", "RESOLVED:"]  # the retry: once
            for payload in (firing, resolved):  # another alert, whose resolution overtakes its firing
                payload["alerts"][0]["fingerprint"] = "0123456789abcdef"
            assert await deliver(resolved, firing) == []  # the late firing is old news


@pytest.mark.servers
async def test_with_alertmanager_too_each_alert_is_silenced_where_it_came_from(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        api = grafana_api(mock)
        async with with_alertmanager(tmp_path) as (bot, am):

            async def silence(reference: str) -> str:
                question = message_of(await bot.text(f"silence {reference} 1h"))
                assert question.startswith("Silence "), question
                return message_of(await bot.text(f"Y {question.rsplit(' ', 1)[1]}"))

            def active() -> list[dict[str, Any]]:
                return [s for s in am.call("GET", "/api/v2/silences") if s["status"]["state"] == "active"]

            response = await bot.client.post(f"{bot.url}/webhooks/grafana",
                                                 content=(GF / "webhook_firing.json").read_bytes(),
                                                 headers={"Authorization": f"Bearer {HOOK}"})  # fmt: skip
            assert response.status_code == 202
            await bot.app.state.alerts.drain()
            assert (await silence("1")).startswith("Silenced High CPU usage{team=blue,zone=eu-1} for 1h")
            assert api["create"].call_count == 1 and active() == []  # made in Grafana, not in Alertmanager

            am.fire({"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"})
            deadline = time.monotonic() + 10
            while len(bodies(twilio)) < 4 and time.monotonic() < deadline:
                await bot.app.state.alerts.drain()
                await asyncio.sleep(0.05)
            assert (await silence("DiskFull")).startswith("Silenced DiskFull{instance=db1:9100} for 1h")
            assert api["create"].call_count == 1 and len(active()) == 1  # this one in Alertmanager

            # A Grafana silence's id, given alone: Alertmanager does not know it, Grafana ends it.
            assert message_of(await bot.text(f"unsilence {SILENCE_ID}")) == "Silence eafcacf6 ended."
            assert api["expire"].call_count == 1 and len(active()) == 1


@pytest.mark.servers
async def test_alerts_status_and_replies_see_both_alertmanager_and_grafana(tmp_path: Path) -> None:
    """One pager, two alerting backends: `alerts` numbers both lists together, `status` counts both, a
    Grafana alert the bot was never told about is silenced in Grafana by its number, and a Grafana that
    fails leaves Alertmanager's alerts listed under one line saying so."""
    grafana_alert = json.loads((FIXTURES / "alertmanager" / "api_v2_alerts_get.json").read_bytes())[0]
    grafana_alert.update(fingerprint="5f1c2d3e4a5b6c7d", startsAt="2026-11-21T23:00:00.000Z",
                         labels={**CPU_EU, "__alert_rule_uid__": "dd2f0260", "grafana_folder": "device"},
                         annotations={"summary": "CPU above 90% on eu-1"})  # fmt: skip
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        api = grafana_api(mock)
        api["alerts"].mock(return_value=httpx.Response(200, json=[grafana_alert]))
        async with with_alertmanager(tmp_path) as (bot, am):
            am.fire({"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"})
            deadline = time.monotonic() + 10
            while len(bodies(twilio)) < 2 and time.monotonic() < deadline:  # its text to Alice and Bob
                await bot.app.state.alerts.drain()
                await asyncio.sleep(0.05)

            listing = message_of(await bot.text("alerts")).splitlines()
            assert listing[0] == "2 firing:"
            assert listing[1].startswith("1) DiskFull db1") and listing[2].startswith("2) High CPU usage")
            status = message_of(await bot.text("status"))
            assert "2 firing: DiskFull, High CPU usage" in status

            question = message_of(await bot.text("silence 2 1h"))
            assert question.startswith("Silence High CPU usage{"), question
            done = message_of(await bot.text(f"Y {question.rsplit(' ', 1)[1]}"))
            assert done.startswith("Silenced High CPU usage{"), done
            silence = json.loads(api["create"].calls.last.request.content)
            assert {m["name"]: m["value"] for m in silence["matchers"]}.items() >= CPU_EU.items()
            assert [s for s in am.call("GET", "/api/v2/silences") if s["status"]["state"] == "active"] == []

            api["alerts"].mock(return_value=httpx.Response(500, json={"message": "internal server error"}))
            listing = message_of(await bot.text("alerts")).splitlines()
            assert listing[0].startswith("Grafana") and "DiskFull" not in listing[0]
            assert listing[1] == "1 firing:" and listing[2].startswith("1) DiskFull db1")
            assert "High CPU" not in "\n".join(listing)
            # "ack" of a name only Grafana could know: the failure is said, not "no open alert".
            reply = message_of(await bot.text("ack Latency"))
            assert reply.startswith("Grafana"), reply
