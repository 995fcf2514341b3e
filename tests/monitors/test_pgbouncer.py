"""pgBouncer against a real pgBouncer in front of a real PostgreSQL, with real clients filling a pool of
two, and against loopback servers that misbehave at the protocol level (silent, HTTP, stuck after login)."""

from __future__ import annotations

import asyncio
import csv
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from monitors.base import DbQuery, LogQuery
from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    describe,
)
from monitors.pgbouncer import PgBouncer, PgBouncerConfig, reason_of, translate
from monitors.pgbouncer_report import SHOW_CLIENTS, SHOW_POOLS, SHOW_STATS, parse_pools, report
from monitors.registry import BuildContext, MonitorConfigError, build_monitors
from monitors.resilience import Guarded
from tests.monitors.servers_postgres import (
    ADMIN_PASSWORD,
    APP_DB,
    APP_PASSWORD,
    APP_USER,
    ODD_DB,
    ODD_USER,
    Bouncer,
    TcpServer,
    load,
    postgres_and_pgbouncer,
    quick_queries,
    refused_dsn,
)
from tests.servers import FaultServer

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "pgbouncer"


@pytest.fixture(scope="module")
def bouncer() -> Iterator[Bouncer]:
    with postgres_and_pgbouncer() as running:
        yield running


def monitor(dsn: str, password: str | None = ADMIN_PASSWORD, timeout_s: float = 3.0,
            database: str | None = None) -> PgBouncer:  # fmt: skip
    return PgBouncer("pgbouncer", PgBouncerConfig(dsn=dsn, timeout_s=timeout_s, database=database), password)


async def ask(dsn: str, metric: str | None = None, **options: Any) -> str:
    bouncer = monitor(dsn, **options)
    return bouncer.format(await bouncer.query(DbQuery(metric)))


def rate(pattern: str, text: str) -> float:
    """The figure `pattern` captures, read back from number()'s "1.5k" style."""
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in {text!r}"
    value = found.group(1)
    return float(value[:-1]) * 1000 if value.endswith("k") else float(value)


# --- a real pgBouncer under real load ----------------------------------------------------------------


async def test_health_gives_the_version(bouncer: Bouncer) -> None:
    health = await monitor(bouncer.admin_dsn).health()
    assert health.ok and re.fullmatch(r"PgBouncer 1\.\d+\.\d+", health.detail)


async def test_the_summary_counts_the_clients_we_made_wait(bouncer: Bouncer) -> None:
    # Five clients on a pool of two: two run pg_sleep on the two servers, three queue.
    with load(bouncer, 5):
        text = await ask(bouncer.admin_dsn, database=APP_DB)
        pool = bouncer.pool()
    assert (pool["cl_active"], pool["cl_waiting"], pool["sv_active"], pool["sv_idle"]) == (2, 3, 2, 0)
    assert re.fullmatch(
        r"pgbouncer appdb: clients 2 active, 3 waiting \(max wait \d+(us|ms|s)\); servers 2 active, 0 idle; \S+ q/s",
        text,
    ), text
    assert len(text) < 160


async def test_the_summary_of_several_databases_names_the_busiest(bouncer: Bouncer) -> None:
    with load(bouncer, 4), load(bouncer, 3, ODD_DB, ODD_USER):
        text = await ask(bouncer.admin_dsn)
    assert re.match(r"pgbouncer \(\d dbs\): clients \d+ active, 3 waiting \(max wait \S+\); servers 4 active", text), (
        text
    )
    assert "by db: appdb 2/2, " in text and "2/1" in text  # the odd database: 2 running, 1 queued
    assert "pgbouncer 1/0" not in text  # our own admin connection is not a client
    assert text.isascii() and "\n" not in text and len(text) < 300


async def test_connections_split_clients_by_what_they_do(bouncer: Bouncer) -> None:
    with psycopg.connect(bouncer.client_dsn(), password=APP_PASSWORD, autocommit=True) as idle:
        idle.execute("SELECT 1")  # done: connected, between transactions, holding no server
        with load(bouncer, 5):
            text = await ask(bouncer.admin_dsn, "connections", database=APP_DB)
    assert re.fullmatch(
        r"pgbouncer appdb connections: clients 2 active, 1 idle, 3 waiting; servers 2 active, 0 idle; max wait \S+",
        text,
    ), text


async def test_pools_give_a_line_per_pool(bouncer: Bouncer) -> None:
    with load(bouncer, 5):
        text = await ask(bouncer.admin_dsn, "pools")
    assert re.match(r"pgbouncer pools: appdb/app cl 2 act 3 wait \(max \S+\), sv 2 act 0 idle, transaction", text), text


