"""On call through the whole app (uvicorn on loopback, Twilio's REST API mocked with respx, its recorded
responses): an alert pages the person on call, `oncall`, `take` and `escalate` by text, the call's TwiML and
key presses through the signed voice webhook (an unsigned one refused), and delivery reports that move an
escalation on."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import respx

from bot.oncall.service import OnCall
from tests.bot.appserver import ALICE, BOB, SID, TWILIO, Running, message_of, serve, settings_for, sign, until

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures"
HOOK = "hook-" + "z" * 27
CAROL = "+15551230003"
FROM = "+15550001111"
ONCALL = f"""\
users:
  "{ALICE}": {{name: alice, role: operator}}
  "{BOB}": {{name: bob, role: viewer}}
  "{CAROL}": {{name: carol, role: operator, quiet_hours: "00:00-23:59"}}
schedules:
  payments: {{members: [carol, alice], shift: 1d, handoff: "2026-01-05 09:00", timezone: Europe/Berlin}}
escalation:
  default:
    - {{notify: payments, wait: 10m}}
    - {{call: payments, wait: 10m}}
    - {{notify: alice, wait: 10m}}
"""


def table(name: str, **values: str) -> dict[str, str]:
    """A request's form as Twilio posts it: every parameter of the fixture's table (name, example), placeholders
    replaced by this test's values."""
    form: dict[str, str] = {}
    for line in (FIXTURES / "twilio" / name).read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            key, example = line.split("\t")[:2]
            form[key] = "" if example == "(empty)" else example
    placeholders = {"CallSid": "CA" + "c" * 32, "AccountSid": SID, "From": FROM, "Caller": FROM, "To": ALICE,
                    "Called": ALICE, "Direction": "outbound-api"}  # fmt: skip
    form.update({k: v for k, v in placeholders.items() if k in form})
    form.pop("ForwardedFrom", None)
    form.pop("CalledVia", None)
    return {**form, **values}


@dataclass
class Bot:
    running: Running
    texts: respx.Route
    calls: respx.Route

    @property
    def oncall(self) -> OnCall:
        service = self.running.app.state.runtime.services.oncall
        assert service is not None
        return service

    def sent(self) -> list[dict[str, str]]:
        return [dict(httpx.QueryParams(c.request.content.decode())) for c in self.texts.calls]

    def placed(self) -> list[dict[str, str]]:
        return [dict(httpx.QueryParams(c.request.content.decode())) for c in self.calls.calls]

    async def alert(self, payload: bytes) -> None:
        response = await self.running.client.post(f"{self.running.url}/webhooks/alertmanager", content=payload,
                                                  headers={"Authorization": f"Bearer {HOOK}"})  # fmt: skip
        assert response.status_code == 202
        await self.running.app.state.alerts.drain()

    async def twilio(self, path: str, form: dict[str, str], signed: bool = True) -> httpx.Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers["X-Twilio-Signature"] = sign(form, path=path)
        return await self.running.client.post(f"{self.running.url}{path}", content=urlencode(form), headers=headers)


@asynccontextmanager
async def running(tmp_path: Path, config: str = ONCALL) -> AsyncIterator[Bot]:
    call_created = json.loads((FIXTURES / "twilio" / "calls_create_response_docs_legacy.json").read_text())
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        texts = mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages.json").mock(
            side_effect=lambda request: httpx.Response(201, json={"sid": f"SM{time.time_ns():032x}"[:34],
                                                                   "status": "queued"}))  # fmt: skip
        calls = mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Calls.json").mock(
            return_value=httpx.Response(201, json=call_created)
        )
        settings = settings_for(tmp_path, config, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK)
        async with serve(settings) as bot:
            yield Bot(bot, texts, calls)


