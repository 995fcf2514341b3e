"""On call end to end with real servers: an alert posted to a real Alertmanager pages the person on call
within a second (Twilio's REST API mocked with respx), the bot's own ticker escalates it on real time to a
call, a key press through the signed voice webhook silences it in Alertmanager and stops the paging, and
Alertmanager's resolution tells everyone paged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import respx

from tests.bot.appserver import ALICE, BOB, SID, TWILIO, Running, serve, settings_for, sign
from tests.monitors.servers_alertmanager import AlertmanagerServer, alertmanager, webhook_receiver
from tests.servers import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
HOOK = "hook-" + "w" * 27
FIXTURES = Path(__file__).parent.parent / "fixtures"
CAROL = "+15551230003"
CONFIG = f"""\
users:
  "{ALICE}": {{name: alice, role: operator, quiet_hours: "00:00-23:59", min_severity: critical}}
  "{BOB}": {{name: bob, role: viewer}}
  "{CAROL}": {{name: carol, role: operator}}
schedules:
  payments: {{members: [alice], shift: 1w, handoff: "2026-01-05 09:00", timezone: Europe/Berlin}}
escalation:
  default:
    - {{notify: payments, wait: 2s}}
    - {{call: payments, wait: 2s}}
    - {{notify: [carol, bob], wait: 1m}}
"""


@dataclass
class Setup:
    bot: Running
    am: AlertmanagerServer
    texts: respx.Route
    calls: respx.Route

    def sent(self) -> list[dict[str, str]]:
        return [dict(httpx.QueryParams(c.request.content.decode())) for c in self.texts.calls]

    async def wait(self, route: respx.Route, count: int, timeout: float = 10.0) -> float:
        """Seconds until `route` has been called `count` times."""
        started = time.monotonic()
        while len(route.calls) < count:
            assert time.monotonic() - started < timeout, f"{len(route.calls)} of {count} requests after {timeout} s"
            await asyncio.sleep(0.02)
        return time.monotonic() - started


@asynccontextmanager
async def running(tmp: Path) -> AsyncIterator[Setup]:
    created = json.loads((FIXTURES / "twilio" / "calls_create_response_docs_legacy.json").read_text())
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        texts = mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages.json").mock(
            side_effect=lambda request: httpx.Response(201, json={"sid": f"SM{time.time_ns():032x}"[:34],
                                                                   "status": "queued"}))  # fmt: skip
        calls = mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Calls.json").mock(
            return_value=httpx.Response(201, json=created)
        )
        am_port = free_port()
        settings = settings_for(tmp, f"monitors: {{alertmanager: {{url: 'http://127.0.0.1:{am_port}'}}}}\n{CONFIG}",
                                TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK)  # fmt: skip
        (tmp / "am").mkdir(exist_ok=True)
        async with serve(settings) as bot:
            receiver = webhook_receiver(f"{bot.url}/webhooks/alertmanager", token=HOOK)
            with alertmanager(tmp / "am", receiver, port=am_port) as am:
                yield Setup(bot, am, texts, calls)


async def signed(bot: Running, path: str, form: dict[str, str]) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(form, path=path)}
    return await bot.client.post(f"{bot.url}{path}", content=urlencode(form), headers=headers)


async def test_alertmanager_to_a_page_a_call_a_key_press_and_the_resolution(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        started = time.monotonic()
        setup.am.fire({"alertname": "PaymentsDown", "service": "payments", "severity": "warning"},
                      summary="checkout cannot charge cards")  # fmt: skip
        first = await setup.wait(setup.texts, 1)
        assert first < 3.0  # Alertmanager's group_wait is 0: the first page is the bot's own latency plus a tick of AM
        [page] = setup.sent()
        assert page["To"] == ALICE  # on call: quiet hours and the critical-only preference do not hold it back
        assert page["Body"].startswith("FIRING 1 warning: PaymentsDown") and "Reply ack N" in page["Body"]

        waited = await setup.wait(setup.calls, 1, timeout=10)
        assert 1.0 < time.monotonic() - started and waited < 6  # step 2 after its 2 s wait, by the ticker
        call = dict(httpx.QueryParams(setup.calls.calls[0].request.content.decode()))
        assert call["To"] == ALICE
        token = parse_qs(urlsplit(call["Url"]).query)["t"][0]
        answered = {"CallSid": "CA" + "1" * 32, "AccountSid": SID, "From": "+15550001111", "To": ALICE,
                    "CallStatus": "in-progress", "Direction": "outbound-api", "ApiVersion": "2010-04-01"}  # fmt: skip
        twiml = await signed(setup.bot, f"/twilio/voice?t={token}", answered)
        assert (
            "<Say>Operator page. Warning: PaymentsDown on payments. checkout cannot charge cards. Press 4" in twiml.text
        )
        pressed = await signed(setup.bot, f"/twilio/voice/gather?t={token}",
                               {**answered, "Digits": "6", "FinishedOnKey": "", "msg": "Gather End"})  # fmt: skip
        assert "Silenced for one hour and acknowledged. Paging stopped." in pressed.text
        [silence] = [s for s in setup.am.call("GET", "/api/v2/silences") if s["status"]["state"] == "active"]
        assert {m["name"]: m["value"] for m in silence["matchers"]}["alertname"] == "PaymentsDown"
        assert silence["createdBy"] == "alice"

        await asyncio.sleep(3)  # well past step 3's due time: nobody else is paged
        assert [t["To"] for t in setup.sent()] == [ALICE] and len(setup.calls.calls) == 1

        setup.am.clear()  # resolves it (Alertmanager sends resolutions of silenced alerts too)
        await setup.wait(setup.texts, 2, timeout=15)
        assert setup.sent()[-1] == {**setup.sent()[-1], "To": ALICE, "Body": "RESOLVED: PaymentsDown payments"}


async def test_nobody_acks_so_everyone_is_reached_in_turn(tmp_path: Path) -> None:
    async with running(tmp_path) as setup:
        setup.am.fire({"alertname": "QueueStuck", "service": "orders", "severity": "critical"})
        await setup.wait(setup.texts, 1)
        await setup.wait(setup.calls, 1)
        unanswered = {"CallSid": "CA" + "2" * 32, "AccountSid": SID, "From": "+15550001111", "To": ALICE,
                      "CallStatus": "busy", "CallDuration": "0", "Direction": "outbound-api"}  # fmt: skip
        url = dict(httpx.QueryParams(setup.calls.calls[0].request.content.decode()))["Url"]
        token = parse_qs(urlsplit(url).query)["t"][0]
        assert (await signed(setup.bot, f"/twilio/voice/status?t={token}", unanswered)).status_code == 204
        await setup.wait(setup.texts, 3, timeout=5)
        assert sorted(t["To"] for t in setup.sent()[1:]) == [BOB, CAROL]
        carol = next(t for t in setup.sent() if t["To"] == CAROL)
        assert carol["Body"].startswith("[escalated] FIRING 1 critical: QueueStuck")
        assert "Reply ack N" not in next(t for t in setup.sent() if t["To"] == BOB)["Body"]  # a viewer
