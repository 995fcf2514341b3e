"""Schema migrations on a real SQLite file and a real PostgreSQL (a new empty database per test): a fresh
upgrade gives exactly the models' schema (autogenerate finds nothing to do) and exactly what `create_all`
made, a second upgrade does nothing, databases from before migrations are adopted (or refused when they
differ), concurrent upgrades from several engines and several processes apply the migration once, the
lock really serialises and gives up at its timeout, downgrade to base works, and failures never leak."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import stat
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Dialect, MetaData, Table, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateIndex, CreateTable

from bot.db.database import Database as DatabaseHandle
from bot.db.database import DatabaseUnavailable, engine_url
from bot.db.history import History, make_entry
from bot.db.migrate import (
    LOCK_KEY,
    VERSION_TABLE,
    MigrationFailed,
    alembic_config,
    current,
    downgrade,
    main_upgrade,
    target_metadata,
    upgrade,
)
from bot.db.schema import MESSAGES, SUBSCRIPTIONS
from tests.bot.servers_history import Postgres, postgres
from tests.monitors.servers_postgres import APP_PASSWORD, APP_USER, SERVER_USER
from tests.servers import LOOPBACK

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

HEAD = "0002"
OUR_TABLES = {"message_history", "alert_subscriptions", "health_checks", "health_hours"}
ALICE = "+15551230001"


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Postgres]:
    with postgres() as running:
        yield running


@dataclass
class Database:
    """One empty database: `url` is the DATABASE_URL (`None` for the SQLite file at `sqlite_path`)."""

    backend: str
    url: str | None
    sqlite_path: Path
    server: Postgres | None = None
    name: str = ""

    def engine(self) -> AsyncEngine:
        return create_async_engine(engine_url(self.url, self.sqlite_path))

    @contextlib.contextmanager
    def holding_the_lock(self) -> Iterator[Callable[[str], object]]:
        """Hold what a migration must take, from outside the code under test, as another instance migrating
        would: yields a function running SQL in the holder's transaction, committed when the block ends."""
        if self.server is None:
            holder = sqlite3.connect(self.sqlite_path, isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                yield holder.execute
                holder.execute("COMMIT")
            finally:
                holder.close()
            return
        login = {"host": LOOPBACK, "user": APP_USER, "password": APP_PASSWORD, "dbname": self.name}
        with psycopg.connect(psycopg.conninfo.make_conninfo(port=self.server.port, **login)) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            yield lambda statement: conn.execute(statement.encode())
            conn.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Database]:
    """Makes empty databases on the backend: a new SQLite file, or a new PostgreSQL database owned by `app`."""

    def make() -> Database:
        name = f"migrations_{uuid.uuid4().hex[:12]}"
        if request.param == "sqlite":
            return Database("sqlite", None, tmp_path / f"{name}.sqlite3")
        server: Postgres = request.getfixturevalue("postgres_server")
        superuser = psycopg.conninfo.make_conninfo(host=str(server.sockets), port=server.port, dbname="postgres",
                                                   user=SERVER_USER)  # fmt: skip
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {APP_USER}".encode())
        url = f"postgresql://{APP_USER}:{quote(APP_PASSWORD, safe='')}@{LOOPBACK}:{server.port}/{name}"
        return Database("postgresql", url, tmp_path / "unused.sqlite3", server, name)

    return make


@pytest.fixture
def database(new_database: Callable[[], Database]) -> Database:
    return new_database()


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    made = database.engine()
    yield made
    await made.dispose()


# --- what the database holds, read without the code under test ------------------------------------


def differences(conn: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the models (nothing, when they agree).

    No table filter: each test's database is its own, so any extra or missing table would show."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return list(compare_metadata(context, target_metadata()))  # type: ignore[arg-type]  # a list works


def snapshot(conn: Connection) -> dict[str, Any]:
    """Every table as the database describes it, including what autogenerate does not compare (check
    constraints, primary key names, column defaults) and, on SQLite, the CREATE statements themselves."""
    inspector = inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
        tables[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                        for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in inspector.get_indexes(table)),
            "checks": sorted((c["name"], re.sub(r"\s+", " ", c["sqltext"])) for c in inspector.get_check_constraints(table)),
            "uniques": inspector.get_unique_constraints(table),
            "foreign_keys": inspector.get_foreign_keys(table),
        }  # fmt: skip
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name != :v"),
                            {"v": VERSION_TABLE})  # fmt: skip
        tables["sqlite_master"] = dict(sorted((str(name), str(sql)) for name, sql in rows))
    return tables


