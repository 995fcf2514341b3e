"""What the dashboard counts of real traffic through the served app: replies that went out in the
webhook's TwiML are texts sent (tile and hourly chart), rate-limited texts are listed by their reason,
and Twilio's delivery callbacks are not texts. Dev mode's looser rate limit, as `operator serve --dev`
announces it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from bot.settings import DEV_RATE_BURST, DEV_RATE_PER_MINUTE, load_settings
from bot.web.webhook import SLOW_DOWN
from tests.bot.appserver import ALICE, message_of, serve, sign
from tests.bot.test_dashboard import BEARER, dashboard_settings, figure
from tests.bot.test_serve import OPERATOR, environment
from tests.servers import free_port, http_status, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.servers]


async def test_ten_texts_five_rate_limited_count_every_reply_sent(tmp_path: Path) -> None:
    async with serve(dashboard_settings(tmp_path)) as bot:  # the production limit: 5 at once
        replies = [message_of(await bot.text("help")) for _ in range(10)]
        assert [bool(r) for r in replies] == [True] * 6 + [False] * 4
        assert replies[5] == SLOW_DOWN and all(r.startswith("Operator") or "help" in r.lower() for r in replies[:5])
        status = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "delivered", "To": ALICE}
        callback = await bot.client.post(f"{bot.url}/twilio/status", data=status,
                                         headers={"X-Twilio-Signature": sign(status, "/twilio/status")})  # fmt: skip
        assert callback.status_code == 204
        await bot.webhook.drain()

        page = (await bot.client.get(bot.url + "/dashboard", headers=BEARER)).text
        assert figure(page, "texts-in") == "10"
        assert figure(page, "texts-out") == "6"  # 5 answers and one "slow down"; not the delivery callback
        per_hour = re.findall(r"<title>[0-9: -]+ UTC: (\d+) (in|out)</title>", page)
        assert sum(int(n) for n, kind in per_hour if kind == "out") == 6
        assert sum(int(n) for n, kind in per_hour if kind == "in") == 10
        intents = dict(re.findall(r'<tr><td>([^<]+)</td><td class="num">(\d+)</td>', page))
        assert intents == {"help": "5", "(rate limited)": "5"}  # a reason, not "(none)"

        messages = (await bot.client.get(bot.url + "/dashboard/messages", headers=BEARER)).text
        rows = re.findall(r'<tr class="(in|out)">(.*?)</tr>', messages, re.DOTALL)
        limited = [row for kind, row in rows if kind == "in" and "rate_limited" in row]
        assert len(limited) == 5 and all("<td>(rate limited)</td>" in row for row in limited)
        assert len([row for kind, row in rows if kind == "out" and "<td>replied</td>" in row]) == 6

        entries = await bot.entries(limit=50)
        warned = [e for e in entries if e.outcome == "rate_limited" and e.detail and "slow down" in e.detail]
        assert len(warned) == 1  # the reason is in the history too; the other four got no reply


def test_dev_mode_loosens_the_rate_limit_unless_it_is_set() -> None:
    dev = load_settings(environ={"OPERATOR_DEV_MODE": "true"}, env_file=None)
    assert (dev.rate_burst, dev.rate_per_minute) == (DEV_RATE_BURST, DEV_RATE_PER_MINUTE) == (30, 60.0)
    production = load_settings(environ={}, env_file=None)
    assert (production.rate_burst, production.rate_per_minute) == (5, 10.0)
    chosen = load_settings(environ={"OPERATOR_DEV_MODE": "true", "OPERATOR_RATE_BURST": "3"}, env_file=None)
    assert (chosen.rate_burst, chosen.rate_per_minute) == (3, DEV_RATE_PER_MINUTE)


def test_operator_serve_dev_says_so_and_answers_a_readme_trial(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([OPERATOR, "serve", "--dev", "--port", str(port)], cwd=tmp_path,
                                   env=environment(), stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/healthz") == 200 or process.poll() is not None, 30, "operator serve")
        assert process.poll() is None, log.read_text()
        for n, text in enumerate(["status", "help", "cpu", "alerts", "help silence", "reset"] * 2):
            response = httpx.post(f"{url}/sms", data={"From": "+15550000000", "Body": text, "MessageSid": f"SM{n}"})
            assert response.status_code == 200 and "<Message>" in response.text, (n, response.text)
            assert "Slow down" not in response.text
    finally:
        process.terminate()
        process.wait(timeout=20)
    started = log.read_text()
    assert "Dev mode: unsigned texts accepted on 127.0.0.1 only; rate limit 30 texts at once, 60 a minute" in started
