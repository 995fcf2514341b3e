"""Alerting end to end with real servers: an alert posted to a real Alertmanager reaches a phone
(Twilio's REST API mocked with respx), and replies to that text act on the real Alertmanager."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import respx

from tests.bot.appserver import ALICE, BOB, Running, message_of, serve, settings_for
from tests.monitors.servers_alertmanager import AlertmanagerServer, alertmanager, webhook_receiver
from tests.servers import Exporter, free_port, prometheus

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
TWILIO = "http://twilio.test"
SID = "AC" + "0" * 32
HOOK_TOKEN = "hook-" + "x" * 27
FIXTURES = Path(__file__).parent.parent / "fixtures"


def resolved_version(path: Path) -> bytes:
    """The recorded firing group with every alert resolved a minute after it started."""
    payload = json.loads(path.read_text())
    payload["status"] = "resolved"
    for alert in payload["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-21T23:20:00Z"
    return json.dumps(payload).encode()


@dataclass
class Setup:
    bot: Running
    am: AlertmanagerServer
    twilio: respx.Route

    def texts(self) -> list[dict[str, str]]:
        return [dict(httpx.QueryParams(call.request.content.decode())) for call in self.twilio.calls]

    async def wait_for_texts(self, count: int, timeout: float = 10.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.twilio.calls) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # let anything else in flight land
        return self.texts()


@asynccontextmanager
async def running(tmp: Path, config: str = "") -> AsyncIterator[Setup]:
    """The bot (uvicorn on loopback) and a real Alertmanager that notifies it, on ports chosen up front."""
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        twilio = mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages.json").mock(
            side_effect=lambda request: httpx.Response(
                201, json={"sid": f"SM{time.time_ns():032x}"[:34], "status": "queued"}
            )  # fmt: skip
        )
        am_port = free_port()
        settings = settings_for(tmp, f"monitors: {{alertmanager: {{url: 'http://127.0.0.1:{am_port}'}}}}\n{config}",
                                TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK_TOKEN)  # fmt: skip
        folder = tmp / "am"
        folder.mkdir(exist_ok=True)
        async with serve(settings) as bot:
            with alertmanager(
                folder, webhook_receiver(f"{bot.url}/webhooks/alertmanager", token=HOOK_TOKEN), port=am_port
            ) as am:
                yield Setup(bot, am, twilio)


async def test_an_alert_in_alertmanager_is_texted_and_acted_on_by_reply(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        started = time.monotonic()
        setup.am.fire(
            {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"}, summary="Disk 97% full"
        )
        texts = await setup.wait_for_texts(2)
        elapsed = time.monotonic() - started
        assert elapsed < 3.0
        by_number = {t["To"]: t["Body"] for t in texts}
        assert set(by_number) == {ALICE, BOB}
        assert by_number[ALICE].startswith("FIRING") and "DiskFull" in by_number[ALICE]
        assert "1) db1:9100" in by_number[ALICE] and "Reply ack N" in by_number[ALICE]
        assert "Reply ack" not in by_number[BOB]  # viewers are told, not asked to act

        question = message_of(await setup.bot.text("silence  1 for 1h pls, looking into it"))
        assert question.startswith("Silence DiskFull{instance=db1:9100} for 1h? Reply Y ")
        code = question.rsplit(" ", 1)[1]
        assert message_of(await setup.bot.text("Y 0000")).startswith("That code does not match")
        done = message_of(await setup.bot.text(f"Y {code}"))
        assert done.startswith("Silenced DiskFull{instance=db1:9100} for 1h (silence ")
        [silence] = [s for s in setup.am.call("GET", "/api/v2/silences") if s["status"]["state"] == "active"]
        assert {m["name"]: m["value"] for m in silence["matchers"]} == {
            "alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"}  # fmt: skip
        assert silence["createdBy"] == "alice" and silence["comment"] == "silence 1 for 1h pls, looking into it"
        assert all(m["isEqual"] and not m["isRegex"] for m in silence["matchers"])

        assert message_of(await setup.bot.text("undo")).startswith("Silence of DiskFull")
        states = {s["id"]: s["status"]["state"] for s in setup.am.call("GET", "/api/v2/silences")}
        assert states[silence["id"]] == "expired"


async def test_a_silence_is_tied_to_its_code_through_the_signed_webhook(tmp_path: Path) -> None:
    """ "no" withdraws it, another command drops it, a bare "yes" asks for the code: Alertmanager gets a
    silence only from "Y <code>" answering the question asked last."""
    async with running(tmp_path, "rate_burst: 50\n") as setup:
        setup.am.fire({"alertname": "HighCPU", "service": "checkout", "severity": "critical"})
        await setup.wait_for_texts(2)

        async def say(text: str) -> str:
            return message_of(await setup.bot.text(text))

        def silences() -> list[dict[str, object]]:
            return [s for s in setup.am.call("GET", "/api/v2/silences") if s["status"]["state"] == "active"]

        async def ask() -> str:
            question = await say("silence HighCPU 1h")
            assert question.startswith("Silence HighCPU{service=checkout} for 1h? Reply Y ")
            return question.rsplit(" ", 1)[1]

        await ask()
        assert await say("no") == "OK, HighCPU{service=checkout} not silenced."
        assert await say("yes") == "Nothing is waiting for confirmation."
        code = await ask()
        assert await say("reset") == "OK, HighCPU{service=checkout} not silenced. Starting fresh."
        assert await say(f"y {code}") == "Nothing is waiting for confirmation."
        code = await ask()
        assert not (await say("status")).startswith("OK")
        assert await say("confirm") == "Nothing is waiting for confirmation."
        assert await say(f"Y {code}") == "Nothing is waiting for confirmation."
        assert silences() == []
        code = await ask()
        assert await say("yes") == f"Reply Y {code} to confirm (the code makes sure it's the right alert)."
        assert silences() == []
        assert (await say(f"Y {code}")).startswith("Silenced HighCPU{service=checkout} for 1h (silence ")
        assert len(silences()) == 1


async def test_a_bare_ack_with_several_alerts_lists_the_choices(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        hooks = setup.bot.app.state.alerts
        auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
        firing = (FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes()
        await setup.bot.client.post(f"{setup.bot.url}/webhooks/alertmanager", content=firing, headers=auth)
        await hooks.drain()
        assert (
            message_of(await setup.bot.text("ack"))
            == "Which one? Reply ack N:\n1) DiskFull db1:9100\n2) DiskFull db2:9100"
        )
        assert message_of(await setup.bot.text("ack 2")).startswith("Acked DiskFull{instance=db2:9100,job=node}")


async def test_ack_stops_repeats_and_viewers_cannot_ack(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        setup.am.fire({"alertname": "HighCPU", "service": "checkout", "severity": "critical"})
        await setup.wait_for_texts(2)
        assert message_of(await setup.bot.text("ack 1", number=BOB)).startswith("Only operators")
        assert message_of(await setup.bot.text("ack 1")) == (
            "Acked HighCPU{service=checkout} for alice. Its repeats won't text again. (undo within 5 min)"
        )
        hooks = setup.bot.app.state.alerts
        payload = json.loads((FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_text())
        fingerprint = (await setup.bot.app.state.alerts.notifier.book.open_alerts())[0].event.fingerprint
        payload["alerts"] = [dict(payload["alerts"][0], fingerprint=fingerprint, labels={
            "alertname": "HighCPU", "service": "checkout", "severity": "critical"}, startsAt="2026-11-21T23:00:00Z")]  # fmt: skip
        before = len(setup.twilio.calls)
        response = await setup.bot.client.post(f"{setup.bot.url}/webhooks/alertmanager", json=payload,
                                               headers={"Authorization": f"Bearer {HOOK_TOKEN}"})  # fmt: skip
        assert response.status_code == 202
        await hooks.drain()
        assert len(setup.twilio.calls) == before  # an acknowledged alert's repeat texts nobody


async def test_bad_tokens_and_payloads_are_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        url = f"{setup.bot.url}/webhooks/alertmanager"
        body = (FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes()
        assert (await setup.bot.client.post(url, content=body)).status_code == 401
        assert (
            await setup.bot.client.post(url, content=body, headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
        bad = await setup.bot.client.post(url, content=b'{"version": "3"}', headers=auth)
        assert bad.status_code == 400 and bad.text.startswith("bad payload")
        assert (await setup.bot.client.post(url, content=b"\x00garbage", headers=auth)).status_code == 400
        dd = f"{setup.bot.url}/webhooks/datadog"
        assert (await setup.bot.client.post(dd, content=b"{}")).status_code == 401


async def test_duplicates_dropped_and_resolved_sent_once_shorter(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        hooks = setup.bot.app.state.alerts
        auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
        url = f"{setup.bot.url}/webhooks/alertmanager"
        firing = (FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes()
        resolved = resolved_version(FIXTURES / "alertmanager" / "webhook_v4_firing.json")
        for _ in range(3):
            assert (await setup.bot.client.post(url, content=firing, headers=auth)).status_code == 202
        await hooks.drain()
        assert len(setup.texts()) == 2  # one text per person for the group, not per delivery or alert
        for _ in range(2):
            await setup.bot.client.post(url, content=resolved, headers=auth)
        await hooks.drain()
        texts = setup.texts()
        assert len(texts) == 4
        assert texts[-1]["Body"].startswith("RESOLVED") and len(texts[-1]["Body"]) < len(texts[0]["Body"])


async def test_resolved_before_firing_sends_nothing_stale(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        hooks = setup.bot.app.state.alerts
        auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
        url = f"{setup.bot.url}/webhooks/alertmanager"
        await setup.bot.client.post(url, content=resolved_version(FIXTURES / "alertmanager" / "webhook_v4_firing.json"),
                                    headers=auth)  # fmt: skip
        await hooks.drain()
        await setup.bot.client.post(url, content=(FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes(),
                                    headers=auth)  # fmt: skip
        await hooks.drain()
        assert setup.texts() == []  # a late firing of an episode already resolved is not news


async def test_a_storm_stays_within_each_budget_and_history_keeps_everything(tmp_path: Path) -> None:
    async with running(tmp_path, "alert_budget_texts: 5\n") as setup:
        hooks = setup.bot.app.state.alerts
        auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
        url = f"{setup.bot.url}/webhooks/alertmanager"
        for n in range(500):
            payload = {"version": "4", "status": "firing", "receiver": "bot", "groupKey": f"storm-{n}",
                       "groupLabels": {"alertname": f"Storm{n % 7}"}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "", "truncatedAlerts": 0,
                       "alerts": [{"status": "firing", "labels": {"alertname": f"Storm{n % 7}", "n": str(n),
                                                                  "severity": "critical"},
                                   "annotations": {}, "startsAt": "2026-11-21T23:00:00Z",
                                   "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{n:016x}"}]}  # fmt: skip
            assert (await setup.bot.client.post(url, json=payload, headers=auth)).status_code == 202
        await hooks.drain()
        texts = setup.texts()
        for number in (ALICE, BOB):
            mine = [t["Body"] for t in texts if t["To"] == number]
            assert len(mine) == 5  # the budget, summary included
            assert len([m for m in mine if m.startswith("Alert storm:")]) == 1
            assert mine[-1].startswith("Alert storm:")  # after the texts it summarizes
        entries = await setup.bot.entries(limit=5000)
        assert len([e for e in entries if e.intent == "alert" and e.direction == "in"]) == 500


async def test_unsubscribed_numbers_get_no_alerts_even_after_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        assert (
            message_of(await setup.bot.text("UNSUBSCRIBE", number=BOB)) == ""
        )  # a carrier keyword: the carrier confirms
        assert message_of(await setup.bot.text("stop sending me alerts", number=BOB)).startswith("Unsubscribed")
    async with running(tmp_path) as setup:  # a new process over the same database
        setup.am.fire({"alertname": "HighLatency", "service": "api", "severity": "critical"})
        texts = await setup.wait_for_texts(1)
        assert [t["To"] for t in texts] == [ALICE]
        assert message_of(await setup.bot.text("subscribe", number=BOB)).startswith("Subscribed")


PROMETHEUS_RULES = """\
groups:
  - name: operator-e2e
    rules:
      - alert: KnownValueHigh
        expr: operator_test_known_value > 50
        for: 0s
        labels: {severity: critical}
        annotations: {summary: "known value is {{ $value }}"}
