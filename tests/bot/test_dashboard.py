"""The dashboard over HTTP, against the whole app served by uvicorn on loopback (tests/bot/appserver.py):
closed by default, logins (wrong ones generic and throttled), sessions that cannot be forged, stretched
or replayed after a password change, CSRF tokens, the bearer token, security headers, hostile texts
escaped, junk parameters, a database that is down or hung, the real PostgreSQL, the CLI that makes
password hashes, and the figures on the pages checked against data the test recorded."""

from __future__ import annotations

import asyncio
import math
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bot.cli.main import main as cli
from bot.dashboard.auth import (
    LoginThrottle,
    Sessions,
    hash_password,
    is_password_hash,
    session_key,
    verify_password,
)
from bot.dashboard.views import SECURITY_HEADERS
from bot.db.database import Database, engine_url
from bot.db.health_log import Sample, store_samples
from bot.db.history import History, make_entry
from bot.db.schema import MESSAGES
from bot.settings import ConfigError, Settings
from bot.web.app import create_app
from tests.bot.appserver import ALICE, BOB, Running, serve, settings_for
from tests.bot.servers_history import Postgres, postgres
from tests.monitors.servers_postgres import TcpServer
from tests.servers import LOOPBACK

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

PASSWORD = "correct horse battery staple"
TOKEN = "dashboard-token-0123456789abcdef"
SECRET = "dashboard-secret-fedcba9876543210"
CAROL = "+447700900123"
NUMBERS = (ALICE, BOB, CAROL)
"""Every raw number the tests record: none may appear on any page, whole or without its `+`."""
HASHES: dict[str, str] = {}


def password_hash(password: str = PASSWORD) -> str:
    """One scrypt per password per run: each costs ~30 ms."""
    if password not in HASHES:
        HASHES[password] = hash_password(password)
    return HASHES[password]


def dashboard_settings(tmp: Path, *, users: bool = True, token: bool = True, config: str = "", **env: str) -> Settings:
    lines = f'dashboard_users: {{alice: "{password_hash()}"}}\n' if users else ""
    environ = {"OPERATOR_DASHBOARD_SECRET": SECRET, **({"OPERATOR_DASHBOARD_TOKEN": TOKEN} if token else {}), **env}
    return settings_for(tmp, lines + config, **environ)


BEARER = {"Authorization": f"Bearer {TOKEN}"}


class Visitor:
    """A client that keeps the dashboard's cookies itself (they are `Secure`, and the test server is plain
    HTTP on loopback, so httpx's own jar would not send them) and remembers every Set-Cookie it saw."""

    def __init__(self, bot: Running, client: httpx.AsyncClient | None = None) -> None:
        self.bot = bot
        self.client = client or bot.client
        self.cookies: dict[str, str] = {}
        self.set_cookies: dict[str, str] = {}
        """The last Set-Cookie line per cookie name, to check its attributes."""

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return self._remember(await self.client.get(self.bot.url + path, headers=self._headers(headers)))

    async def post(self, path: str, form: dict[str, str] | None = None, body: bytes | None = None) -> httpx.Response:
        headers = self._headers({"Content-Type": "application/x-www-form-urlencoded"})
        content = body if body is not None else "&".join(f"{k}={quote(v)}" for k, v in (form or {}).items()).encode()
        return self._remember(await self.client.post(self.bot.url + path, content=content, headers=headers))

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {**({"Cookie": cookie} if cookie else {}), **extra}

    def _remember(self, response: httpx.Response) -> httpx.Response:
        self.client.cookies.clear()
        for line in response.headers.get_list("set-cookie"):
            parsed = SimpleCookie()
            parsed.load(line)
            for name, morsel in parsed.items():
                self.set_cookies[name] = line
                if morsel["max-age"] == "0" or not morsel.value.strip('"'):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    async def login(self, name: str = "alice", password: str = PASSWORD) -> httpx.Response:
        form = await self.get("/dashboard/login")
        return await self.post("/dashboard/login", {"csrf": csrf_of(form), "username": name, "password": password})