async def test_stats_give_real_query_rates(bouncer: Bouncer) -> None:
    done: list[int] = []
    traffic = threading.Thread(target=lambda: done.append(quick_queries(bouncer, 2.5)))
    traffic.start()
    try:
        # pgBouncer averages over its stats period (1 s here): wait for a period full of our traffic.
        deadline = time.monotonic() + 2.3
        text = await ask(bouncer.admin_dsn, "stats", database=APP_DB)
        while rate(r"appdb (\S+) q/s", text) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            text = await ask(bouncer.admin_dsn, "stats", database=APP_DB)
        summary = await ask(bouncer.admin_dsn, database=APP_DB)
    finally:
        traffic.join()
    assert re.fullmatch(
        r"pgbouncer stats: appdb \S+ q/s, \S+ tx/s, avg query \d+ (us|ms), xact \d+ (us|ms), wait \d+ (us|ms)", text
    ), text
    # One client did `done` queries in 2.5 s; a one-second average cannot exceed that, nor be zero.
    assert 0 < rate(r"appdb (\S+) q/s", text) <= done[0]
    assert rate(r"; (\S+) q/s", summary) > 0


async def test_clients_are_counted_by_state_user_and_address(bouncer: Bouncer) -> None:
    with load(bouncer, 4):
        text = await ask(bouncer.admin_dsn, "clients", database=APP_DB)
    assert re.fullmatch(
        r"pgbouncer clients: 4 connected: 2 active, 2 waiting; users app 4; from 127\.0\.0\.1 4; longest wait \S+", text
    ), text


async def test_a_filter_for_a_database_without_pools_says_so(bouncer: Bouncer) -> None:
    assert await ask(bouncer.admin_dsn, database="nosuchdb") == "pgbouncer nosuchdb: no pool for nosuchdb"


async def test_hostile_names_from_the_server_stay_one_short_safe_line(bouncer: Bouncer) -> None:
    # A database and user with quotes, a semicolon, a line break, a bell and non-ASCII letters.
    with load(bouncer, 3, ODD_DB, ODD_USER):
        assert any(row["database"] == ODD_DB for row in bouncer.show("POOLS"))
        texts = [await ask(bouncer.admin_dsn, metric) for metric in (None, "connections", "pools", "stats", "clients")]
        texts.append(await ask(bouncer.admin_dsn, "clients", database=ODD_DB))
    for text in texts:
        assert text.isascii() and text.isprintable() and len(text) < 300, text
    assert 'we"ird;db <?>' in texts[2] and "ev'il\"user;--?" in texts[2]
    assert texts[-1].startswith("pgbouncer clients: 3 connected: 2 active, 1 waiting; users ev'il\"user;--? 3")


async def test_a_dsn_that_reaches_postgresql_instead_of_the_console(bouncer: Bouncer) -> None:
    app = monitor(bouncer.client_dsn(), password=APP_PASSWORD)
    with pytest.raises(BackendQueryError) as caught:
        await app.query(DbQuery())
    assert describe(caught.value) == (
        "pgBouncer: query rejected: not the admin console (the dsn's database must be pgbouncer)"
    )


# --- credentials -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [
        ("opsbot", "wrong-Pa55word!", 401),
        ("opsbot", None, 401),
        ("stranger", "wrong-Pa55word!", 401),
        (APP_USER, APP_PASSWORD, 403),  # a real user, but not an admin or stats user
    ],
    ids=["wrong-password", "no-password", "unknown-user", "not-a-stats-user"],
)
async def test_refused_credentials_say_check_credentials(
    bouncer: Bouncer, caplog: pytest.LogCaptureFixture, user: str, password: str | None, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = bouncer.admin_dsn.replace("opsbot@", f"{user}@")
    with pytest.raises(BackendAuthError) as caught:
        await monitor(dsn, password).health()
    text = describe(caught.value)
    reason = "login refused" if status == 401 else "not an admin or stats user"
    assert text == f"pgBouncer: access denied ({reason}), check credentials"
    for secret in filter(None, (password, ADMIN_PASSWORD)):
        assert secret not in text and secret not in str(caught.value) and secret not in caplog.text


# --- faults, on loopback servers that misbehave -------------------------------------------------------


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_dsn())
    assert describe(caught.value) == "pgBouncer: unreachable (cannot connect)"


