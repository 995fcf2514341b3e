"""The audit history on a real SQLite file and a real PostgreSQL: round trips, order, masking done inside
`record`, caps and control characters, volume and concurrency, and failures that never leak the URL."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import stat
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.db.cleaning import clean_text
from bot.db.database import DatabaseUnavailable, engine_url
from bot.db.history import History, HistoryEntry, Outcome, format_entries, open_history, show_recent
from bot.db.schema import COMMAND_MAX, DETAIL_MAX, TEXT_MAX
from tests.bot.servers_history import Postgres, postgres
from tests.monitors.servers_postgres import APP_PASSWORD, TcpServer
from tests.servers import LOOPBACK, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

ALICE = "+15551230001"
BOB = "+15551230002"
T0 = datetime(2024, 5, 1, 3, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Postgres]:
    with postgres() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
async def history(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[History]:
    """An empty history on each backend; PostgreSQL's table is dropped first, so creation is tested too."""
    if request.param == "sqlite":
        opened = await open_history(None, tmp_path / "history.sqlite3")
    else:
        server: Postgres = request.getfixturevalue("postgres_server")
        server.reset()
        opened = await open_history(server.url(), tmp_path / "unused.sqlite3")
    assert opened.database.backend == request.param
    yield opened
    await opened.close()


# --- both backends --------------------------------------------------------------------------------


async def test_round_trip_keeps_every_field(history: History) -> None:
    stored = await history.record(
        ALICE,
        "in",
        "any payment errors?",
        intent="logs",
        command="logs service=payment level=error",
        source="nl",
        latency_ms=812.25,
        outcome=Outcome.OK,
        segments=2,
        message_sid="SM0123456789abcdef0123456789abcdef",
        detail="3 lines",
        at=T0,
    )
    assert stored == HistoryEntry(
        at=T0, number="+1555***0001", direction="in", text="any payment errors?", intent="logs",
        command="logs service=payment level=error", source="nl", latency_ms=812.25, outcome="ok", segments=2,
        message_sid="SM0123456789abcdef0123456789abcdef", detail="3 lines",
    )  # fmt: skip
    assert await history.recent() == [stored]
    assert await history.count() == 1
    (read,) = await history.recent()
    assert read.at.tzinfo is not None and read.at.utcoffset() == timedelta(0)


async def test_ping_answers(history: History) -> None:
    await history.database.ping()
    assert await history.count() == 0


async def test_optional_fields_stay_empty(history: History) -> None:
    stored = await history.record(BOB, "out", "Sorry, I can't do that yet.", outcome="unknown")
    (read,) = await history.recent()
    assert read == stored
    assert (read.intent, read.command, read.source, read.message_sid, read.detail) == (None,) * 5
    assert read.at > datetime.now(UTC) - timedelta(minutes=1)


async def test_times_in_other_zones_are_stored_as_utc(history: History) -> None:
    paris = timezone(timedelta(hours=2))
    await history.record(ALICE, "in", "status", at=datetime(2024, 5, 1, 5, 0, 0, 123456, tzinfo=paris))
    (read,) = await history.recent()
    assert read.at == T0 and read.at.tzinfo == UTC


async def test_recent_is_newest_first_and_limited(history: History) -> None:
    for minutes, text in [(5, "third"), (0, "first"), (10, "fourth"), (2, "second")]:
        await history.record(ALICE, "in", text, at=T0 + timedelta(minutes=minutes))
    assert [e.text for e in await history.recent()] == ["fourth", "third", "second", "first"]
    assert [e.text for e in await history.recent(2)] == ["fourth", "third"]
    assert await history.recent(0) == []


async def test_same_instant_keeps_insertion_order(history: History) -> None:
    for text in ["a", "b", "c"]:
        await history.record(ALICE, "in", text, at=T0)
    assert [e.text for e in await history.recent()] == ["c", "b", "a"]