"""


async def test_a_prometheus_rule_fires_through_alertmanager_to_a_phone(tmp_path: Path) -> None:
    """The whole chain with real servers: exporter -> Prometheus rule -> Alertmanager -> bot -> SMS."""
    exporter = Exporter()
    exporter.known.labels("checkout").set(10)
    try:
        async with running(tmp_path) as setup:
            am_address = setup.am.url.removeprefix("http://")
            (tmp_path / "prom").mkdir()
            with prometheus(tmp_path / "prom", {"checkout": f"127.0.0.1:{exporter.port}"}, rules=PROMETHEUS_RULES,
                            alertmanager=am_address):  # fmt: skip
                exporter.known.labels("checkout").set(80)
                texts = await setup.wait_for_texts(2, timeout=30)
        assert sorted(t["To"] for t in texts) == [ALICE, BOB]
        assert all("KnownValueHigh" in t["Body"] and "known value is 80" in t["Body"] for t in texts)
    finally:
        exporter.stop()


async def test_after_a_restart_alerts_firing_in_alertmanager_can_be_acked(tmp_path: Path) -> None:
    """A fresh bot on in-memory state was never notified of what is firing: `alerts` lists it from
    Alertmanager, and `ack 1` / `ack <name>` adopt the alert into the alert store and ack it."""
    (tmp_path / "am").mkdir()
    with alertmanager(tmp_path / "am") as am:  # routes to nowhere: the bot hears of nothing
        am.fire({"alertname": "HighCPU", "service": "checkout", "severity": "critical"}, ago_s=600)
        am.fire({"alertname": "DiskFull", "instance": "db1:9100", "severity": "warning"}, ago_s=60)
        deadline = time.monotonic() + 10
        while len(am.call("GET", "/api/v2/alerts")) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        settings = settings_for(tmp_path, f"monitors: {{alertmanager: {{url: '{am.url}'}}}}\nrate_burst: 20\n")
        async with serve(settings) as bot:
            book = bot.app.state.alerts.notifier.book
            assert await book.open_alerts() == []
            listing = message_of(await bot.text("alerts"))
            number = next(line.split(")")[0] for line in listing.splitlines() if "DiskFull" in line)
            assert message_of(await bot.text(f"ack {number}")) == (
                "Acked DiskFull{instance=db1:9100} for alice. Its repeats won't text again. (undo within 5 min)"
            )
            assert message_of(await bot.text("ack HighCPU")) == (
                "Acked HighCPU{service=checkout} for alice. Its repeats won't text again. (undo within 5 min)"
            )
            acked = {a.event.name: a for a in await book.open_alerts()}
            assert {name: a.acked_by for name, a in acked.items()} == {"DiskFull": "alice", "HighCPU": "alice"}
            assert acked["HighCPU"].event.severity.name == "CRITICAL" and acked["HighCPU"].event.starts_at
            assert message_of(await bot.text("undo")).startswith("Ack of HighCPU")
            assert message_of(await bot.text("ack HighCPU")).startswith("Acked HighCPU")  # known now
            assert message_of(await bot.text("ack NoSuchAlert")).startswith("No open alert named NoSuchAlert")