@pytest.mark.parametrize("timeout_s", [0.5, 2.5])
async def test_a_server_that_accepts_and_never_speaks_times_out_on_time(timeout_s: float) -> None:
    silent = TcpServer("silent")
    try:
        started = time.monotonic()
        with pytest.raises(BackendTimeout) as caught:
            await ask(silent.dsn, timeout_s=timeout_s)
        assert time.monotonic() - started < timeout_s + 0.5
    finally:
        silent.stop()
    assert describe(caught.value) == f"pgBouncer: timed out after {timeout_s:g} s"


async def test_a_server_stuck_after_login_times_out_on_time(caplog: pytest.LogCaptureFixture) -> None:
    # psycopg, cancelled mid-query, would ask the server to cancel and wait up to 10 s for it;
    # the adapter hangs up on the stuck socket at its deadline instead.
    stuck = TcpServer("login")
    try:
        for metric in ("health", "pools"):
            stuck_monitor = monitor(stuck.dsn, timeout_s=0.5)
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                await (stuck_monitor.health() if metric == "health" else stuck_monitor.query(DbQuery(metric)))
            assert time.monotonic() - started < 1.0
    finally:
        stuck.stop()
    assert "cancel" not in caplog.text


async def test_the_guard_keeps_its_deadline_on_a_stuck_server() -> None:
    stuck = TcpServer("login")
    try:
        guarded = Guarded(monitor(stuck.dsn, timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.query(DbQuery())
        assert time.monotonic() - started < 1.0
    finally:
        stuck.stop()


@pytest.mark.parametrize("options", ["", "?sslmode=disable"], ids=["ssl-prefer", "ssl-disable"])
async def test_a_server_answering_http_is_one_clear_line(options: str) -> None:
    web = TcpServer("http")
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(web.dsn + options)
    finally:
        web.stop()
    assert describe(caught.value) == "pgBouncer: unreadable answer (not a PostgreSQL server)"


async def test_an_http_server_waiting_for_a_request_line_times_out(fault_server: FaultServer) -> None:
    port = httpx.URL(fault_server.url).port
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await ask(f"postgresql://opsbot@127.0.0.1:{port}/pgbouncer", timeout_s=0.5)
    assert time.monotonic() - started < 1.0


async def test_questions_it_cannot_answer_are_refused() -> None:
    bouncer = monitor(refused_dsn())
    with pytest.raises(BackendQueryError) as caught:
        await bouncer.query(DbQuery("replication"))
    assert describe(caught.value) == "pgBouncer: query rejected: ask for connections, pools, stats or clients"
    with pytest.raises(BackendQueryError):
        await bouncer.query(LogQuery())


# --- configuration -----------------------------------------------------------------------------------


async def test_the_password_comes_from_the_secrets_only() -> None:
    async with httpx.AsyncClient() as client:
        context = BuildContext(client=client, secrets={"pgbouncer_password": "from-env"})
        registry = build_monitors({"pgbouncer": {"dsn": "postgresql://opsbot@db/pgbouncer"}}, context, guard=False)
    built = registry.get("pgbouncer")
    assert isinstance(built, PgBouncer) and built._password == "from-env"
    assert (built.system, built.display, built.timeout_s) == ("database", "pgBouncer", 3.0)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://opsbot:hunter2-secret@db:6432/pgbouncer",
        "host=db port=6432 dbname=pgbouncer password=hunter2-secret",
        "host='db",
    ],  # fmt: skip
)
async def test_a_password_in_the_dsn_or_a_broken_dsn_is_refused_without_echoing_it(dsn: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(MonitorConfigError) as caught:
            build_monitors({"pgbouncer": {"dsn": dsn}}, BuildContext(client=client), guard=False)
    assert str(caught.value) == "monitor 'pgbouncer': invalid dsn"


# --- contract: the recorded 1.18 console output -------------------------------------------------------


def recorded(name: str) -> list[dict[str, str]]:
    lines = (FIXTURES / name).read_text().splitlines()
    return list(csv.DictReader(line for line in lines if not line.startswith("(")))


RECORDED = {SHOW_POOLS: recorded("show_pools_1_18.csv"), SHOW_STATS: recorded("show_stats_1_18.csv"),
            SHOW_CLIENTS: recorded("show_clients_1_18.csv")}  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "text"),
    [
        (None, "pgbouncer appdb: clients 5 active, 3 waiting (max wait 8s); servers 5 active, 0 idle; 1 q/s"),
        (
            "connections",
            "pgbouncer connections: clients 5 active, 0 idle, 3 waiting; servers 5 active, 0 idle; max wait 8s",
        ),
        ("pools", "pgbouncer pools: appdb/app cl 5 act 3 wait (max 8s), sv 5 act 0 idle, transaction"),
        ("stats", "pgbouncer stats: appdb 1 q/s, 1 tx/s, avg query 903 us, xact 903 us, wait 7 ms"),
        (
            "clients",
            "pgbouncer clients: 8 connected: 5 active, 3 waiting; users app 8; from 127.0.0.1 8; longest wait 8s",
        ),
    ],
)
def test_recorded_console_output(metric: str | None, text: str) -> None:
    result = report(metric, RECORDED)
    assert monitor("host=db").format(result) == text