def csrf_of(response: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert found, response.text
    return found.group(1)


def figure(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found, f"no #{element_id} on the page"
    return found.group(1)


def assert_no_raw_numbers(*pages: str) -> None:
    for page in pages:
        for number in NUMBERS:
            assert number not in page and number.lstrip("+") not in page


# --- data the pages must show -----------------------------------------------------------------------


LATENCIES = [10.0 * i for i in range(1, 101)]
"""Answered texts' latencies: nearest-rank p50, p95, p99 are the 50th, 95th and 99th values."""


async def seed(history: History, now: datetime) -> dict[str, int]:
    """A day of traffic: answered texts of several intents, refused and rate-limited ones, alert texts
    sent and acks, plus texts older than a day. Returns the counts the overview must show for 24 h."""
    entries = []
    intents = ["status", "metrics", "logs", "ack"]
    for i, latency in enumerate(LATENCIES):
        intent = intents[i % 4]
        at = now - timedelta(minutes=5 + i * 7)  # spread over ~12 h
        number = NUMBERS[i % 3]
        entries.append(make_entry(number, "in", f"{intent} text {i} from {number}", intent=intent,
                                  command=f"{intent} cmd", latency_ms=latency, at=at,
                                  outcome="ok" if intent != "ack" or i % 8 == 3 else "error"))  # fmt: skip
        entries.append(make_entry(number, "out", f"reply {i} to {number}", intent=intent, at=at, latency_ms=5000))
    entries += [make_entry(ALICE, "in", "who?", outcome="rejected", latency_ms=99_999, at=now - timedelta(hours=1))]
    entries += [make_entry(BOB, "in", "spam", outcome="rate_limited", latency_ms=99_999, at=now - timedelta(hours=2))]
    entries += [make_entry(CAROL, "out", f"ALERT {i} firing", intent="alert", outcome="sent",
                           at=now - timedelta(hours=3, minutes=i)) for i in range(7)]  # fmt: skip
    entries += [make_entry("", "in", "HighLatency", intent="alert", outcome="firing", at=now - timedelta(hours=3))]
    entries += [make_entry(ALICE, "in", "ancient", intent="status", at=now - timedelta(hours=30)) for _ in range(4)]
    await history.store(entries)
    acks = sum(1 for i in range(100) if intents[i % 4] == "ack" and i % 8 == 3)
    return {"texts-in": 102, "texts-out": 107, "alerts-sent": 7, "acks": acks, "alerts-received": 1}


async def seed_health(history: History, now: datetime) -> None:
    """`host` up all day; `prometheus` down for its last two hours (every sample a minute)."""
    samples = [Sample(now - timedelta(minutes=m), "host", True, "load 0.1", 2.0) for m in range(1, 1440)]
    samples += [Sample(now - timedelta(minutes=m), "prometheus", m > 120, "ready" if m > 120 else
                       "Prometheus: connection refused", None) for m in range(1, 1440)]  # fmt: skip
    await store_samples(history.database, samples)


async def seed_weeks(history: History, now: datetime) -> None:
    """Ten-minute samples: `prometheus` over the last six days, down for two hours three days ago, and
    three weeks ago (inside 30 days, outside 7); `host` up throughout the six days."""
    down_from, down_to = now - timedelta(days=3), now - timedelta(days=3) + timedelta(hours=2)
    samples = []
    for step in range(1, 6 * 144):
        at = now - timedelta(minutes=10 * step)
        samples.append(Sample(at, "prometheus", not down_from <= at < down_to, "", None))
        samples.append(Sample(at, "host", True, "", None))
    samples += [Sample(now - timedelta(days=21, minutes=m), "prometheus", False, "refused", None) for m in range(12)]
    await store_samples(history.database, samples)


def health_row(page: str, monitor: str) -> str:
    row = page[page.index(f">{monitor}<") :]
    return row[: row.index("</tr>")]


async def check_long_windows(get: Callable[[str], Awaitable[str]]) -> None:
    """A week and a month come from the hourly counts: the same uptime the samples give, and the outage
    in one or two 2-hour (week) or 8-hour (month) cells."""
    samples, down = 6 * 144 - 1, 12  # per monitor in six days; prometheus' two hours down
    week = await get("/dashboard?hours=168")
    month = await get("/dashboard?hours=720")
    assert f"{100 * (samples - down) / samples:.1f} %" in health_row(week, "prometheus")
    assert f"{100 * (samples - down) / (samples + 12):.1f} %" in health_row(month, "prometheus")  # + 3 weeks ago
    assert "100.0 %" in health_row(week, "host") and "cell down" not in health_row(month, "host")
    for page, cells, downs in ((week, 84, (1, 2)), (month, 90, (2, 3))):  # the month also has 3 weeks ago
        row = health_row(page, "prometheus")
        assert row.count('class="cell') == cells
        assert downs[0] <= row.count("cell down") <= downs[1]


def nearest_rank(values: list[float], fraction: float) -> float:
    return sorted(values)[math.ceil(fraction * len(values)) - 1]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(dashboard_settings(tmp_path)) as running:
        yield running


# --- closed by default --------------------------------------------------------------------------------


async def test_without_users_or_token_every_dashboard_url_is_not_found(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as running:
        for path in ["/dashboard", "/dashboard/", "/dashboard/login", "/dashboard/messages", "/dashboard/x",
                     "/dashboard/static/dashboard.css"]:  # fmt: skip
            for headers in [{}, BEARER, {"Authorization": "Bearer x"}]:
                response = await running.client.get(running.url + path, headers=headers)
                assert response.status_code == 404, path
        response = await running.client.post(running.url + "/dashboard/login", data={"username": "alice"})
        assert response.status_code in (404, 405)
        assert (await running.client.get(running.url + "/healthz")).status_code == 200


# --- logging in -----------------------------------------------------------------------------------


async def test_pages_send_strangers_to_the_login_page_and_refuse_their_posts(bot: Running) -> None:
    visitor = Visitor(bot)
    for path in ["/dashboard", "/dashboard/messages", "/dashboard/messages?page=2", "/dashboard?hours=6"]:
        response = await visitor.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard/login"
    assert (await visitor.post("/dashboard/logout", {"csrf": "x"})).status_code == 401
    assert (await visitor.get("/dashboard/nothing-here")).status_code == 404
    login = await visitor.get("/dashboard/login")
    assert login.status_code == 200
    assert 'action="/dashboard/login"' in login.text and 'type="password"' in login.text
    assert "<script" not in login.text.lower()


async def test_a_good_login_opens_a_session_with_safe_cookie_flags(bot: Running) -> None:
    visitor = Visitor(bot)
    response = await visitor.login()
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert set(visitor.cookies) == {"operator_dashboard"}  # the pre-login cookie is cleared
    line = visitor.set_cookies["operator_dashboard"].lower()
    for flag in ["httponly", "samesite=strict", "path=/dashboard", "secure", "max-age=43200"]:
        assert flag in line
    page = await visitor.get("/dashboard")
    assert page.status_code == 200
    assert ">alice<" in page.text  # who is logged in
    assert (await visitor.get("/dashboard/login")).headers["location"] == "/dashboard"  # already logged in


async def test_wrong_passwords_and_unknown_names_get_one_generic_answer(bot: Running) -> None:
    answers = []
    for name, password in [("alice", "wrong password!"), ("mallory", PASSWORD), ("alice", ""), ("", "")]:
        visitor = Visitor(bot)
        response = await visitor.login(name, password)
        assert response.status_code == 401
        assert "operator_dashboard" not in visitor.cookies
        answers.append(re.sub(r'value="[^"]*"', "", response.text))
    assert "Wrong login name or password." in answers[0]
    assert len(set(answers)) == 1  # nothing tells a known name from an unknown one


async def test_repeated_failures_are_throttled_per_address(bot: Running) -> None:
    visitor = Visitor(bot)
    for _ in range(5):
        assert (await visitor.login("alice", "not the password")).status_code == 401
    blocked = await visitor.login()  # even the right password, once blocked
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "60"
    assert "Wait a minute" in blocked.text
    assert "operator_dashboard" not in visitor.cookies
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")  # another client address
    async with httpx.AsyncClient(transport=transport, trust_env=False) as other_client:
        other = Visitor(bot, other_client)
        assert (await other.login()).status_code == 303


async def test_a_hundred_wrong_passwords_at_once_get_at_most_the_limit_checked(bot: Running) -> None:
    """Counted before the awaited password check: the rest are refused before any checking."""
    visitor = Visitor(bot)
    csrf = csrf_of(await visitor.get("/dashboard/login"))
    form = {"csrf": csrf, "username": "alice", "password": "not the password"}
    limit = LoginThrottle().limit  # what the dashboard uses
    responses = await asyncio.gather(*(visitor.post("/dashboard/login", form) for _ in range(100)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= limit == 5  # 401: checked and wrong (before the fix, about 69 were)
    assert statuses.count(429) >= 100 - limit
    assert (await visitor.login()).status_code == 429  # the right password too, until the window passes


def test_the_throttle_forgets_failures_after_its_window() -> None:
    now = [1000.0]
    throttle = LoginThrottle(limit=2, window_s=60, max_addresses=3, clock=lambda: now[0])
    assert throttle.attempt("a") and throttle.attempt("a")
    assert not throttle.attempt("a")  # refused, and not counted
    assert throttle.blocked("a") and not throttle.blocked("b")
    now[0] += 61
    assert not throttle.blocked("a")
    for address in "bcde":  # the oldest addresses are dropped past `max_addresses`
        throttle.attempt(address)
        throttle.attempt(address)
    assert throttle.blocked("e") and not throttle.blocked("b")
    throttle.succeeded("e")
    assert not throttle.blocked("e")


async def test_the_login_form_needs_its_csrf_token(bot: Running) -> None:
    visitor = Visitor(bot)
    await visitor.get("/dashboard/login")
    refused = await visitor.post("/dashboard/login", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403 and "expired" in refused.text
    stranger = Visitor(bot)  # a token from someone else's form does not fit this visitor's nonce
    token = csrf_of(await stranger.get("/dashboard/login"))
    forged = await visitor.post("/dashboard/login", {"csrf": token, "username": "alice", "password": PASSWORD})
    assert forged.status_code == 403
    cookieless = Visitor(bot)
    no_cookie = await cookieless.post("/dashboard/login", {"csrf": token, "username": "alice", "password": PASSWORD})
    assert no_cookie.status_code == 403
    assert "operator_dashboard" not in visitor.cookies | cookieless.cookies
    too_big = await visitor.post("/dashboard/login", body=b"username=" + b"a" * 10_000)
    assert too_big.status_code == 400


async def test_logout_needs_its_csrf_token_and_clears_the_cookie(bot: Running) -> None:
    visitor = Visitor(bot)
    await visitor.login()
    assert (await visitor.post("/dashboard/logout", {})).status_code == 403
    assert (await visitor.post("/dashboard/logout", {"csrf": "0" * 64})).status_code == 403
    page = await visitor.get("/dashboard")
    assert page.status_code == 200  # still logged in
    out = await visitor.post("/dashboard/logout", {"csrf": csrf_of(page)})
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert "operator_dashboard" not in visitor.cookies
    assert (await visitor.get("/dashboard")).headers["location"] == "/dashboard/login"


# --- sessions that must not work ------------------------------------------------------------------


async def test_tampered_foreign_and_expired_cookies_are_not_sessions(bot: Running, tmp_path: Path) -> None:
    visitor = Visitor(bot)
    await visitor.login()
    good = visitor.cookies["operator_dashboard"]
    settings = dashboard_settings(tmp_path)
    forged = {
        "tampered signature": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "tampered payload": "x" + good[1:],
        "garbage": "not-a-cookie",
        "other key": Sessions(b"another key entirely", settings.dashboard_users, 3600).issue("alice"),
        "expired": Sessions(session_key(settings), settings.dashboard_users, settings.dashboard_session_s,
                            clock=lambda: time.time() - settings.dashboard_session_s - 5).issue("alice"),
        "unknown user": Sessions(session_key(settings), {**settings.dashboard_users, "bob": password_hash()},
                                 3600).issue("bob"),
        "huge": "a" * 5000,
    }  # fmt: skip
    for what, cookie in forged.items():
        response = await bot.client.get(bot.url + "/dashboard", headers={"Cookie": f"operator_dashboard={cookie}"})
        assert response.status_code == 303, what
    fresh = Sessions(session_key(settings), settings.dashboard_users, settings.dashboard_session_s).issue("alice")
    response = await bot.client.get(bot.url + "/dashboard", headers={"Cookie": f"operator_dashboard={fresh}"})
    assert response.status_code == 200  # the same construction, unexpired, is accepted: the checks above mean something


async def test_a_password_change_or_removed_user_ends_existing_sessions(tmp_path: Path) -> None:
    async with serve(dashboard_settings(tmp_path)) as first:
        visitor = Visitor(first)
        await visitor.login()
        cookie = visitor.cookies["operator_dashboard"]
    changed = f'dashboard_users: {{alice: "{password_hash("a brand new password")}"}}\n'
    for config in [changed, f'dashboard_users: {{carol: "{password_hash()}"}}\n']:
        settings = settings_for(tmp_path, config, OPERATOR_DASHBOARD_SECRET=SECRET)
        async with serve(settings) as restarted:
            response = await restarted.client.get(restarted.url + "/dashboard",
                                                  headers={"Cookie": f"operator_dashboard={cookie}"})  # fmt: skip
            assert response.status_code == 303
    async with serve(dashboard_settings(tmp_path)) as same:  # same secret and hash: the session survives a restart
        response = await same.client.get(same.url + "/dashboard", headers={"Cookie": f"operator_dashboard={cookie}"})
        assert response.status_code == 200


# --- the bearer token -------------------------------------------------------------------------------


async def test_the_bearer_token_opens_the_pages_without_cookies(bot: Running) -> None:
    for path in ["/dashboard", "/dashboard/messages"]:
        response = await bot.client.get(bot.url + path, headers=BEARER)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
        assert 'action="/dashboard/logout"' not in response.text  # nothing to log out of
    wrong: list[str | bytes] = [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN,
                                "Bearer \xfcn\xefcode".encode("latin-1")]  # fmt: skip
    for header in wrong:
        response = await bot.client.get(bot.url + "/dashboard", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_with_only_a_token_nobody_can_log_in_with_a_password(tmp_path: Path) -> None:
    async with serve(dashboard_settings(tmp_path, users=False)) as running:
        visitor = Visitor(running)
        form = await visitor.get("/dashboard/login")
        assert "not configured" in form.text and 'type="password"' not in form.text
        response = await visitor.post("/dashboard/login", {"csrf": "", "username": "alice", "password": PASSWORD})
        assert response.status_code in (401, 403)
        assert (await running.client.get(running.url + "/dashboard", headers=BEARER)).status_code == 200


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        pytest.param('dashboard_users: {alice: "hunter2hunter2"}\n', {}, "alice", id="a-password-not-a-hash"),
        pytest.param('dashboard_users: {alice: "scrypt$16384$8$1$AAAA$BBBB"}\n', {}, "not a password hash", id="short-parts"),
        pytest.param("", {"OPERATOR_DASHBOARD_TOKEN": "changeme"}, "OPERATOR_DASHBOARD_TOKEN", id="weak-token"),
        pytest.param("", {"OPERATOR_DASHBOARD_TOKEN": TOKEN, "OPERATOR_DASHBOARD_SECRET": "short"},
                     "OPERATOR_DASHBOARD_SECRET", id="weak-secret"),
    ],
)  # fmt: skip
def test_bad_dashboard_configuration_stops_the_start(tmp_path: Path, config: str, env: dict[str, str],
                                                     message: str) -> None:  # fmt: skip
    settings = settings_for(tmp_path, config, **env)
    with pytest.raises(ConfigError, match=message) as caught:
        create_app(settings)
    assert "hunter2" not in str(caught.value) and "changeme" not in str(caught.value)


def test_password_hashes_verify_and_malformed_ones_never_raise() -> None:
    stored = password_hash()
    assert is_password_hash(stored) and stored.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)
    assert hash_password(PASSWORD) != stored  # salted
    n, r, p, salt, digest = stored.split("$")[1:]
    malformed = [
        "", "scrypt", PASSWORD, stored + "$", stored.replace("scrypt", "bcrypt"), f"scrypt${n}$x$1${salt}${digest}",
        f"scrypt$1000$8$1${salt}${digest}", f"scrypt$1048576$64$16${salt}${digest}", f"scrypt${n}$8$1$!!!${digest}",
        f"scrypt${n}$8$1${salt}$AAAA", f"scrypt$0$8$1${salt}${digest}", f"scrypt${n}$8$1${salt}${digest}\n",
    ]  # fmt: skip
    for bad in malformed:
        assert not verify_password(PASSWORD, bad), bad
        assert not is_password_hash(bad) or bad == stored
    assert not verify_password("x" * 5000, stored)


# --- headers ---------------------------------------------------------------------------------------


async def test_every_dashboard_response_carries_the_security_headers(bot: Running) -> None:
    visitor = Visitor(bot)
    responses = [
        await visitor.get("/dashboard"),  # 303
        await visitor.get("/dashboard/login"),
        await visitor.post("/dashboard/logout", {}),  # 401
        await visitor.get("/dashboard/unknown"),  # 404
        await bot.client.get(bot.url + "/dashboard", headers={"Authorization": "Bearer nope"}),  # 401
    ]
    await visitor.login()
    responses += [await visitor.get("/dashboard"), await visitor.get("/dashboard/messages")]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
    css = await bot.client.get(bot.url + "/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "svg.chart" in css.text


# --- the figures ---------------------------------------------------------------------------------


async def test_the_overview_shows_the_recorded_traffic_and_health(bot: Running) -> None:
    now = datetime.now(UTC)
    history: History = bot.app.state.history
    expected = await seed(history, now)
    await seed_health(history, now)
    page = (await bot.client.get(bot.url + "/dashboard", headers=BEARER)).text
    for element_id, count in expected.items():
        assert figure(page, element_id) == str(count), element_id
    answered = LATENCIES  # refused and rate-limited texts and every reply are left out
    for name, fraction in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)]:
        assert figure(page, name) == f"{nearest_rank(answered, fraction):.0f} ms"
    intents = dict(re.findall(r'<tr><td>([^<]+)</td><td class="num">(\d+)</td>', page))
    assert intents == {"status": "25", "metrics": "25", "logs": "25", "ack": "25", "(not on the allowlist)": "1",
                       "(rate limited)": "1"}  # fmt: skip
    assert page.count("<svg") >= 4  # texts per hour, intents, one strip per backend
    assert "<title>Texts received by intent</title>" in page
    per_hour = re.findall(r"<title>[0-9: -]+ UTC: (\d+) (in|out)</title>", page)
    assert sum(int(n) for n, kind in per_hour if kind == "in") == expected["texts-in"] + expected["alerts-received"]
    assert sum(int(n) for n, kind in per_hour if kind == "out") == expected["texts-out"]
    assert "<title>status: 25</title>" in page
    host = page[page.index(">host<") : page.index(">prometheus<")]
    assert "100.0 %" in host and "cell down" not in host
    prometheus = page[page.index(">prometheus<") :]
    prometheus = prometheus[: prometheus.index("</tr>")]
    assert f"{100 * (1439 - 120) / 1439:.1f} %" in prometheus
    assert "cell down" in prometheus and 'class="state down"' in prometheus
    assert_no_raw_numbers(page)
    wider = (await bot.client.get(bot.url + "/dashboard?hours=48", headers=BEARER)).text
    assert figure(wider, "texts-in") == str(expected["texts-in"] + 4)  # the texts 30 h ago
    assert int(figure((await bot.client.get(bot.url + "/dashboard?hours=1", headers=BEARER)).text, "texts-in")) < 20


async def test_a_week_and_a_month_read_the_hourly_counts(bot: Running) -> None:
    await seed_weeks(bot.app.state.history, datetime.now(UTC))

    async def get(path: str) -> str:
        response = await bot.client.get(bot.url + path, headers=BEARER)
        assert response.status_code == 200
        return response.text

    await check_long_windows(get)


async def test_the_messages_pages_list_fifty_newest_first_with_masked_numbers(bot: Running) -> None:
    now = datetime.now(UTC)
    await seed(bot.app.state.history, now)
    first = (await bot.client.get(bot.url + "/dashboard/messages", headers=BEARER)).text
    times = re.findall(r'<td class="time">([^<]+)</td>', first)
    assert len(times) == 50 and times == sorted(times, reverse=True)
    assert 'href="/dashboard/messages?page=2"' in first and "?page=0" not in first
    assert "+1555***0001" in first and "+4477***0123" in first
    pages = [first]
    for number in range(2, 7):
        pages.append((await bot.client.get(bot.url + f"/dashboard/messages?page={number}", headers=BEARER)).text)
    rows = sum(len(re.findall(r'<td class="time">', page)) for page in pages)
    assert rows == 200 + 2 + 7 + 1 + 4  # everything recorded, once
    assert "?page=6" not in pages[4] and "No messages this far back" in pages[5]
    assert_no_raw_numbers(*pages)


async def test_hostile_history_texts_are_escaped_everywhere(bot: Running) -> None:
    """Rows written straight into the table (as another writer of a shared database could), bypassing
    `History.record`'s cleaning: the page escapes and cleans them again, in HTML and in the SVG."""
    now = datetime.now(UTC)
    hostile = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "\x1b[31mred\x1b[0m\u202eevil\x07",
               "</td></tr></table><form action=//evil>", f"call me on {ALICE}"]  # fmt: skip
    rows = [{"at": now - timedelta(minutes=i), "number": ALICE if i == 0 else "+1555***0001", "direction": "in",
             "text": text, "intent": '<svg onload=alert(1)>' if i == 1 else "status", "command": text,
             "source": None, "latency_ms": 5.0, "outcome": "ok", "segments": 1, "message_sid": None, "detail": None}
            for i, text in enumerate(hostile)]  # fmt: skip
    history: History = bot.app.state.history
    async with history.database.engine.begin() as conn:
        await conn.execute(insert(MESSAGES), rows)
    await store_samples(history.database, [Sample(now, "<b onmouseover=alert(1)>db</b>", False, "<i>x</i>", 1.0)])
    pages = [
        (await bot.client.get(bot.url + path, headers=BEARER)).text for path in ["/dashboard", "/dashboard/messages"]
    ]
    for page in pages:
        lowered = page.lower()
        for marker in ["<script", "<img", "<svg onload", "<form action=//evil", "<b onmouseover", "<i>x"]:
            assert marker not in lowered, marker
        assert "\x1b" not in page and "\u202e" not in page and "\x07" not in page
        assert_no_raw_numbers(page)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[1]
    assert "&lt;svg onload=alert(1)&gt;" in pages[0]  # the intent, in the table and the chart
    assert "&lt;b onmouseover=alert(1)&gt;db&lt;/b&gt;" in pages[0]
    assert "red" in pages[1] and "evil" in pages[1]


@pytest.mark.parametrize(
    ("query", "heading"),
    [("", "Last 24 h"), ("?hours=abc", "Last 24 h"), ("?hours=-5", "Last 24 h"), ("?hours=0", "Last 1 h"),
     ("?hours=99999999999999", "Last 24 h"), ("?hours=9999", "Last 720 h"), ("?hours=1e3", "Last 24 h"),
     ("?hours=%00", "Last 24 h"), ("?hours=%D9%A3", "Last 24 h"), ("?hours=6&hours=1", "Last 1 h"),
     ("?hours= 7 ", "Last 7 h"), ("?hours=" + "9" * 5000, "Last 24 h")],
)  # fmt: skip
async def test_the_hours_parameter_is_bounded(bot: Running, query: str, heading: str) -> None:
    response = await bot.client.get(bot.url + "/dashboard" + query, headers=BEARER)
    assert response.status_code == 200
    assert f"<h1>{heading}</h1>" in response.text


@pytest.mark.parametrize("page", ["abc", "-1", "0", "1.5", "99999999999", "%00", "2147483648", "1" * 3000])
async def test_the_page_parameter_is_bounded(bot: Running, page: str) -> None:
    response = await bot.client.get(bot.url + f"/dashboard/messages?page={page}", headers=BEARER)
    assert response.status_code == 200
    assert "<h1>Messages" in response.text


# --- a database that is down or hung ---------------------------------------------------------------


async def test_a_broken_database_gives_a_notice_not_an_error(bot: Running, tmp_path: Path) -> None:
    await seed(bot.app.state.history, datetime.now(UTC))
    with sqlite3.connect(tmp_path / "history.sqlite3") as broken:
        broken.execute("DROP TABLE message_history")
    for path in ["/dashboard", "/dashboard/messages"]:
        response = await bot.client.get(bot.url + path, headers=BEARER)
        assert response.status_code == 503
        assert 'class="notice"' in response.text and "database unavailable" in response.text
        assert "Traceback" not in response.text and str(tmp_path) not in response.text
        assert "message_history" not in response.text
        assert response.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]


async def test_a_hung_database_gives_a_notice_within_the_timeout(bot: Running, tmp_path: Path) -> None:
    server = TcpServer("silent")  # accepts the connection and never says a word
    url = f"postgresql://app:pw@{LOOPBACK}:{server.port}/appdb"
    hung = Database(create_async_engine(engine_url(url, tmp_path / "unused"), hide_parameters=True))
    real = bot.app.state.database
    bot.app.state.database = hung
    try:
        started = time.perf_counter()
        response = await bot.client.get(bot.url + "/dashboard", headers=BEARER)
        assert time.perf_counter() - started < 4.5
        assert response.status_code == 503 and "timed out after 3 s" in response.text
        assert str(server.port) not in response.text
    finally:
        bot.app.state.database = real
        await hung.close()
        server.stop()


# --- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Postgres]:
    with postgres() as running:
        yield running


async def test_the_dashboard_on_postgresql(postgres_server: Postgres, tmp_path: Path) -> None:
    postgres_server.reset()
    async with serve(dashboard_settings(tmp_path, DATABASE_URL=postgres_server.url())) as running:
        history: History = running.app.state.history
        assert history.database.backend == "postgresql"
        now = datetime.now(UTC)
        expected = await seed(history, now)
        await seed_health(history, now)
        visitor = Visitor(running)
        assert (await visitor.login()).status_code == 303
        page = (await visitor.get("/dashboard")).text
        for element_id, count in expected.items():
            assert figure(page, element_id) == str(count), element_id
        assert figure(page, "p95") == f"{nearest_rank(LATENCIES, 0.95):.0f} ms"
        assert f"{100 * (1439 - 120) / 1439:.1f} %" in page
        postgres_server.execute("DELETE FROM health_checks")  # a fresh start: the day's samples would blur them
        postgres_server.execute("DELETE FROM health_hours")
        await seed_weeks(history, now)

        async def get(path: str) -> str:
            return (await visitor.get(path)).text

        await check_long_windows(get)
        messages = (await visitor.get("/dashboard/messages?page=2")).text
        assert len(re.findall(r'<td class="time">', messages)) == 50
        assert_no_raw_numbers(page, messages)
        postgres_server.execute("ALTER ROLE app NOLOGIN", superuser=True)
        try:
            postgres_server.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'", superuser=True
            )
            down = await visitor.get("/dashboard")
            assert down.status_code == 503 and "login rejected" in down.text
            assert str(postgres_server.port) not in down.text
        finally:
            postgres_server.execute("ALTER ROLE app LOGIN", superuser=True)
        assert (await visitor.get("/dashboard")).status_code == 200


