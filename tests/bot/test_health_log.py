"""The health history: revision 0002 on a real SQLite file and a real PostgreSQL (fresh upgrade gives the
models' schema, an 0001 database gets only 0002, downgrade to 0001 drops the table and keeps the rest),
and `HealthRecorder` with scripted monitors: one row per monitor per sample, timeouts and cached answers,
only while holding the lease (two recorders on one lease: exactly one records), pruning, and a loop that
survives database and monitor failures, logging each episode once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.db.database import Database, DatabaseUnavailable, engine_url
from bot.db.health_log import KEEP_S, HealthRecorder, Sample, health_recording, hour_of, prune, store_samples
from bot.db.history import History, make_entry, open_history
from bot.db.migrate import VERSION_TABLE, current, downgrade, target_metadata, upgrade
from bot.db.schema import HEALTH_CHECKS, HEALTH_HOURS
from bot.state.memory.lease import FileLease
from bot.state.protocols import StoreUnavailable
from monitors.base import Health
from monitors.errors import BackendUnavailable
from monitors.resilience import HealthCache
from tests.bot.servers_history import Postgres, postgres
from tests.fakes import Scripted
from tests.monitors.servers_postgres import APP_PASSWORD, APP_USER, SERVER_USER
from tests.servers import LOOPBACK

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

ALICE = "+15551230001"


# --- revision 0002 on both databases ---------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Postgres]:
    with postgres() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database of its own on each backend (a new PostgreSQL database per test)."""
    if request.param == "sqlite":
        made = create_async_engine(engine_url(None, tmp_path / "health.sqlite3"))
    else:
        server: Postgres = request.getfixturevalue("postgres_server")
        name = f"health_{uuid.uuid4().hex[:12]}"
        superuser = psycopg.conninfo.make_conninfo(host=str(server.sockets), port=server.port, dbname="postgres",
                                                   user=SERVER_USER)  # fmt: skip
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {APP_USER}".encode())
        url = f"postgresql://{APP_USER}:{quote(APP_PASSWORD, safe='')}@{LOOPBACK}:{server.port}/{name}"
        made = create_async_engine(engine_url(url, tmp_path / "unused"))
    yield made
    await made.dispose()


def differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return list(compare_metadata(context, target_metadata()))  # type: ignore[arg-type]