async def read(engine: AsyncEngine, what: Callable[[Connection], Any]) -> Any:
    async with engine.connect() as conn:
        return await conn.run_sync(what)


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def version_rows(conn: Connection) -> list[str]:
    return [str(row[0]) for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]


def applied(records: list[logging.LogRecord]) -> list[str]:
    """The migration steps Alembic ran, from its own log lines."""
    return [r.getMessage() for r in records if r.getMessage().startswith("Running upgrade")]


async def create_all(engine: AsyncEngine, *schemas: MetaData | Table) -> None:
    """What `open_history` and `SqlSubscriptions.create` did before migrations (with tables: only those)."""
    async with engine.begin() as conn:
        for schema in schemas:
            if isinstance(schema, Table):
                await conn.run_sync(lambda sync, table=schema: table.create(sync))
            else:
                await conn.run_sync(schema.create_all)


async def record_one(engine: AsyncEngine, text_: str) -> None:
    await History(DatabaseHandle(engine)).store([make_entry(ALICE, "in", text_)])


# --- the scripts ----------------------------------------------------------------------------------


def test_the_revision_history_is_one_line_from_the_baseline() -> None:
    """Two branches (two people adding a revision at once) would make `upgrade` ambiguous: one head, one base."""
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]
    assert script.get_bases() == ["0001"]
    for revision in script.walk_revisions():
        assert Path(revision.path).name.startswith(f"{revision.revision}_")
        assert Path(revision.path).is_relative_to(Path(__file__).parents[2] / "bot" / "db" / "migrations" / "versions")


def test_the_environment_refuses_to_run_without_the_lock() -> None:
    """Run bare (Alembic's own CLI or offline mode), env.py refuses: no connection from `bot.db.migrate`."""
    with pytest.raises(RuntimeError, match="through bot.db.migrate"):
        command.upgrade(alembic_config(), "head")


# --- upgrading ------------------------------------------------------------------------------------


async def test_a_fresh_upgrade_makes_exactly_the_models_schema(engine: AsyncEngine) -> None:
    assert await current(engine) is None
    assert await upgrade(engine) == HEAD
    assert await current(engine) == HEAD
    assert await read(engine, differences) == []
    tables = await read(engine, snapshot)
    assert set(tables) - {"sqlite_master"} == OUR_TABLES
    history = tables["message_history"]
    assert [name for name, *_ in history["checks"]] == ["ck_message_history_direction"]
    assert [name for name, *_ in history["indexes"]] == ["ix_message_history_at", "ix_message_history_message_sid"]
    assert history["primary_key"]["constrained_columns"] == ["id"]
    await record_one(engine, "status")  # and the table works as the history uses it
    assert [entry.text for entry in await History(DatabaseHandle(engine)).recent()] == ["status"]


async def test_the_migrated_schema_is_what_create_all_made(new_database: Callable[[], Database]) -> None:
    """Table by table, including the check constraint, key names and (on SQLite) the CREATE statements."""
    migrated, created = new_database(), new_database()
    engines = migrated.engine(), created.engine()
    try:
        await upgrade(engines[0])
        await create_all(engines[1], *target_metadata())
        assert await read(engines[0], snapshot) == await read(engines[1], snapshot)
    finally:
        for made in engines:
            await made.dispose()


async def test_a_second_upgrade_changes_nothing(engine: AsyncEngine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="alembic")  # the bot's logging setup quiets it; these tests read it
    assert await upgrade(engine) == HEAD
    await record_one(engine, "kept")
    before = await read(engine, snapshot)
    assert await upgrade(engine) == HEAD
    assert await upgrade(engine) == HEAD
    assert applied(caplog.records) == EVERY_STEP
    assert await read(engine, snapshot) == before
    assert await read(engine, version_rows) == [HEAD]
    assert await History(DatabaseHandle(engine)).count() == 1