async def test_record_masks_the_number_itself(history: History) -> None:
    stored = await history.record(ALICE, "in", "text me back at +1 (555) 999-0042 or +447700900123")
    assert stored.number == "+1555***0001"
    assert stored.text == "text me back at +1555***0042 or +4477***0123"
    (read,) = await history.recent()
    assert read.number == "+1555***0001" and "9990042" not in read.text


@pytest.mark.parametrize(
    "number, stored",
    [
        pytest.param("+15551230001", "+1555***0001", id="e164"),
        pytest.param(" 15551230001 ", "1555***0001", id="no-plus-spaces"),
        pytest.param("+1555***0001", "<invalid number>", id="already-masked-is-not-a-number"),
        pytest.param("'; DROP TABLE message_history; --", "<invalid number>", id="forged-from"),
        pytest.param("", "<no number>", id="empty"),
    ],
)
async def test_only_masks_reach_the_table(history: History, number: str, stored: str) -> None:
    await history.record(number, "in", "hi")
    assert [e.number for e in await history.recent()] == [stored]


async def test_caps_and_control_characters_round_trip(history: History) -> None:
    text = "line one\r\n\x1b[31mred\x1b[0m\x00 \u202eevil\u202c \x07" + "x" * 5000
    stored = await history.record(
        ALICE, "in", text, command="c" * 500, detail="d\n" * 500, outcome="Rate Limited!", intent="LOGS\x1b[2J"
    )
    assert stored.text.startswith("line one red evil x")
    assert len(stored.text) == TEXT_MAX
    assert stored.command == "c" * COMMAND_MAX
    assert stored.detail is not None and len(stored.detail) == DETAIL_MAX and "\n" not in stored.detail
    assert (stored.outcome, stored.intent) == ("rate_limited", "logs")
    assert await history.recent() == [stored]


async def test_a_thousand_rows_go_in_and_come_out_in_order(history: History) -> None:
    for i in range(1000):
        await history.record(ALICE if i % 2 else BOB, "in", f"status {i}", intent="status", latency_ms=i,
                             at=T0 + timedelta(seconds=i))  # fmt: skip
    entries = await history.recent(1000)
    assert [e.text for e in entries] == [f"status {i}" for i in reversed(range(1000))]
    assert await history.count() == 1000


async def test_many_tasks_record_at_once(history: History) -> None:
    async def one(i: int) -> HistoryEntry:
        return await history.record(f"+1555123{i:04d}", "in", f"text {i}", message_sid=f"SM{i:032x}")

    stored = await asyncio.gather(*(one(i) for i in range(200)))
    read = await history.recent(500)
    assert await history.count() == 200
    assert sorted(e.message_sid or "" for e in read) == sorted(e.message_sid or "" for e in stored)
    assert {e.number for e in read} == {f"+1555***{i:04d}" for i in range(200)}


# --- SQLite specifics -----------------------------------------------------------------------------


async def test_sqlite_file_never_holds_the_raw_number(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.sqlite3"
    async with await open_history(None, path) as history:
        for _ in range(3):
            await history.record(ALICE, "in", "status")
    on_disk = b"".join(p.read_bytes() for p in path.parent.iterdir())
    assert b"+1555***0001" in on_disk
    assert b"5551230001" not in on_disk
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_sqlite_history_is_kept_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    async with await open_history(None, path) as history:
        await history.record(ALICE, "in", "status", at=T0)
    async with await open_history(None, path) as history:
        await history.record(ALICE, "out", "All good", at=T0 + timedelta(seconds=1))
        assert [e.text for e in await history.recent()] == ["All good", "status"]


async def test_sqlite_reads_by_the_time_index(tmp_path: Path) -> None:
    """Dashboards over 10,000+ rows page by time: the newest-first query must walk the index, not sort."""
    path = tmp_path / "history.sqlite3"
    async with await open_history(None, path):
        pass
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row) for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM message_history ORDER BY at DESC, id DESC LIMIT 20"
        ))  # fmt: skip
        indexes = {row[1] for row in conn.execute("PRAGMA index_list('message_history')")}
    assert "ix_message_history_at" in plan
    assert {"ix_message_history_at", "ix_message_history_message_sid"} <= indexes


