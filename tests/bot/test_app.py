"""The SMS service end to end: uvicorn on loopback, requests signed as Twilio signs them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
import respx

from bot.settings import ConfigError, load_settings
from bot.web.app import create_app
from bot.web.security import WebhookSecurity
from tests.bot.appserver import ALICE, BOB, PUBLIC_URL, STRANGER, TOKEN, message_of, serve, settings_for, sign
from tests.fakes import RecordingSender
from tests.servers import FaultServer

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"


async def test_a_signed_text_gets_a_twiml_answer(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        response = await bot.text("help")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    assert "status, health, metrics, logs" in message_of(response)


@pytest.mark.parametrize("signature", [None, "", "bm9wZQ==", "RSOYDt4T1cUTdK1PDd93/VVr8B8="])
async def test_unsigned_or_forged_webhooks_are_refused(tmp_path: Path, signature: str | None) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        params = {"MessageSid": "SM1", "From": ALICE, "Body": "status"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        response = await bot.client.post(f"{bot.url}/sms", data=params, headers=headers)
        assert response.status_code == 403 and response.text == ""
        assert await bot.entries() == []


async def test_the_signature_is_checked_against_the_public_url_not_the_request(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        params = {"MessageSid": "SM2", "From": ALICE, "Body": "status"}
        from starlette.datastructures import ImmutableMultiDict
        from twilio.request_validator import RequestValidator

        internal = RequestValidator(TOKEN).compute_signature(f"{bot.url}/sms", ImmutableMultiDict(params))
        response = await bot.client.post(f"{bot.url}/sms", data=params, headers={"X-Twilio-Signature": internal})
        assert response.status_code == 403  # signed for the internal address: not what Twilio would sign
        response = await bot.client.post(f"{bot.url}/sms", data=params, headers={"X-Twilio-Signature": sign(params)})
        assert response.status_code == 200


def _security(token: str, public_url: str) -> WebhookSecurity:
    return WebhookSecurity(load_settings(environ={"TWILIO_AUTH_TOKEN": token, "OPERATOR_PUBLIC_URL": public_url},
                                         env_file=None))  # fmt: skip


def test_the_official_signature_vector() -> None:
    vector = json.loads((FIXTURES / "signature_vector.json").read_text())
    params = list(vector["params"].items())
    for other in [vector, *vector["additional_vectors"][:4]]:  # the main vector and the port variants
        url = other["url"].split("?")[0]
        base, path = url.rsplit("/", 1)
        security = _security(vector["auth_token"], base)  # the validator tries the URL with and without its port
        signature = other.get("expected_signature") or other["expected_valid_signature"]
        assert security.verify(f"/{path}", "foo=1&bar=2", params, signature), other.get("test", "main")
    security = _security(vector["auth_token"], "https://mycompany.com")
    assert not security.verify("/myapp.php", "foo=1&bar=3", params, vector["expected_signature"])
    assert not security.verify("/myapp.php", "foo=1&bar=2", [*params, ("Body", "x")], vector["expected_signature"])
    duplicate = vector["additional_vectors"][4]
    pairs = [tuple(p.split("=")) for p in duplicate["params_form_encoded"].split("&")]
    assert security.verify("/myapp.php", "foo=1&bar=2", pairs, duplicate["expected_signature"])  # type: ignore[arg-type]


async def test_unknown_numbers_get_nothing_and_a_masked_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve(settings_for(tmp_path)) as bot:
        response = await bot.text("status", number=STRANGER)
        assert response.status_code == 200
        assert message_of(response) == "" and "<Message" not in response.text
        [entry] = await bot.entries()
    assert entry.outcome == "rejected" and entry.number == "+1555***0000"
    assert STRANGER not in caplog.text and "+1555***0000" in caplog.text


async def test_rate_limit_warns_once_then_goes_quiet_then_recovers(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "rate_burst: 2\nrate_per_minute: 60\n")
    async with serve(settings) as bot:
        replies = [message_of(await bot.text("help")) for _ in range(4)]
        assert replies[0] and replies[1]
        assert replies[2].startswith("Slow down")
        assert replies[3] == ""
        assert message_of(await bot.text("help", number=BOB))  # other numbers are not affected
        await asyncio.sleep(1.1)  # one token a second
        assert message_of(await bot.text("help")).startswith("Ask in your own words")


async def test_a_repeated_webhook_returns_the_first_reply_without_running_again(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        first = await bot.text("cpu on checkout", sid="SM" + "a" * 32)
        again = await bot.text("cpu on checkout", sid="SM" + "a" * 32)
        both = await asyncio.gather(*(bot.text("what about memory?", sid="SM" + "b" * 32) for _ in range(3)))
        assert again.text == first.text
        assert len({r.text for r in both}) == 1
        entries = await bot.entries()
    assert [e.text for e in entries if e.direction == "in"] == ["what about memory?", "cpu on checkout"]  # once each
    assert [e.outcome for e in entries if e.direction == "out"] == ["replied", "replied"]  # one TwiML reply each


async def test_long_answers_are_paged_and_served_by_more(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path, "max_segments: 1\n")) as bot:
        first = message_of(await bot.text("help"))
        second = message_of(await bot.text("more"))
        third = message_of(await bot.text("more"))
    assert first.endswith("(reply MORE for the rest)") and len(first) <= 160
    assert second and not second.endswith("(reply MORE for the rest)")
    assert third == "Nothing more to show."
    assert "Ask in your own words" in first + second and "Text HELP <command> for one." in first + second


async def test_a_follow_up_says_what_it_assumed(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        await bot.text("cpu on checkout")
        reply = message_of(await bot.text("what about memory?"))
    assert reply.startswith("[checkout] this host memory:")


async def test_replies_are_gsm7(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        reply = message_of(await bot.text("“status” 🔥"))
    assert reply.isascii()


async def test_carrier_keywords(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        assert message_of(await bot.text("STOP")) == ""  # the carrier confirms opt-outs itself
        assert message_of(await bot.text("HELP")).startswith("Ask in your own words")
        assert message_of(await bot.text("START"))


async def test_viewers_cannot_silence(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        assert message_of(await bot.text("silence HighCPU 1h", number=BOB)).startswith("Only operators")


async def test_a_slow_command_answers_now_and_sends_the_result_later(tmp_path: Path) -> None:
    slow = FaultServer()
    slow.answer(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}', delay_s=1.0)
    try:
        config = f"reply_budget_s: 0.3\nmonitors: {{prometheus: {{url: '{slow.url}', timeout_s: 5}}}}\n"
        twilio_base = "http://twilio.test"
        settings = settings_for(tmp_path, config, TWILIO_API_BASE_URL=twilio_base)
        with respx.mock(assert_all_called=False) as mock:
            mock.route(host="127.0.0.1").pass_through()
            sent = mock.post(f"{twilio_base}/2010-04-01/Accounts/{'AC' + '0' * 32}/Messages.json").mock(
                return_value=httpx.Response(201, json={"sid": "SM" + "c" * 32, "status": "queued"})
            )
            async with serve(settings) as bot:
                started = time.monotonic()
                reply = message_of(await bot.text("cpu on checkout"))
                assert time.monotonic() - started < 1.0
                assert reply.startswith("Working on it")
                entries = await bot.entries()
        assert sent.call_count == 1
        form = dict(httpx.QueryParams(sent.calls[0].request.content.decode()))
        assert form["To"] == ALICE and form["Body"] == "checkout cpu: no data"
        assert [e.outcome for e in entries] == ["queued", "replied", "deferred"]  # answer, "Working on it", text
        assert entries[1].text.startswith("Working on it") and entries[1].direction == "out"
    finally:
        slow.stop()


async def test_history_in_sqlite_and_the_cli(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        await bot.text("status")
        await bot.text("help logs", number=BOB)
    import subprocess
    import sys

    operator = str(Path(sys.executable).with_name("operator"))
    result = subprocess.run([operator, "history", "--config", str(tmp_path / "operator.yaml")],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "TWILIO_AUTH_TOKEN": TOKEN})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4  # each text and its reply, newest first
    assert [line.split()[3] for line in lines] == ["out", "in", "out", "in"]
    assert "+1555***0002" in lines[1] and "help" in lines[1] and "+1555***0001" in lines[3]
    assert ALICE not in result.stdout and BOB not in result.stdout


async def test_health_ready_metrics_and_index(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        await bot.text("help")
        await bot.text("status", number=STRANGER)
        assert (await bot.client.get(f"{bot.url}/healthz")).text == "ok"
        ready = await bot.client.get(f"{bot.url}/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "checks": {"history": "ok", "host": "ok"}}
        metrics = (await bot.client.get(f"{bot.url}/metrics")).text
        assert 'operator_messages_total{intent="help",outcome="ok"} 1.0' in metrics
        assert 'operator_rejected_total{reason="unknown_number"} 1.0' in metrics
        assert (await bot.client.get(f"{bot.url}/")).json()["service"] == "Operator"


async def test_not_ready_when_every_backend_is_down(tmp_path: Path) -> None:
    config = "monitors: {prometheus: {url: 'http://127.0.0.1:9', timeout_s: 0.5}}\n"
    async with serve(settings_for(tmp_path, config)) as bot:
        ready = await bot.client.get(f"{bot.url}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["prometheus"] == "down"


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"\xff\xfe", 400), (b"a=" + b"x" * 20_000, 413), (b"&".join(b"k%d=v" % i for i in range(500)), 400)],
)
async def test_malformed_bodies_are_refused_not_crashed(tmp_path: Path, body: bytes, status: int) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        response = await bot.client.post(f"{bot.url}/sms", content=body,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == status


def test_unsafe_configurations_refuse_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        create_app(settings_for(tmp_path, TWILIO_AUTH_TOKEN=""))
    with pytest.raises(ConfigError, match="placeholder"):
        create_app(settings_for(tmp_path, TWILIO_AUTH_TOKEN="changeme"))
    with pytest.raises(ConfigError, match="loopback"):
        create_app(settings_for(tmp_path, OPERATOR_DEV_MODE="true", OPERATOR_BIND_HOST="0.0.0.0"))
    bare = load_settings(environ={"TWILIO_AUTH_TOKEN": TOKEN}, env_file=None)
    with pytest.raises(ConfigError, match="public_url"):
        create_app(bare)


async def test_dev_mode_on_loopback_takes_unsigned_webhooks(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, TWILIO_AUTH_TOKEN="", OPERATOR_DEV_MODE="true")
    async with serve(settings) as bot:
        response = await bot.text("help", signed=False)
    assert response.status_code == 200 and message_of(response)


async def test_the_deferred_sender_is_used_and_recorded(tmp_path: Path) -> None:
    config = "reply_budget_s: 0.01\n"
    async with serve(settings_for(tmp_path, config)) as bot:
        sender = RecordingSender()
        bot.webhook.sender = sender
        reply = message_of(await bot.text("status"))
        await bot.webhook.drain()
    if reply.startswith("Working on it"):
        assert sender.sent and sender.sent[0][0] == ALICE
    else:  # the host answered within 10 ms: nothing deferred
        assert not sender.sent


def test_public_url_is_what_twilio_calls() -> None:
    assert PUBLIC_URL.startswith("https://")