def test_the_admin_pool_is_left_out_unless_asked_for() -> None:
    assert [p.database for p in parse_pools(RECORDED[SHOW_POOLS])] == ["appdb"]
    assert [p.user for p in parse_pools(RECORDED[SHOW_POOLS], "pgbouncer")] == ["pgbouncer"]


def test_hostile_recorded_values_stay_one_short_line() -> None:
    evil = "app\nSTOP\r\x07" + "x" * 500 + "\u202e"
    pools = [dict(RECORDED[SHOW_POOLS][0], database=f"{n}{evil}", user=f"{n}{evil}") for n in range(6)]
    stats = [dict(RECORDED[SHOW_STATS][0], database=f"{n}{evil}") for n in range(6)]
    clients = [dict(row, user=f"{n}{evil}", addr=f"{n}{evil}") for n, row in enumerate(RECORDED[SHOW_CLIENTS])]
    answers = {SHOW_POOLS: pools, SHOW_STATS: stats, SHOW_CLIENTS: clients}
    texts = [
        monitor("host=db").format(report(metric, answers))
        for metric in (None, "connections", "pools", "stats", "clients")
    ]
    for text in texts:
        assert text.isascii() and text.isprintable() and len(text) <= 300, text
    assert texts[2].endswith("more") and texts[3].endswith("more")  # the lines that did not fit are counted


@pytest.mark.parametrize(
    ("row", "detail"),
    [
        ({"cl_active": "many"}, "cl_active is not a number"),
        ({"cl_waiting": None}, "no cl_waiting column"),
        ({"sv_active": "-1"}, "sv_active is out of range"),
        ({"maxwait": "nan"}, "maxwait is out of range"),
    ],
)
def test_garbage_figures_are_an_unreadable_answer(row: dict[str, Any], detail: str) -> None:
    pools = [dict(RECORDED[SHOW_POOLS][0], **row)]
    with pytest.raises(BadBackendResponse) as caught:
        report("pools", {SHOW_POOLS: pools})
    assert describe(caught.value) == f"pgBouncer: unreadable answer ({detail})"


@pytest.mark.parametrize(
    ("message", "error", "text"),
    [
        (
            'connection failed: connection to server at "10.1.2.3", port 6432 failed: FATAL:  no such database: x',
            BackendError,
            "pgBouncer: failed (no such database: x)",
        ),
        (
            'connection failed: connection to server on socket "/run/pg/.s.PGSQL.6432" failed: No such file or directory',
            BackendUnavailable,
            "pgBouncer: unreachable (cannot connect)",
        ),
        (
            'connection failed: connection to server at "db.internal.example" (10.0.0.5), port 6432 failed: '
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            BackendUnavailable,
            "pgBouncer: unreachable (connection lost)",
        ),
        (
            'connection failed: could not translate host name "db.internal.example" to address: Name or service not known',
            BackendUnavailable,
            "pgBouncer: unreachable (cannot connect)",
        ),
        (
            'connection failed: connection to server at "10.1.2.3", port 6432 failed: FATAL:  no more connections allowed '
            "(max_client_conn) to db.internal.example:6432",
            BackendError,
            "pgBouncer: failed (no more connections allowed (max_client_conn) to <host>)",
        ),
    ],  # fmt: skip
)
def test_library_errors_become_short_lines_without_hosts(message: str, error: type, text: str) -> None:
    translated = translate(psycopg.OperationalError(message), 3.0)
    assert type(translated) is error and describe(translated) == text
    assert "10." not in describe(translated) and "example" not in describe(translated)


def test_the_libpq_preamble_is_dropped() -> None:
    assert (
        reason_of('connection failed: connection to server at "h", port 1 failed: FATAL:  not allowed') == "not allowed"
    )
    assert reason_of("") == "failed"
