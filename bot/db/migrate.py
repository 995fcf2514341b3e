"""Schema migrations for Operator's SQL tables (the audit history, the alert subscriptions), with Alembic.

Every instance upgrades when it opens the history, and `operator db upgrade` upgrades ahead of a deploy
(for a migration too long for start-up's timeout). So upgrading must be safe anywhere, any number of
times, at once:

- one at a time: on PostgreSQL behind a transaction-level advisory lock (right behind pgBouncer in
  transaction mode too, and released by the server if the process dies), on SQLite behind the database's
  own write lock (`BEGIN IMMEDIATE`). The lock is taken before the current revision is read and the
  migration runs in that same transaction, so a second instance waits, then finds the work done; and a
  migration lands whole or not at all (DDL is transactional on both databases).
- idempotent: at the head revision nothing is done.
- adopting: tables made by `create_all` before migrations existed (no version table) are compared with
  revision 0001 and, when they match, stamped at it (a table still missing is created); tables that
  differ are refused with an error, never altered on a guess.

Alembic is configured in code (no `alembic.ini`): the scripts are found inside the package, and the
caller's async engine is used through `AsyncConnection.run_sync`. The version table is
`operator_alembic_version`, not Alembic's `alembic_version`, because the database may be shared with
another application that uses Alembic; for the same reason only our own tables are ever compared.

Failures are `MigrationFailed`, a `DatabaseUnavailable`: short fixed wording, never the URL or the SQL.

A new revision goes in `bot/migrations/versions/` as `NNNN_what.py`: change the model, then autogenerate
it against a database at head (in a checkout, where it writes into the package), read it, `ruff format`
it, and let `tests/bot/test_migrations.py` check it::

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.revision(alembic_config(c), "what", autogenerate=True, rev_id="0002"))
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import MetaData, func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.database import DEFAULT_TIMEOUT_S, Database, DatabaseUnavailable, connect, reason_of
from bot.db.schema import METADATA

T = TypeVar("T")
log = logging.getLogger(__name__)

VERSION_TABLE = "operator_alembic_version"
BASELINE = "0001"
"""The revision that creates the tables as `create_all` made them before migrations existed."""
LOCK_KEY = 0x4F504D4947524154
"""The PostgreSQL advisory lock key: "OPMIGRAT" in ASCII, so `pg_locks` shows whose lock it is."""
DEFAULT_LOCK_TIMEOUT_S = 60.0
"""How long to wait for another instance's migration (or, on PostgreSQL, for a table lock a migration
needs) before giving up; far longer than a start-up migration takes, short enough to fail a stuck deploy."""
MIGRATE_TIMEOUT_S = 60.0
"""How long start-up waits for the schema migration lock (another instance migrating) before failing."""
CLI_TIMEOUT_S = 3600.0
"""`operator db upgrade` runs the migrations too long for start-up; Ctrl-C stops it sooner, and the
transaction then rolls back."""


class MigrationFailed(DatabaseUnavailable):
    """The schema could not be read, brought to the head revision or adopted.

    A `DatabaseUnavailable`, so `open_history` and its callers report it like any other failure to open
    the history; the message is as safe as theirs (fixed wording, never a URL, host, path or SQL).
    """


def target_metadata() -> list[MetaData]:
    """The models the migrations must produce: what autogenerate and the tests compare the database with."""
    return [METADATA]


def is_ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: compare and touch only Operator's tables (and what is inside them)."""
    return type_ != "table" or name in {table for metadata in target_metadata() for table in metadata.tables}


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without a file: the scripts inside the installed package, and the
    connection `env.py` migrates on (a sync one, as `AsyncConnection.run_sync` hands it out)."""
    location = importlib.resources.files("bot.db.migrations")
    if not isinstance(location, Path):
        raise MigrationFailed("the migration scripts are not installed as plain files")
    config = Config()
    config.set_main_option("script_location", str(location).replace("%", "%%"))  # ini interpolation
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> str:
    """Bring the schema to the head revision, adopting tables made before migrations, and return the
    revision now in place. Safe to run from several processes at once. Raises `MigrationFailed`."""
    before, after = await _locked(engine, lock_timeout_s, _upgrade)
    if before != after:
        log.info("database schema migrated from %s to %s", before or "nothing", after)
    return after


async def downgrade(
    engine: AsyncEngine, revision: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> str | None:
    """Step the schema back to `revision` (`base` drops every table, with its data) and return the
    revision now in place (`None` at base). For an operator undoing a deploy by hand, never automatic."""

    def work(connection: Connection) -> str | None:
        config = alembic_config(connection)
        _check_known(ScriptDirectory.from_config(config), _revision(connection))
        command.downgrade(config, revision)
        return _revision(connection)

    after = await _locked(engine, lock_timeout_s, work)
    log.info("database schema downgraded to %s", after or "nothing")
    return after


async def current(engine: AsyncEngine) -> str | None:
    """The revision in place, or `None` for a database never migrated (empty, or made by `create_all`)."""
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_revision)
    except (SQLAlchemyError, OSError) as exc:
        raise MigrationFailed(f"{reason_of(exc)} (reading the schema revision)") from exc


def main_upgrade(database_url: str | None, sqlite_path: Path) -> str:
    """`operator db upgrade`: upgrade the configured database (PostgreSQL when `database_url` is set,
    else the SQLite file) and return the revision now in place, for the CLI to print as
    `database schema at revision <revision>`. Raises `DatabaseUnavailable` (`MigrationFailed` among them),
    whose message the CLI prints as the error."""
    return asyncio.run(_open_and_upgrade(database_url, sqlite_path))


async def _open_and_upgrade(database_url: str | None, sqlite_path: Path) -> str:
    """Open the database the way the bot does (same engine settings, an owner-only SQLite file) with room
    for a long migration, then upgrade (nothing left to do if opening has migrated already)."""
    async with await open_database(
        database_url, sqlite_path, timeout_s=CLI_TIMEOUT_S, migrate_timeout_s=CLI_TIMEOUT_S
    ) as database:
        return await upgrade(database.engine)


async def open_database(
    database_url: str | None,
    sqlite_path: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    migrate_timeout_s: float = MIGRATE_TIMEOUT_S,
) -> Database:
    """The database on PostgreSQL when `database_url` is set, else in the SQLite file `sqlite_path`, with
    the schema migrated to the head revision. Raises `DatabaseUnavailable` (the engine is disposed first).

    The migration is bounded by the lock's wait plus the call timeout, not the call timeout alone:
    another instance may be migrating. A hung or unreachable server fails within the call timeout.
    """
    database = await connect(database_url, sqlite_path, timeout_s=timeout_s)
    try:
        await database.ping()
        await database.bounded(
            "migrating the schema",
            lambda: upgrade(database.engine, lock_timeout_s=migrate_timeout_s),
            timeout_s=migrate_timeout_s + timeout_s,
        )
    except DatabaseUnavailable:
        await database.close()
        raise
    return database


# --- under the lock ---------------------------------------------------------------------------------


async def _locked(engine: AsyncEngine, lock_timeout_s: float, work: Callable[[Connection], T]) -> T:
    """Run `work` on one connection, in one transaction that first takes the migration lock.

    On SQLite, `BEGIN IMMEDIATE` takes the write lock up front (a plain `BEGIN` would let two processes
    both read "no tables yet" and then both create them), waiting at most `lock_timeout_s` (the busy
    timeout, restored afterwards since the connection goes back to the pool).
    """
    wait_ms = max(1, round(lock_timeout_s * 1000))
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(select(func.set_config("lock_timeout", str(wait_ms), True)))  # this transaction
                await conn.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
                result = await conn.run_sync(work)
                await conn.commit()
                return result
            if conn.dialect.name != "sqlite":
                raise MigrationFailed(f"migrations support PostgreSQL and SQLite, not {conn.dialect.name}")
            previous = int((await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one())
            await conn.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms:d}")  # an int: PRAGMA takes no parameters
            try:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                result = await conn.run_sync(work)
                await conn.commit()
                return result
            finally:
                await conn.exec_driver_sql(f"PRAGMA busy_timeout = {previous:d}")
    except (SQLAlchemyError, OSError) as exc:
        raise MigrationFailed(_failure_reason(exc, lock_timeout_s)) from exc
    except (CommandError, RevisionError) as exc:  # the scripts themselves are inconsistent: a packaging bug
        raise MigrationFailed(f"the migration scripts cannot be applied ({type(exc).__name__})") from exc


def _failure_reason(exc: BaseException, lock_timeout_s: float) -> str:
    original = getattr(exc, "orig", None) or exc
    lock_timed_out = getattr(original, "sqlstate", None) == "55P03" or str(
        getattr(original, "sqlite_errorname", "")
    ).startswith("SQLITE_BUSY")
    if lock_timed_out:
        return f"still locked after {lock_timeout_s:g} s (another migration, or a long transaction)"
    return f"{reason_of(exc)} (migrating the schema)"


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _upgrade(connection: Connection) -> tuple[str | None, str]:
    config = alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    before = _revision(connection)
    _check_known(script, before)
    if before is None:
        _adopt(connection, config, script)
    command.upgrade(config, "head")
    after = _revision(connection)
    if after is None:
        raise MigrationFailed("no migration scripts found")
    return before, after


def _check_known(script: ScriptDirectory, revision: str | None) -> None:
    """Refuse a database migrated by a newer Operator: its revision is not in our scripts."""
    if revision is None:
        return
    try:
        known = script.get_revision(revision) is not None
    except CommandError:  # Alembic's wording for "no such revision" from a ScriptDirectory
        known = False
    if not known:
        raise MigrationFailed("the schema is newer than this version of Operator (upgrade Operator)")


def _adopt(connection: Connection, config: Config, script: ScriptDirectory) -> None:
    """Stamp tables made by `create_all` at the baseline when they match it, creating any still missing."""
    shape = _baseline_schema(script)
    present = set(inspect(connection).get_table_names()) & set(shape.tables)
    if not present:
        return  # a fresh database: the baseline creates everything
    existing = MetaData()
    for name in present:
        shape.tables[name].to_metadata(existing)
    context = MigrationContext.configure(
        connection,
        opts={"include_name": lambda name, type_, _: type_ != "table" or name in present, "compare_type": True},
    )
    differences = compare_metadata(context, existing)
    if differences:
        kinds = sorted({(diff[0] if isinstance(diff, tuple) else diff[0][0]) for diff in differences})
        raise MigrationFailed(
            f"tables made before migrations differ from revision {BASELINE} ({', '.join(kinds)}); not adopting them"
        )
    shape.create_all(connection, tables=[shape.tables[name] for name in shape.tables if name not in present])
    command.stamp(config, BASELINE)
    log.info("adopted the tables made before migrations (%s) at revision %s", ", ".join(sorted(present)), BASELINE)


def _baseline_schema(script: ScriptDirectory) -> MetaData:
    baseline = script.get_revision(BASELINE)
    schema = getattr(baseline.module, "schema", None) if baseline is not None else None
    metadata = schema() if callable(schema) else None
    if not isinstance(metadata, MetaData):
        raise MigrationFailed(f"the baseline revision {BASELINE} is missing its schema")
    return metadata