# --- the app records health itself -----------------------------------------------------------------


async def test_the_running_app_records_backend_health(tmp_path: Path) -> None:
    async with serve(dashboard_settings(tmp_path, config="health_sample_s: 5\n")) as running:
        page = ""
        for _ in range(100):
            page = (await running.client.get(running.url + "/dashboard", headers=BEARER)).text
            if ">host<" in page:
                break
            await asyncio.sleep(0.1)
        assert ">host<" in page and "100.0 %" in page
    rows = sqlite3.connect(tmp_path / "history.sqlite3").execute("SELECT monitor, ok FROM health_checks").fetchall()
    assert rows and {row[0] for row in rows} == {"host"}


# --- the CLI that makes hashes -----------------------------------------------------------------------


def test_hash_password_reads_stdin_when_it_is_not_a_terminal() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "hash-password"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    assert verify_password(PASSWORD, printed) and PASSWORD not in result.output
    short = CliRunner().invoke(cli, ["dashboard", "hash-password"], input="short\n")
    assert short.exit_code != 0 and "at least 10 characters" in short.output


def test_hash_password_asks_twice_without_echo_on_a_terminal() -> None:
    """On a real terminal (a pty made the child's controlling terminal): two prompts, a mismatch asks
    again, and what is typed is never echoed."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-c", ON_A_TERMINAL, "dashboard", "hash-password"]
    child = subprocess.Popen(command, stdin=follower, stdout=subprocess.PIPE, stderr=follower,  # noqa: S603
                             start_new_session=True, cwd=Path(__file__).parents[2])  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        for answer in [PASSWORD, "a different one", PASSWORD, PASSWORD]:  # a mismatch asks again
            seen = read_until(leader, seen, lambda text: text.rstrip().endswith(b":"))
            os.write(leader, answer.encode() + b"\n")
            seen += b"|"  # this prompt is answered: wait for the next one
        out, _ = child.communicate(timeout=30)
        seen = read_until(leader, seen, lambda text: False, timeout=0.5)
    finally:
        child.kill()
        child.wait()
        os.close(leader)
    assert child.returncode == 0
    assert seen.count(b"Password") == 2 and seen.count(b"Repeat for confirmation") == 2
    assert b"do not match" in seen
    assert PASSWORD.encode() not in seen and b"different" not in seen  # nothing echoed
    assert verify_password(PASSWORD, out.decode().strip())


ON_A_TERMINAL = """
import fcntl, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # a new session's leader takes its stdin's pty as controlling terminal
from bot.cli.main import main
main(sys.argv[1:], prog_name="operator")
"""


def read_until(fd: int, seen: bytes, done: Callable[[bytes], bool], timeout: float = 20.0) -> bytes:
    """Read the pty until `done(seen)`, it closes, or `timeout` passes (never blocks past it)."""
    deadline = time.monotonic() + timeout
    while not done(seen):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child has closed its side
            break
        if not chunk:
            break
        seen += chunk
    return seen