@pytest.mark.parametrize("blocker", ["parent-is-a-file", "path-is-a-directory"])
async def test_unusable_sqlite_path_is_history_unavailable(tmp_path: Path, blocker: str) -> None:
    if blocker == "parent-is-a-file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "history.sqlite3"
    else:
        path = tmp_path / "dir"
        path.mkdir()
    with pytest.raises(DatabaseUnavailable) as caught:
        await open_history(None, path)
    assert str(tmp_path) not in str(caught.value)


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseUnavailable, match="not an SQLite database"):
        await open_history(None, path)


# --- PostgreSQL specifics -------------------------------------------------------------------------


async def test_postgres_scheme_and_nul_bytes(postgres_server: Postgres, tmp_path: Path) -> None:
    """`postgres://` (Heroku's spelling) works; a NUL, which PostgreSQL refuses in text, is removed first."""
    postgres_server.reset()
    async with await open_history(postgres_server.url(scheme="postgres"), tmp_path / "x.sqlite3") as history:
        await history.record(ALICE, "in", "nul\x00here")
        assert [e.text for e in await history.recent()] == ["nulhere"]
    rows = postgres_server.execute("SELECT number, text FROM message_history")
    assert rows == [("+1555***0001", "nulhere")]
    assert not (tmp_path / "x.sqlite3").exists()


async def test_postgres_table_has_a_time_index(postgres_server: Postgres, tmp_path: Path) -> None:
    postgres_server.reset()
    async with await open_history(postgres_server.url(), tmp_path / "x.sqlite3"):
        pass
    indexes = postgres_server.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'message_history'")
    assert any("ix_message_history_at" in str(row) and "(at)" in str(row) for row in indexes)
    columns = {
        str(name): str(kind)
        for name, kind in postgres_server.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'message_history'"
        )
    }
    assert columns["at"] == "timestamp with time zone"


WRONG_PASSWORD = "Wr0ng-pa55;word@x"


def assert_safe(error: DatabaseUnavailable, *secrets: str) -> None:
    """Neither the message nor anything in the chain a careless `logger.exception` would print holds a
    secret; the message does not even name the host."""
    message = str(error)
    chain = "".join(traceback.format_exception(error))
    for secret in secrets:
        assert secret not in message
        assert secret not in chain
    assert LOOPBACK not in message
    assert "postgresql" not in message.lower()
    assert len(message) < 120


@pytest.mark.parametrize(
    "password, port_of, reason",
    [
        pytest.param(WRONG_PASSWORD, lambda server: server.port, "login rejected", id="wrong-password"),
        pytest.param(APP_PASSWORD, lambda server: free_port(), "connection refused", id="refused-port"),
    ],
)
async def test_postgres_failures_are_safe(
    postgres_server: Postgres, tmp_path: Path, password: str, port_of: object, reason: str
) -> None:
    url = postgres_server.url(password=password, port=port_of(postgres_server))  # type: ignore[operator]
    started = time.perf_counter()
    with pytest.raises(DatabaseUnavailable) as caught:
        await open_history(url, tmp_path / "x.sqlite3")
    assert reason in str(caught.value)
    assert_safe(caught.value, password)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("mode", ["silent", "login"])
async def test_a_hung_database_times_out(tmp_path: Path, mode: str) -> None:
    """Silent after connect, or logged in and then never answering a query: bounded by `timeout_s`."""
    server = TcpServer(mode)
    try:
        url = f"postgresql://app:{quote(WRONG_PASSWORD, safe='')}@{LOOPBACK}:{server.port}/appdb"
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable, match="timed out") as caught:
            await open_history(url, tmp_path / "x.sqlite3", timeout_s=0.5)
        assert time.perf_counter() - started < 1.5
        assert_safe(caught.value, WRONG_PASSWORD)
    finally:
        server.stop()