def _doc(revision: str) -> str:
    script = ScriptDirectory.from_config(alembic_config())
    found = script.get_revision(revision)
    assert found is not None
    return str(found.doc)


AFTER_BASELINE = [f"Running upgrade 0001 -> 0002, {_doc('0002')}"]
"""What an upgrade from the baseline runs: every revision after it, in order."""
EVERY_STEP = [f"Running upgrade  -> 0001, {_doc('0001')}", *AFTER_BASELINE]


# --- databases from before migrations -------------------------------------------------------------


@pytest.mark.parametrize(
    "made_before",
    [
        pytest.param("both", id="app-made-both-tables"),
        pytest.param("history-only", id="operator-history-made-only-its-table"),
    ],
)
async def test_a_database_made_by_create_all_is_adopted(
    engine: AsyncEngine, made_before: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The bot made both tables; `operator history` alone made only its own. Either is stamped at 0001,
    rows kept, the missing table created, and nothing is created twice."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="alembic")  # the bot's logging setup quiets it; these tests read it
    await create_all(engine, MESSAGES, *([SUBSCRIPTIONS] if made_before == "both" else []))
    await record_one(engine, "from before migrations")
    assert await current(engine) is None
    assert await upgrade(engine) == HEAD
    assert await current(engine) == HEAD
    assert applied(caplog.records) == AFTER_BASELINE  # stamped at the baseline, not run; the later ones run
    assert any("adopted" in r.getMessage() for r in caplog.records)
    assert await read(engine, differences) == []
    assert await read(engine, table_names) >= OUR_TABLES
    assert [entry.text for entry in await History(DatabaseHandle(engine)).recent()] == ["from before migrations"]
    assert await upgrade(engine) == HEAD


async def test_tables_that_differ_are_refused_not_altered(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE message_history (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL)"))
    with pytest.raises(MigrationFailed, match="differ from revision 0001") as caught:
        await upgrade(engine)
    assert "add_column" in str(caught.value)
    assert await current(engine) is None
    assert await read(engine, table_names) == {"message_history"}  # the transaction rolled back whole


async def test_a_newer_schema_is_refused(engine: AsyncEngine) -> None:
    """A database already migrated by a newer Operator: this one does not know its revision."""
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0999'"))
    with pytest.raises(MigrationFailed, match="newer than this version"):
        await upgrade(engine)
    assert await current(engine) == "0999"


# --- several at once ------------------------------------------------------------------------------


async def test_concurrent_upgrades_from_several_engines(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="alembic")  # the bot's logging setup quiets it; these tests read it
    engines = [database.engine() for _ in range(4)]
    try:
        results = await asyncio.gather(*(upgrade(made, lock_timeout_s=10) for made in engines))  # fail, not hang
        assert results == [HEAD] * 4
        assert applied(caplog.records) == EVERY_STEP  # once: by whichever took the lock first
        assert await read(engines[0], version_rows) == [HEAD]
        assert await read(engines[0], differences) == []
    finally:
        for made in engines:
            await made.dispose()


CHILD = """
import asyncio, logging, pathlib, sys
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from bot.db.database import engine_url
from bot.db.migrate import upgrade

async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    engine = create_async_engine(engine_url(sys.argv[1] or None, pathlib.Path(sys.argv[2])))
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    print("ready", flush=True)
    go = pathlib.Path(sys.argv[3])
    while not go.exists():
        await asyncio.sleep(0.001)
    print(await upgrade(engine), flush=True)
    await engine.dispose()

asyncio.run(main())
"""


async def test_concurrent_upgrades_from_two_processes(database: Database, tmp_path: Path) -> None:
    """Two instances starting at once: both connected and waiting on one signal, then both upgrade."""
    go = tmp_path / "go"
    args = [sys.executable, "-c", CHILD, database.url or "", str(database.sqlite_path), str(go)]
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
                for _ in range(2)]  # fmt: skip
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        go.touch()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert [child.returncode for child in children] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [HEAD, HEAD]
    logs = "".join(err for _, err in outputs)
    assert logs.count("Running upgrade") == len(EVERY_STEP), logs
    engine = database.engine()
    try:
        assert await read(engine, version_rows) == [HEAD]
        assert await read(engine, differences) == []
    finally:
        await engine.dispose()


async def test_an_upgrade_waits_for_the_lock_then_finds_the_work_done(database: Database, engine: AsyncEngine) -> None:
    """The race the lock is for: another instance holds it (an advisory lock; SQLite's write lock) and creates
    the tables meanwhile. The waiting upgrade must read the schema only once it has the lock, and so adopt
    the tables; one that looked first would try to create them again and fail."""
    with database.holding_the_lock() as holder:
        waiting = asyncio.ensure_future(upgrade(engine, lock_timeout_s=30))
        await asyncio.sleep(0.5)
        for statement in create_all_ddl(engine.dialect):
            holder(statement)
        await asyncio.sleep(0.5)
        assert not waiting.done()
    assert await waiting == HEAD
    assert await read(engine, differences) == []


def create_all_ddl(dialect: Dialect) -> list[str]:
    """The statements `create_all` runs for the models, to run on a connection of our own."""
    tables = [MESSAGES, SUBSCRIPTIONS]  # the tables of before 0001
    statements = [CreateTable(table) for table in tables] + [CreateIndex(i) for t in tables for i in t.indexes]
    return [str(statement.compile(dialect=dialect)) for statement in statements]


async def test_an_upgrade_gives_up_at_the_lock_timeout(database: Database, engine: AsyncEngine) -> None:
    with database.holding_the_lock():
        started = time.perf_counter()
        with pytest.raises(MigrationFailed, match=r"still locked after 0\.5 s") as caught:
            await upgrade(engine, lock_timeout_s=0.5)
        assert time.perf_counter() - started < 3
    assert_safe(caught.value)
    assert await current(engine) is None
    assert await upgrade(engine) == HEAD  # the lock's connection went back to the pool in good order


# --- downgrade, the CLI function, failures --------------------------------------------------------


async def test_downgrade_to_base_and_up_again(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await record_one(engine, "goes with the table")
    assert await downgrade(engine, "base") is None
    assert await current(engine) is None
    assert await read(engine, table_names) <= {VERSION_TABLE}
    assert await upgrade(engine) == HEAD
    assert await read(engine, differences) == []
    assert await History(DatabaseHandle(engine)).count() == 0


async def test_main_upgrade_for_the_cli(database: Database) -> None:
    """`operator db upgrade` (own event loop, so run in a thread here); an SQLite file it creates is owner-only."""
    assert await asyncio.to_thread(main_upgrade, database.url, database.sqlite_path) == HEAD
    assert await asyncio.to_thread(main_upgrade, database.url, database.sqlite_path) == HEAD
    if database.backend == "sqlite":
        assert stat.S_IMODE(database.sqlite_path.stat().st_mode) == 0o600
    else:
        assert not database.sqlite_path.exists()
    engine = database.engine()
    try:
        assert await read(engine, differences) == []
    finally:
        await engine.dispose()


WRONG_PASSWORD = "Wr0ng-pa55;word@x"


def assert_safe(error: DatabaseUnavailable, *secrets: str) -> None:
    """Neither the message nor the chain a careless `logger.exception` prints holds a secret; the
    message does not even name the host or the file."""
    message, chain = str(error), "".join(traceback.format_exception(error))
    for secret in secrets:
        assert secret not in message
        assert secret not in chain
    assert LOOPBACK not in message
    assert "/" not in message
    assert "postgresql" not in message.lower()
    assert len(message) < 120


async def test_failures_are_safe(postgres_server: Postgres, tmp_path: Path) -> None:
    url = postgres_server.url(password=WRONG_PASSWORD)
    engine = create_async_engine(engine_url(url, tmp_path / "unused.sqlite3"), hide_parameters=True)
    try:
        with pytest.raises(MigrationFailed, match="login rejected") as caught:
            await upgrade(engine)
        assert_safe(caught.value, WRONG_PASSWORD)
        with pytest.raises(MigrationFailed, match="login rejected") as caught:
            await current(engine)
        assert_safe(caught.value, WRONG_PASSWORD)
    finally:
        await engine.dispose()
    with pytest.raises(DatabaseUnavailable, match="login rejected") as caught_opening:
        await asyncio.to_thread(main_upgrade, url, tmp_path / "unused.sqlite3")
    assert_safe(caught_opening.value, WRONG_PASSWORD)
