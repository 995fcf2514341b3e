"""The database handle: one engine (SQLite file by default, PostgreSQL with DATABASE_URL), every call
bounded in time, every failure one safe type.

Failure is `DatabaseUnavailable`, whose message is short, fixed wording: never the database URL, its
password, host, path or the SQL parameters (the original error stays only as `__cause__`, for a
debugger, and SQLAlchemy is told to hide parameters there too). Every call is bounded by `timeout_s`,
so a hung database cannot hold a reply. The tables that live here (message history, alert
subscriptions, health samples, the dashboard's reads) all borrow this handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import (
    event,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 5.0
"""Per call: long enough for a busy SQLite file or a cross-zone PostgreSQL, well inside Twilio's 15 s."""


class DatabaseUnavailable(Exception):
    """The database could not be opened, written or read.

    The message is safe to log and print as is: fixed wording plus a short reason (`connection
    refused`, `login rejected`, `timed out after 5 s`), never a URL, host, path, password or SQL.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"database unavailable: {reason}")
        self.reason = reason


class Database:
    """One engine and the bound on every call. Use `bot.db.migrate.open_database`; `close()` when done."""

    def __init__(self, engine: AsyncEngine, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._abandoned: set[asyncio.Task[Any]] = set()
        """Calls that overran `timeout_s`, still unwinding (psycopg asks the server to cancel first)."""

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for the tables that live in this database (history, subscriptions, health samples)."""
        return self._engine

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`, for a start-up log line (never the URL)."""
        return self._engine.dialect.name

    async def ping(self) -> None:
        """A readiness check that costs the same on ten rows or ten million (`count()` scans the table)."""

        async def select_one() -> None:
            async with self._engine.connect() as conn:
                await conn.execute(select(1))

        await self.bounded("checking", select_one)

    async def close(self) -> None:
        """Stop calls that overran (a second cancel makes psycopg drop the connection), then the pool."""
        for _ in range(100):  # each cancel interrupts whichever wait the unwinding is in; bounded at ~5 s
            if not self._abandoned:
                break
            for task in self._abandoned:
                task.cancel()
            await asyncio.wait(set(self._abandoned), timeout=0.05)
        await self._engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def bounded(
        self, doing: str, work: Callable[[], Coroutine[Any, Any, T]], timeout_s: float | None = None
    ) -> T:
        """Run `work` within `timeout_s` and turn every database failure into `DatabaseUnavailable`
        (`doing` ends its wording). Public because the other tables in this database (health samples,
        the dashboard's reads) need the same bound and the same clean-up at `close()`.

        The work runs as its own task so the caller gets its answer at `timeout_s` exactly: on
        cancellation psycopg first asks the server to cancel and waits up to 5 s for it, which a
        hung server never grants. That unwinding goes on in the background; `close()` cuts it short.
        """
        task = asyncio.ensure_future(work())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s or self._timeout_s)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise DatabaseUnavailable(f"timed out after {timeout_s or self._timeout_s:g} s {doing}")
        try:
            return task.result()
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(f"{reason_of(exc)} ({doing})") from exc

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(_settle)
        task.add_done_callback(self._abandoned.discard)


def _settle(task: asyncio.Task[Any]) -> None:
    """Retrieve an abandoned call's outcome, so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


_LOGIN_REJECTED = "login rejected, check the credentials in DATABASE_URL"
_SQLSTATE_REASONS = {
    "28P01": _LOGIN_REJECTED,
    "28000": _LOGIN_REJECTED,
    "3D000": "the database does not exist",
    "42501": "permission denied on the history table",
    "53100": "the database server's disk is full",
    "53300": "the database server has too many connections",
    "57P01": "the database server is shutting down",
    "57P03": "the database server is starting up",
    "25006": "the database is read-only",
}
_TEXT_REASONS = [
    (re.compile(pattern), reason)
    for pattern, reason in [
        (r"password authentication failed|no password supplied", _LOGIN_REJECTED),
        (r"not permitted to log in", "login rejected: the role may not log in"),
        (r'role "[^"]*" does not exist', _LOGIN_REJECTED),
        (r'database "[^"]*" does not exist', "the database does not exist"),
        (r"connection refused", "connection refused"),
        (r"could not translate host name|name or service not known|name resolution", "database host not found"),
        (r"timeout|timed out", "timed out connecting"),
        (r"server closed the connection|connection reset|terminating connection", "the server closed the connection"),
        (r"\bssl\b", "TLS negotiation failed"),
    ]
]
"""Connection failures carry no SQLSTATE in psycopg; their (English, libpq) message is matched instead."""
_SQLITE_REASONS = {
    "SQLITE_CANTOPEN": "cannot open the history file",
    "SQLITE_READONLY": "the history file is read-only",
    "SQLITE_BUSY": "the history file is locked by another process",
    "SQLITE_LOCKED": "the history file is locked",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_IOERR": "disk I/O error on the history file",
    "SQLITE_CORRUPT": "the history file is corrupt",
    "SQLITE_NOTADB": "the history file is not an SQLite database",
    "SQLITE_PERM": "permission denied on the history file",
}


def reason_of(exc: BaseException) -> str:
    """A short reason in our own words. The driver's message names hosts, paths and SQL, so it is only
    matched against, never repeated; anything unrecognised is named by its exception type alone."""
    original = getattr(exc, "orig", None) or exc
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in _SQLSTATE_REASONS:
        return _SQLSTATE_REASONS[sqlstate]
    sqlite_name = getattr(original, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        base = sqlite_name.split("_")[:2]
        return _SQLITE_REASONS.get("_".join(base), f"SQLite error ({'_'.join(base)})")
    if isinstance(original, OSError) and original.strerror:
        return f"cannot use the history file: {original.strerror.lower()}"
    message = str(original).lower()
    for pattern, reason in _TEXT_REASONS:
        if pattern.search(message):
            return reason
    return f"database error ({type(original).__name__})"


# --- opening ----------------------------------------------------------------------------------------

_POSTGRES_NAMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg_async"}
_SQLITE_NAMES = {"sqlite", "sqlite+aiosqlite"}


def engine_url(database_url: str | None, sqlite_path: Path) -> URL:
    """The async SQLAlchemy URL for a configured `DATABASE_URL`, or for the SQLite file when there is none.

    `postgres://` and `postgresql://` (what hosting providers hand out) get the async psycopg driver.
    Alembic's `env.py` can use the same mapping. A URL that cannot be parsed is refused without
    repeating it, since it may hold a password.
    """
    if not database_url or not database_url.strip():
        return URL.create("sqlite+aiosqlite", database=str(sqlite_path.expanduser()))
    try:
        url = make_url(database_url.strip())
    except (ArgumentError, ValueError):
        raise DatabaseUnavailable("DATABASE_URL is not a database URL") from None  # its text may hold a password
    if url.drivername in _POSTGRES_NAMES:
        url = url.set(drivername="postgresql+psycopg")
        return url if "connect_timeout" in url.query else url.update_query_dict({"connect_timeout": "5"})
    if url.drivername in _SQLITE_NAMES:
        if not url.database or url.database == ":memory:":
            raise DatabaseUnavailable("an in-memory SQLite history would be lost; give a file path")
        return url.set(drivername="sqlite+aiosqlite")
    raise DatabaseUnavailable(f"DATABASE_URL scheme {url.drivername!r} is not supported (use postgresql://)")


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets `operator history` read while the bot writes; writers wait (busy timeout) rather than fail."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _prepare_sqlite_file(path: Path) -> None:
    """Create the file owner-only (it holds what people texted) and check it is an SQLite database.

    Checked with the standard library first because aiosqlite, when its own connect fails, leaves
    its worker thread to report to an event loop that may be gone (omnilib/aiosqlite#389).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        if not path.is_file():
            raise DatabaseUnavailable("the history path is not a file")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseUnavailable(reason_of(exc) + " (opening the history file)") from exc


async def connect(database_url: str | None, sqlite_path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Database:
    """The database on PostgreSQL when `database_url` is set, else in the SQLite file `sqlite_path`, as it
    is: `bot.db.migrate.open_database` also brings its schema to the head revision."""
    url = engine_url(database_url, sqlite_path)
    if url.drivername.startswith("sqlite"):
        await asyncio.to_thread(_prepare_sqlite_file, Path(url.database or ""))
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, hide_parameters=True, pool_pre_ping=True)
    return Database(engine, timeout_s)