async def test_database_going_away_is_unavailable_not_a_crash(postgres_server: Postgres, tmp_path: Path) -> None:
    """Connections cut and logins refused under an open history: `record` raises DatabaseUnavailable (which
    the app catches), and works again once logins are allowed."""
    postgres_server.reset()
    history = await open_history(postgres_server.url(), tmp_path / "x.sqlite3")
    try:
        postgres_server.execute("ALTER ROLE app NOLOGIN", superuser=True)
        postgres_server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'", superuser=True
        )
        with pytest.raises(DatabaseUnavailable, match="login rejected") as caught:
            await history.record(ALICE, "in", "status")
        assert_safe(caught.value, APP_PASSWORD)
        with pytest.raises(DatabaseUnavailable, match="login rejected"):
            await history.database.ping()
    finally:
        postgres_server.execute("ALTER ROLE app LOGIN", superuser=True)
    await history.record(ALICE, "in", "back again")  # the pool reconnects once the database is back
    assert [e.text for e in await history.recent()] == ["back again"]
    await history.close()


async def test_a_blocked_record_gives_up_at_the_timeout(postgres_server: Postgres, tmp_path: Path) -> None:
    """A table locked by someone else (a migration, a stuck dashboard query): the reply path waits
    `timeout_s`, not psycopg's extra cancellation grace, and the history works once the lock goes."""
    postgres_server.reset()
    history = await open_history(postgres_server.url(), tmp_path / "x.sqlite3", timeout_s=0.5)
    try:
        with postgres_server.connect(superuser=True) as locker:
            locker.execute(b"LOCK TABLE message_history IN ACCESS EXCLUSIVE MODE")
            started = time.perf_counter()
            with pytest.raises(DatabaseUnavailable, match="timed out after 0.5 s recording"):
                await history.record(ALICE, "in", "status")
            assert time.perf_counter() - started < 1
        await history.record(ALICE, "in", "after the lock")
        assert [e.text for e in await history.recent(1)] == ["after the lock"]  # the cut-off one may land or not
    finally:
        await history.close()


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "database_url, expected",
    [
        pytest.param(None, "sqlite+aiosqlite:////var/lib/operator/history.sqlite3", id="default-sqlite"),
        pytest.param("  ", "sqlite+aiosqlite:////var/lib/operator/history.sqlite3", id="blank-is-unset"),
        pytest.param(
            "postgres://u:p@db:5432/ops", "postgresql+psycopg://u:p@db:5432/ops?connect_timeout=5", id="heroku"
        ),
        pytest.param("postgresql://u:p@db/ops", "postgresql+psycopg://u:p@db/ops?connect_timeout=5", id="postgresql"),
        pytest.param(
            "postgresql+psycopg://u@db/ops?connect_timeout=2",
            "postgresql+psycopg://u@db/ops?connect_timeout=2",
            id="explicit-driver",
        ),
        pytest.param("sqlite:////tmp/h.db", "sqlite+aiosqlite:////tmp/h.db", id="sqlite-url"),
    ],
)
def test_engine_url(database_url: str | None, expected: str) -> None:
    url = engine_url(database_url, Path("/var/lib/operator/history.sqlite3"))
    assert url.render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "database_url, message",
    [
        pytest.param("mysql://root:hunter2@db/ops", "scheme 'mysql' is not supported", id="other-database"),
        pytest.param("hunter2 is not a url", "not a database URL", id="garbage"),
        pytest.param("://root:hunter2@db/ops", "not a database URL", id="no-scheme"),
        pytest.param("sqlite://", "in-memory SQLite history would be lost", id="sqlite-in-memory"),
    ],
)
def test_bad_urls_are_refused_without_echoing_them(database_url: str, message: str) -> None:
    with pytest.raises(DatabaseUnavailable, match=message) as caught:
        engine_url(database_url, Path("h.sqlite3"))
    assert "hunter2" not in "".join(traceback.format_exception(caught.value))