def shape(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    return {
        "tables": set(inspector.get_table_names()) - {VERSION_TABLE},
        "columns": [(c["name"], str(c["type"]).split("(")[0], c["nullable"]) for c in inspector.get_columns("health_checks")]
        if inspector.has_table("health_checks") else [],
        "indexes": [(i["name"], i["column_names"]) for i in inspector.get_indexes("health_checks")]
        if inspector.has_table("health_checks") else [],
    }  # fmt: skip


async def read(engine: AsyncEngine, what: Callable[[Connection], Any]) -> Any:
    async with engine.connect() as conn:
        return await conn.run_sync(what)


async def test_a_fresh_upgrade_makes_the_health_table_as_modelled(engine: AsyncEngine) -> None:
    assert await upgrade(engine) == "0002"
    assert await read(engine, differences) == []
    made = await read(engine, shape)
    assert made["tables"] == {"message_history", "alert_subscriptions", "health_checks", "health_hours"}
    assert [name for name, *_ in made["columns"]] == ["id", "at", "monitor", "ok", "detail", "latency_ms"]
    assert [nullable for *_, nullable in made["columns"]] == [False, False, False, False, True, True]
    assert sorted(made["indexes"]) == [("ix_health_checks_at", ["at"]),
                                       ("ix_health_checks_monitor_at", ["monitor", "at"])]  # fmt: skip
    now = datetime.now(UTC)
    await store_samples(Database(engine), [Sample(now, "prometheus", True, "ready", 12.5)])
    async with engine.connect() as conn:
        rows = (await conn.execute(select(HEALTH_CHECKS.c.at, HEALTH_CHECKS.c.ok, HEALTH_CHECKS.c.latency_ms))).all()
    assert [(at, ok, latency) for at, ok, latency in rows] == [(now, True, 12.5)]  # aware UTC out, as in


async def test_samples_are_counted_per_monitor_per_hour_as_they_are_stored(engine: AsyncEngine) -> None:
    """The hourly counts the long windows read: summed within a batch (PostgreSQL refuses one upsert touching
    a row twice) and across batches (the upsert adds), pruned by whole hours."""
    await upgrade(engine)
    history = History(Database(engine))
    hour = datetime(2026, 11, 20, 10, tzinfo=UTC)
    at = [hour + timedelta(minutes=m) for m in (0, 20, 59, 60, 61)]
    await store_samples(
        history.database,
        [
            Sample(at[0], "db", True, "", None),
            Sample(at[1], "db", False, "down", None),
            Sample(at[1], "web", True, "", None),
            Sample(at[3], "db", True, "", None),
        ],
    )
    await store_samples(history.database, [Sample(at[2], "db", True, "", None), Sample(at[4], "db", False, "x", None)])
    r = HEALTH_HOURS.c

    async def hours() -> list[tuple[Any, ...]]:
        async with engine.connect() as conn:
            query = select(r.monitor, r.hour, r.samples, r.ups).order_by(r.monitor, r.hour)
            return [tuple(row) for row in (await conn.execute(query)).all()]

    first = hour_of(hour)
    assert first == int(hour.timestamp()) // 3600
    assert await hours() == [("db", first, 3, 2), ("db", first + 1, 2, 1), ("web", first, 1, 1)]
    assert await prune(history.database, at[3]) == 4  # samples before 11:00; the 10:00 hours go with them
    assert await hours() == [("db", first + 1, 2, 1)]


async def test_downgrade_to_0001_drops_only_the_health_tables_and_upgrade_brings_them_back(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await upgrade(engine)
    await History(Database(engine)).store([make_entry(ALICE, "in", "kept across the downgrade")])
    await store_samples(Database(engine), [Sample(datetime.now(UTC), "host", True, "", None)])
    assert await downgrade(engine, "0001") == "0001"
    assert await current(engine) == "0001"
    assert (await read(engine, shape))["tables"] == {"message_history", "alert_subscriptions"}
    caplog.set_level(logging.INFO, logger="alembic")
    assert await upgrade(engine) == "0002"
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Running upgrade")] == [
        "Running upgrade 0001 -> 0002, Backend health history for the dashboard "
        "(`bot.db.health_log.HEALTH_CHECKS` and `HEALTH_HOURS`)."
    ]
    assert await read(engine, differences) == []
    assert [entry.text for entry in await History(Database(engine)).recent()] == ["kept across the downgrade"]


# --- the recorder ---------------------------------------------------------------------------------


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    async with await open_history(None, tmp_path / "history.sqlite3") as opened:
        yield opened


async def rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    c = HEALTH_CHECKS.c
    async with engine.connect() as conn:
        query = select(c.monitor, c.ok, c.detail, c.latency_ms, c.at).order_by(c.id)
        return [tuple(row) for row in (await conn.execute(query)).all()]


class Always:
    """A lease that is always (or never) this process's, or whose store is down."""

    def __init__(self, held: bool = True, down: bool = False) -> None:
        self.held = held
        self.down = down
        self.calls = 0

    async def hold(self) -> bool:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("redis unavailable")
        return self.held

    async def release(self) -> None:
        self.held = False


def recorder(history: History, monitors: list[Any], lease: Any = None, **options: Any) -> HealthRecorder:
    return HealthRecorder(history.database, monitors, options.pop("cache", HealthCache()), lease or Always(),
                          interval_s=options.pop("interval_s", 60.0), deadline_s=options.pop("deadline_s", 1.0),
                          **options)  # fmt: skip


async def test_a_sample_is_one_row_per_monitor_with_its_answer(history: History) -> None:
    monitors = [
        Scripted("prometheus"),
        Scripted("loki", error=BackendUnavailable("Loki", "connection refused")),
        Scripted("slow", delay_s=5, timeout_s=10),
    ]
    started = time.perf_counter()
    assert await recorder(history, monitors, deadline_s=0.3).sample() == 3
    assert time.perf_counter() - started < 2  # by the deadline, not the slow monitor's 5 s
    recorded = {
        monitor: (ok, detail, latency) for monitor, ok, detail, latency, _ in await rows(history.database.engine)
    }
    assert recorded["prometheus"][:2] == (True, "fine after 0s")
    assert recorded["loki"][:2] == (False, "Loki: connection refused")
    assert recorded["slow"][:2] == (False, "Slow: timed out after 0.3 s")
    assert 250 <= recorded["slow"][2] < 1500  # how long it was waited for
    assert recorded["prometheus"][2] < 250
    assert len({at for *_, at in await rows(history.database.engine)}) == 1  # one moment per sample


async def test_an_answer_from_the_health_cache_has_no_latency(history: History) -> None:
    """`status` asked a moment ago: the recorder reuses that answer (no extra load) but cannot time it."""
    cache = HealthCache(ttl_s=60)
    asked = Scripted("prometheus")
    await cache.check(asked)
    await asyncio.sleep(0.01)
    await recorder(history, [asked, Scripted("loki")], cache=cache).sample()
    assert asked.calls == 1
    latencies = {monitor: latency for monitor, _, _, latency, _ in await rows(history.database.engine)}
    assert latencies["prometheus"] is None and latencies["loki"] is not None


async def test_details_are_cleaned_before_they_are_stored(history: History) -> None:
    class Chatty(Scripted):
        async def health(self) -> Health:
            return Health(True, f"\x1b[31mpaged {ALICE}\x1b[0m\u202e" + "x" * 500)

    await recorder(history, [Chatty("chatty")]).sample()
    [(_, _, detail, _, _)] = await rows(history.database.engine)
    assert detail.startswith("paged +1555***0001") and len(detail) == 200
    assert "\x1b" not in detail and "\u202e" not in detail


async def test_only_the_lease_holder_records(history: History, tmp_path: Path) -> None:
    """Two workers on one machine share the rules' file lease: each sample is recorded once, by the holder,
    and the other takes over when the holder lets go."""
    path = tmp_path / ".operator-rules.lock"
    first, second = FileLease(path), FileLease(path)
    monitors = [Scripted("prometheus"), Scripted("loki")]
    recorders = [recorder(history, monitors, first), recorder(history, monitors, second)]
    try:
        counts = [await r.sample() for r in recorders]
        assert sorted(counts) == [0, 2]
        assert len(await rows(history.database.engine)) == 2
        holder = counts.index(2)
        await (first, second)[holder].release()
        assert await recorders[1 - holder].sample() == 2
        assert await recorders[holder].sample() == 0
        assert len(await rows(history.database.engine)) == 4
    finally:
        await first.release()
        await second.release()


async def test_without_the_shared_store_nobody_records(history: History) -> None:
    lease = Always(down=True)
    assert await recorder(history, [Scripted("prometheus")], lease).sample() == 0
    assert lease.calls == 1 and await rows(history.database.engine) == []


async def test_samples_older_than_thirty_days_are_pruned(history: History) -> None:
    now = datetime.now(UTC)
    await store_samples(history.database, [
        Sample(now - timedelta(seconds=KEEP_S + 60), "prometheus", True, "too old", 1.0),
        Sample(now - timedelta(seconds=KEEP_S - 60), "prometheus", False, "just kept", 1.0),
    ])  # fmt: skip
    await recorder(history, [Scripted("prometheus")], now=lambda: now).sample()
    assert [detail for _, _, detail, _, _ in await rows(history.database.engine)] == ["just kept", "fine after 0s"]


async def test_the_loop_survives_a_database_failure_and_logs_it_once(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.db.health_log")
    async with history.database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE health_checks"))
    running = recorder(history, [Scripted("prometheus")], interval_s=0.05, timeout_s=2)
    stop = asyncio.Event()
    task = asyncio.ensure_future(running.run(stop))
    try:
        await asyncio.sleep(0.5)  # several failing rounds
        assert running.failing is not None and "database unavailable" in running.failing
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "will keep trying" in errors[0].getMessage()
        assert "health_checks" not in errors[0].getMessage()  # the reason, never the SQL
        async with history.database.engine.begin() as conn:
            await conn.run_sync(lambda sync: HEALTH_CHECKS.create(sync))
        for _ in range(100):
            if await rows(history.database.engine):
                break
            await asyncio.sleep(0.05)
        assert await rows(history.database.engine)
        assert running.failing is None
        assert any(r.getMessage() == "health history: recording again" for r in caplog.records)
    finally:
        stop.set()
        await task


async def test_the_loop_survives_a_monitor_that_breaks_its_promise(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    """A monitor raising something other than a BackendError (a bug in an adapter): the round fails, is
    logged once by type, and the loop goes on."""
    broken = Scripted("broken", error=RuntimeError("adapter bug with http://internal.example/secret"))
    running = recorder(history, [broken], interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.ensure_future(running.run(stop))
    await asyncio.sleep(0.4)
    stop.set()
    await task
    assert broken.calls >= 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["health history: health recording failed (RuntimeError); will keep trying"]


async def test_a_database_that_hangs_is_given_up_on_in_time(tmp_path: Path) -> None:
    history = await open_history(None, tmp_path / "locked.sqlite3")
    import sqlite3

    holder = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the file: inserts wait on the busy timeout
    try:
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable, match="timed out after 0.5 s recording health"):
            await recorder(history, [Scripted("prometheus")], timeout_s=0.5).sample()
        assert time.perf_counter() - started < 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await history.close()  # cuts short the insert still waiting on the lock


async def test_recording_in_the_background_stops_with_its_context(history: History) -> None:
    lease = Always()
    started = time.perf_counter()
    async with health_recording(history.database, [Scripted("prometheus")], HealthCache(), lease, interval_s=3600,
                                deadline_s=1) as running:  # fmt: skip
        assert running.interval_s == 3600
    assert time.perf_counter() - started < 1  # the stop interrupts the wait
    assert lease.calls == 0 and lease.held  # nothing sampled yet, and the shared lease is not released here