def firing() -> bytes:
    return (FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes()


def one_alert() -> bytes:
    payload = json.loads(firing())
    payload["alerts"] = payload["alerts"][:1]
    return json.dumps(payload).encode()


async def test_an_alert_pages_the_person_on_call_and_nobody_else(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        holder = (await bot.oncall.who("payments"))[0].split(": ", 1)[1].split(" ", 1)[0]
        number = {"alice": ALICE, "carol": CAROL}[holder]
        await bot.alert(firing())
        sent = bot.sent()
        assert [t["To"] for t in sent] == [number]
        assert sent[0]["Body"].startswith("FIRING 2 critical: DiskFull\n1) db1:9100")
        assert sent[0]["StatusCallback"] == "https://ops.example.com/twilio/status"
        reply = message_of(await bot.running.text("oncall", number=BOB))
        assert reply.startswith(f"payments: {holder} until ") and reply.endswith(", then " +
                                                                              ("alice" if holder == "carol" else "carol"))  # fmt: skip


async def test_take_by_text_and_the_person_replaced_is_told(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        holder = (await bot.oncall.who("payments"))[0].split(": ", 1)[1].split(" ", 1)[0]
        taker, taker_number, other = ("alice", ALICE, CAROL) if holder == "carol" else ("carol", CAROL, ALICE)
        reply = message_of(await bot.running.text("take payments 2h", number=taker_number))
        assert reply.startswith("You hold the payments pager for 2h, until ") and reply.endswith(f"Told {holder}.")
        [notice] = bot.sent()
        assert notice["To"] == other and notice["Body"].startswith(f"{taker} took the payments pager from you until ")
        assert message_of(await bot.running.text("take payments", number=BOB)).startswith("Only operators")
        assert message_of(await bot.running.text("who's on call")).startswith(
            f"payments: {taker} (covering for {holder})"
        )
        await bot.alert(one_alert())
        assert bot.sent()[-1]["To"] == taker_number


async def test_escalate_by_text_calls_and_key_presses_act_through_the_signed_voice_webhook(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        await bot.running.text("take payments 1h")  # alice holds the pager, whoever's day it is
        await bot.alert(one_alert())
        assert bot.sent()[-1]["To"] == ALICE
        reply = message_of(await bot.running.text("escalate 1"))
        assert reply == "Escalated DiskFull{instance=db1:9100,job=node}: step 2 of 3: called alice."
        [call] = bot.placed()
        assert call["To"] == ALICE and call["From"] == FROM and call["Method"] == "POST"
        url = urlsplit(call["Url"])
        assert f"{url.scheme}://{url.netloc}{url.path}" == "https://ops.example.com/twilio/voice"
        token = parse_qs(url.query)["t"][0]
        assert call["StatusCallback"] == f"https://ops.example.com/twilio/voice/status?t={token}"

        answered = table("voice_gather_params.txt", CallStatus="in-progress")
        for key in ("Digits", "FinishedOnKey", "msg"):
            answered.pop(key)
        path = f"/twilio/voice?t={token}"
        assert (await bot.twilio(path, answered, signed=False)).status_code == 403
        response = await bot.twilio(path, answered)
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
        root = ElementTree.fromstring(response.text)
        example = ElementTree.fromstring((FIXTURES / "twilio" / "twiml_gather_example.xml").read_text())
        assert root.tag == example.tag == "Response" and [g.tag for g in root][:2] == ["Gather", "Gather"]
        gather = root.find("Gather")
        assert gather is not None and set(example.find("Gather").attrib) <= set(gather.attrib)  # type: ignore[union-attr]
        assert gather.get("numDigits") == "1" and gather.get("method") == "POST"
        assert gather.get("action") == f"https://ops.example.com/twilio/voice/gather?t={token}"
        said = gather.findtext("Say") or ""
        assert said.startswith("Operator page. Critical: DiskFull on db1:9100. Disk /var is 97% full on db1.")
        assert said.endswith("Press 4 to acknowledge, 6 to silence for one hour, 9 to escalate now.")
        assert root[-1].tag == "Say" and root[-1].text == "No key was pressed. Paging goes on. Goodbye."

        gather_path = f"/twilio/voice/gather?t={token}"
        pressed = table("voice_gather_params.txt", Digits="4")
        assert (await bot.twilio(gather_path, pressed, signed=False)).status_code == 403
        other_path = f"/twilio/voice/gather?t={token[:-1]}{'Y' if token.endswith('X') else 'X'}"
        wrong = await bot.twilio(other_path, pressed)  # a token the bot never made
        assert "This page has ended" in wrong.text
        nothing = await bot.twilio(gather_path, table("voice_gather_params.txt", Digits="5"))
        assert (
            "That key does nothing" in nothing.text and ElementTree.fromstring(nothing.text).find("Gather") is not None
        )
        done = await bot.twilio(gather_path, pressed)
        assert ElementTree.fromstring(done.text).findtext("Say") == "Acknowledged. Paging stopped. Goodbye."
        assert ElementTree.fromstring(done.text)[-1].tag == "Hangup"
        fingerprint = json.loads(firing())["alerts"][0]["fingerprint"]
        timeline = await bot.oncall.store.get(fingerprint)
        assert timeline is not None and timeline.state == "acked" and timeline.acked_by == "alice"
        known = await bot.oncall.book.get(fingerprint)
        assert known is not None and known.acked_by == "alice"  # its repeats text nobody, as an ack by text


async def test_an_ack_by_text_stops_paging_and_tells_the_others(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        await bot.running.text("take payments 1h", number=CAROL)
        await bot.alert(one_alert())
        await bot.oncall.escalate(json.loads(firing())["alerts"][0]["fingerprint"], "carol")  # the call
        await bot.oncall.run_after({json.loads(firing())["alerts"][0]["fingerprint"]: 1})  # alice texted
        assert [t["To"] for t in bot.sent()][-1] == ALICE
        reply = message_of(await bot.running.text("ack 1", number=ALICE))
        assert reply.endswith("(undo within 5 min) Paging stopped; told carol.")
        assert bot.sent()[-1] == {
            **bot.sent()[-1],
            "To": CAROL,
            "Body": "DiskFull db1:9100 acked by alice: paging stopped.",
        }
        undo = message_of(await bot.running.text("undo", number=ALICE))
        assert undo.endswith("Paging resumes.")


async def test_a_failed_text_and_an_unanswered_call_move_the_escalation_on(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        await bot.running.text("take payments 1h")
        await bot.alert(one_alert())
        sid = bot.texts.calls[-1].response.json()["sid"]
        report = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003", "To": ALICE,
                  "AccountSid": SID}  # fmt: skip
        assert (await bot.twilio("/twilio/status", report, signed=False)).status_code == 403
        assert bot.placed() == []
        assert (await bot.twilio("/twilio/status", report)).status_code == 204
        await until(lambda: len(bot.calls.calls) == 1, 5)
        token = parse_qs(urlsplit(bot.placed()[0]["Url"]).query)["t"][0]
        ended = table("voice_status_callback_params.txt", CallStatus="no-answer", CallDuration="0", Duration="0")
        ended.pop("SipResponseCode")
        ended.pop("AnsweredBy")
        assert (await bot.twilio(f"/twilio/voice/status?t={token}", ended)).status_code == 204
        await until(lambda: len(bot.texts.calls) == 2, 5)
        assert bot.sent()[-1]["To"] == ALICE and bot.sent()[-1]["Body"].startswith("[escalated] FIRING")


async def test_without_on_call_the_voice_webhooks_do_not_exist_and_oncall_says_so(tmp_path: Path) -> None:
    async with running(tmp_path, "") as bot:
        response = await bot.twilio("/twilio/voice?t=" + "a" * 24, table("voice_gather_params.txt"))
        assert response.status_code == 404
        assert message_of(await bot.running.text("oncall")).startswith("On-call paging is not set up here")
        await bot.alert(firing())
        assert sorted(t["To"] for t in bot.sent()) == [ALICE, BOB]  # the broadcast


async def test_the_dashboard_shows_who_is_on_call_and_each_escalation(tmp_path: Path) -> None:
    token = "dash-" + "t" * 27
    call_created = json.loads((FIXTURES / "twilio" / "calls_create_response_docs_legacy.json").read_text())
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages.json").mock(
            return_value=httpx.Response(201, json={"sid": "SM" + "d" * 32, "status": "queued"})
        )
        mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Calls.json").mock(
            return_value=httpx.Response(201, json=call_created)
        )
        settings = settings_for(tmp_path, ONCALL, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=HOOK,
                                OPERATOR_DASHBOARD_TOKEN=token)  # fmt: skip
        async with serve(settings) as running_bot:
            bot = Bot(running_bot, mock.routes[1], mock.routes[2])
            await bot.running.text("take payments 1h")
            await bot.alert(one_alert())
            await bot.oncall.escalate(json.loads(firing())["alerts"][0]["fingerprint"], "alice")
            await bot.running.text("ack 1")
            page = await bot.running.client.get(f"{bot.running.url}/dashboard/oncall",
                                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            closed = await bot.running.client.get(f"{bot.running.url}/dashboard/oncall")
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'none'")
    html = page.text
    assert '<td class="holder">alice' in html and '<th scope="row">payments</th>' in html
    assert 'DiskFull db1:9100 <span class="severity">critical</span>' in html
    assert "acked by alice · policy default" in html
    assert [cell for cell in ("texted", "called", "escalated now by", "acked") if f"<td>{cell}</td>" in html] == [
        "texted", "called", "escalated now by", "acked"]  # fmt: skip
    assert "+1555" not in html  # names, never numbers
    assert closed.status_code == 303  # people log in first