# --- text and printing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        pytest.param("status", "status", id="plain"),
        pytest.param("  db conns?\n\n and auth  ", "db conns? and auth", id="line-breaks"),
        pytest.param("\x1b[2J\x1b[1;31mboom\x1b[0m", "boom", id="terminal-escapes"),
        pytest.param("\x1b]8;;http://evil\x07link\x1b]8;;\x07", "link", id="osc-hyperlink"),
        pytest.param("pay\u202egnp.exe", "paygnp.exe", id="bidi-override"),
        pytest.param("a\x00b\x7fc\x9bd", "abcd", id="nul-del-c1"),
        pytest.param("bad \udcff surrogate", "bad  surrogate", id="lone-surrogate"),
        pytest.param("call +1 555 123 0001", "call +1555***0001", id="spaced-number"),
        pytest.param("p99 1234567 ms at 2024-05-01 03:00", "p99 1234567 ms at 2024-05-01 03:00", id="figures-kept"),
        pytest.param("ok 👍 café", "ok 👍 café", id="unicode-kept"),
    ],
)
def test_clean_text(raw: str, cleaned: str) -> None:
    assert clean_text(raw, TEXT_MAX) == cleaned


def test_format_entries_one_line_each() -> None:
    entries = [
        HistoryEntry(T0 + timedelta(seconds=1), "+1555***0001", "out", "Payment: 3 errors in 1h", intent="logs",
                     command="logs service=payment level=error", latency_ms=812.4, outcome="ok", segments=1),
        HistoryEntry(T0, "+1555***0001", "in", "any payment errors?", intent="logs", source="nl",
                     command="logs service=payment level=error", latency_ms=0.0, outcome="ok"),
    ]  # fmt: skip
    assert format_entries(entries).splitlines() == [
        "2024-05-01 03:00:01Z  +1555***0001      out  logs         logs service=payment level=error         812 ms  ok            Payment: 3 errors in 1h",
        "2024-05-01 03:00:00Z  +1555***0001      in   logs         logs service=payment level=error           0 ms  ok            any payment errors?",
    ]


def test_format_entries_shortens_and_cleans_what_it_prints() -> None:
    """Rows may come from a shared database someone else writes: escapes never reach the terminal."""
    entry = HistoryEntry(T0, "\x1b[2J+1555***0001", "in", "\x1b]0;pwned\x07" + "y" * 100 + "\nsecond line",
                         command="metrics latency service=checkout range=6h extra words")  # fmt: skip
    (line,) = format_entries([entry]).splitlines()
    assert "\x1b" not in line and "\x07" not in line
    assert line.endswith("y" * 59 + "…")
    assert "metrics latency service=checkout ra…" in line
    assert "  -  " in line  # no intent
    assert format_entries([]) == "no messages recorded yet"


async def test_show_recent_prints_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    async with await open_history(None, path) as history:
        for i in range(5):
            await history.record(ALICE, "in", f"text {i}", at=T0 + timedelta(seconds=i))
    out = io.StringIO()
    await show_recent(None, path, 3, out)
    lines = out.getvalue().splitlines()
    assert [line.rsplit(maxsplit=2)[-2:] for line in lines] == [["text", "4"], ["text", "3"], ["text", "2"]]
    assert all("+1555***0001" in line for line in lines)


async def test_show_recent_on_a_fresh_install(tmp_path: Path) -> None:
    out = io.StringIO()
    await show_recent(None, tmp_path / "new" / "history.sqlite3", 20, out)
    assert out.getvalue() == "no messages recorded yet\n"


@pytest.mark.parametrize(
    "arguments, message",
    [
        pytest.param({"direction": "sideways"}, "direction", id="bad-direction"),
        pytest.param({"at": datetime(2024, 5, 1, 3, 0)}, "timezone-aware", id="naive-time"),
    ],
)
async def test_programming_errors_are_value_errors(tmp_path: Path, arguments: dict[str, object], message: str) -> None:
    async with await open_history(None, tmp_path / "history.sqlite3") as history:
        call: dict[str, object] = {"direction": "in", **arguments}
        with pytest.raises(ValueError, match=message):
            await history.record(ALICE, text="status", **call)  # type: ignore[arg-type]
        assert await history.count() == 0
