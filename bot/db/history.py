"""The audit history of every message, in and out: who (masked), what, how it was understood, how it went.

SQLite in a file by default, so a fresh install keeps history with zero set-up; PostgreSQL when a
`DATABASE_URL` is configured, so several instances share one history and a dashboard can read it.
SQLAlchemy Core (async) speaks to both; the schema is `MESSAGES` in `METADATA`, which Alembic's migrations
(`bot/migrations/`) produce; `open_history` upgrades the schema to the head revision.

Privacy is enforced here, not left to callers: `History.record` takes the raw phone number and stores
only its mask, strips control characters (terminal escapes, bidi overrides, NULs) from every text
field, masks E.164 numbers inside the texts, and caps each field. Nothing here logs.

Failure is one type, `HistoryUnavailable`, whose message is short, fixed wording: never the
database URL, its password, host, path or the SQL parameters (the original error stays only as
`__cause__`, for a debugger, and SQLAlchemy is told to hide parameters there too). Every call is
bounded by `timeout_s`, so a hung database cannot hold a reply. Recording must never break
replying: the app catches `HistoryUnavailable` around `record()`, logs its message and answers
anyway; `operator history` lets it reach the CLI, which prints it and exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.sms.privacy import mask_number

T = TypeVar("T")
Direction = Literal["in", "out"]
"""`in`: a text someone sent us; `out`: a text we sent (a reply, a page)."""

TEXT_MAX = 1600
"""Twilio's own limit on one message body; a longer text is cut, never refused."""
COMMAND_MAX = 200
DETAIL_MAX = 200
WORD_MAX = 32
"""Intent, source and outcome are short vocabulary words."""
NUMBER_MAX = 32
SID_MAX = 64
DEFAULT_TIMEOUT_S = 5.0
"""Per call: long enough for a busy SQLite file or a cross-zone PostgreSQL, well inside Twilio's 15 s."""
MIGRATE_TIMEOUT_S = 60.0
"""How long start-up waits for the schema migration lock (another instance migrating) before failing."""


class Outcome(StrEnum):
    """The usual outcomes; `record` accepts any short word, these keep the common ones spelled alike."""

    OK = "ok"
    ERROR = "error"
    UNKNOWN = "unknown"
    """The text was not understood."""
    REJECTED = "rejected"
    """Not on the allowlist, or not allowed to run the command."""
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"
    """A webhook retry of a message already handled."""
    DEFERRED = "deferred"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class HistoryUnavailable(Exception):
    """The history database could not be opened, written or read.

    The message is safe to log and print as is: fixed wording plus a short reason (`connection
    refused`, `login rejected`, `timed out after 5 s`), never a URL, host, path, password or SQL.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"history unavailable: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class HistoryEntry:
    """One message as the audit history keeps it. Built by `History.record`, which does the masking."""

    at: datetime
    """When, as an aware UTC datetime."""
    number: str
    """The other party's phone number, masked (`+1555***0001`); the raw number is never stored."""
    direction: Direction
    text: str
    """The message body: control characters removed, E.164 numbers masked, at most `TEXT_MAX` characters."""
    intent: str | None = None
    """The parsed intent (`logs`, `unknown` …) of an incoming text."""
    command: str | None = None
    """The canonical command that ran (`logs service=payment level=error`)."""
    source: str | None = None
    """How the command was reached: `strict`, `nl` or `context` (the parser's `Source`)."""
    latency_ms: float = 0.0
    """From the text's arrival to the reply being handed over."""
    outcome: str = Outcome.OK
    segments: int = 1
    """SMS segments the body takes (what Twilio bills)."""
    message_sid: str | None = None
    """Twilio's message SID, to correlate with delivery callbacks and Twilio's own logs."""
    detail: str | None = None
    """A short safe note: the error line sent, why it was rejected …"""


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out on both databases.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so UTC is stored naive (its text sorts
    in time order) and read back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("history times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)
"""The history's schema (a declaration: no connection, no I/O). Alembic's `target_metadata` later."""

MESSAGES = Table(
    "message_history",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),  # recent(), dashboards by time range
    Column("number", String(NUMBER_MAX), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("text", Text(), nullable=False),
    Column("intent", String(WORD_MAX)),
    Column("command", String(COMMAND_MAX)),
    Column("source", String(WORD_MAX)),
    Column("latency_ms", Float(), nullable=False),
    Column("outcome", String(WORD_MAX), nullable=False),
    Column("segments", Integer(), nullable=False),
    Column("message_sid", String(SID_MAX), index=True),  # delivery callbacks find their message
    Column("detail", String(DETAIL_MAX)),
    CheckConstraint("direction IN ('in', 'out')", name="direction"),
)

# --- cleaning: what may reach the table (and, through `operator history`, a terminal) ------------

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
"""Terminal escape sequences (CSI colours and cursor moves, OSC titles and links), removed whole."""
_LINE_BREAKS = re.compile(r"\s*[\t\n\r\v\f\x85\u2028\u2029]+\s*")
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls: NUL (PostgreSQL refuses it), ESC (terminal escapes) …
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # zero-width and bidi controls
    "\ud800-\udfff]"  # lone surrogates: neither database can encode them
)
_E164_IN_TEXT = re.compile(r"\+\d[\d\s().-]{5,}\d")
"""Phone numbers as people write them (`+1 (555) 123-0001`). Only `+`-prefixed runs: plain digit runs
in replies are figures, times and dates, which the audit must keep."""
_WORD_CHARS = re.compile(r"[^a-z0-9_.-]+")


def clean_text(text: str, limit: int) -> str:
    """One line of printable text: breaks become spaces, controls go, numbers are masked, then capped."""
    text = _UNPRINTABLE.sub("", _LINE_BREAKS.sub(" ", _ANSI.sub("", text)))
    text = _E164_IN_TEXT.sub(lambda m: mask_number(re.sub(r"[\s().-]", "", m.group())), text)
    return text.strip()[:limit]


def _optional(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return clean_text(text, limit) or None


def _word(value: str | None, limit: int = WORD_MAX) -> str | None:
    """A vocabulary word (`rate_limited`), lower case; anything else in it becomes `_`; `-` means none."""
    if value is None:
        return None
    return _WORD_CHARS.sub("_", clean_text(str(value), limit * 2).lower()).strip("_.-")[:limit] or None


def _latency(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else 0.0


# --- the store ------------------------------------------------------------------------------------


def make_entry(
    number: str,
    direction: Direction,
    text: str,
    *,
    intent: str | None = None,
    command: str | None = None,
    source: str | None = None,
    latency_ms: float = 0.0,
    outcome: str = Outcome.OK,
    segments: int = 1,
    message_sid: str | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> HistoryEntry:
    """An entry as it will be stored: the number masked, every field cleaned and capped."""
    if direction not in get_args(Direction):
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    if at is not None and at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    return HistoryEntry(
        at=(at or datetime.now(UTC)).astimezone(UTC),
        number=mask_number(number),
        direction=direction,
        text=clean_text(text, TEXT_MAX),
        intent=_word(intent),
        command=_optional(command, COMMAND_MAX),
        source=_word(source),
        latency_ms=_latency(latency_ms),
        outcome=_word(outcome) or Outcome.UNKNOWN,
        segments=max(0, int(segments)),
        message_sid=_optional(message_sid, SID_MAX),
        detail=_optional(detail, DETAIL_MAX),
    )


class History:
    """The audit history over one engine. Use `open_history`; `close()` when done."""

    def __init__(self, engine: AsyncEngine, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._abandoned: set[asyncio.Task[Any]] = set()
        """Calls that overran `timeout_s`, still unwinding (psycopg asks the server to cancel first)."""

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for other small tables that live in the same database (alert subscriptions)."""
        return self._engine

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`, for a start-up log line (never the URL)."""
        return self._engine.dialect.name

    async def record(
        self,
        number: str,
        direction: Direction,
        text: str,
        *,
        intent: str | None = None,
        command: str | None = None,
        source: str | None = None,
        latency_ms: float = 0.0,
        outcome: str = Outcome.OK,
        segments: int = 1,
        message_sid: str | None = None,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> HistoryEntry:
        """Store one message and return the entry as stored.

        `number` is the raw phone number: it is masked here, so no caller can store it by mistake.
        Raises `HistoryUnavailable`, which the caller catches so the reply still goes out.
        """
        entry = make_entry(number, direction, text, intent=intent, command=command, source=source,
                           latency_ms=latency_ms, outcome=outcome, segments=segments, message_sid=message_sid,
                           detail=detail, at=at)  # fmt: skip
        await self.store([entry])
        return entry

    async def store(self, entries: Sequence[HistoryEntry]) -> None:
        """Insert entries made by `make_entry` in one transaction (the audit writer batches them)."""
        if not entries:
            return
        rows = [_row(entry) for entry in entries]

        async def insert_rows() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(insert(MESSAGES), rows)

        await self.bounded("recording", insert_rows)

    async def recent(self, limit: int = 20) -> list[HistoryEntry]:
        """The latest `limit` entries, newest first."""
        if limit <= 0:
            return []
        query = select(*_COLUMNS).order_by(MESSAGES.c.at.desc(), MESSAGES.c.id.desc()).limit(limit)

        async def read() -> list[HistoryEntry]:
            async with self._engine.connect() as conn:
                return [_entry(row._mapping) for row in (await conn.execute(query)).all()]

        return await self.bounded("reading", read)

    async def count(self) -> int:
        async def count_rows() -> int:
            async with self._engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(MESSAGES))).scalar_one())

        return await self.bounded("counting", count_rows)

    async def ping(self) -> None:
        """A readiness check that costs the same on ten rows or ten million (`count()` scans the table)."""

        async def select_one() -> None:
            async with self._engine.connect() as conn:
                await conn.execute(select(1))

        await self.bounded("checking", select_one)

    async def migrate(self, lock_timeout_s: float) -> str:
        """Bring the schema to the head revision (`bot.db.migrate`) and return it. Bounded by the lock's
        wait plus the call timeout, not the call timeout alone: another instance may be migrating."""
        from bot.db.migrate import upgrade  # bot.db.migrate builds on this module

        await self.ping()  # a hung or unreachable server fails within the call timeout, not the lock's
        return await self.bounded(
            "migrating the schema",
            lambda: upgrade(self._engine, lock_timeout_s=lock_timeout_s),
            timeout_s=lock_timeout_s + self._timeout_s,
        )

    async def close(self) -> None:
        """Stop calls that overran (a second cancel makes psycopg drop the connection), then the pool."""
        for _ in range(100):  # each cancel interrupts whichever wait the unwinding is in; bounded at ~5 s
            if not self._abandoned:
                break
            for task in self._abandoned:
                task.cancel()
            await asyncio.wait(set(self._abandoned), timeout=0.05)
        await self._engine.dispose()

    async def __aenter__(self) -> History:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def bounded(
        self, doing: str, work: Callable[[], Coroutine[Any, Any, T]], timeout_s: float | None = None
    ) -> T:
        """Run `work` within `timeout_s` and turn every database failure into `HistoryUnavailable`
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
            raise HistoryUnavailable(f"timed out after {timeout_s or self._timeout_s:g} s {doing}")
        try:
            return task.result()
        except (SQLAlchemyError, OSError) as exc:
            raise HistoryUnavailable(f"{reason_of(exc)} ({doing})") from exc

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(_settle)
        task.add_done_callback(self._abandoned.discard)


def _settle(task: asyncio.Task[Any]) -> None:
    """Retrieve an abandoned call's outcome, so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


_COLUMNS = [column for column in MESSAGES.columns if column.name != "id"]


def _row(entry: HistoryEntry) -> dict[str, Any]:
    return {column.name: getattr(entry, column.name) for column in _COLUMNS}


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        at=row["at"],
        number=row["number"],
        direction=row["direction"],
        text=row["text"],
        intent=row["intent"],
        command=row["command"],
        source=row["source"],
        latency_ms=float(row["latency_ms"]),
        outcome=row["outcome"],
        segments=int(row["segments"]),
        message_sid=row["message_sid"],
        detail=row["detail"],
    )


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
        raise HistoryUnavailable("DATABASE_URL is not a database URL") from None  # its text may hold a password
    if url.drivername in _POSTGRES_NAMES:
        url = url.set(drivername="postgresql+psycopg")
        return url if "connect_timeout" in url.query else url.update_query_dict({"connect_timeout": "5"})
    if url.drivername in _SQLITE_NAMES:
        if not url.database or url.database == ":memory:":
            raise HistoryUnavailable("an in-memory SQLite history would be lost; give a file path")
        return url.set(drivername="sqlite+aiosqlite")
    raise HistoryUnavailable(f"DATABASE_URL scheme {url.drivername!r} is not supported (use postgresql://)")


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
            raise HistoryUnavailable("the history path is not a file")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except (OSError, sqlite3.Error) as exc:
        raise HistoryUnavailable(reason_of(exc) + " (opening the history file)") from exc


async def open_history(
    database_url: str | None,
    sqlite_path: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    migrate_timeout_s: float = MIGRATE_TIMEOUT_S,
) -> History:
    """The history on PostgreSQL when `database_url` is set, else in the SQLite file `sqlite_path`,
    with the schema migrated to the head revision. Raises `HistoryUnavailable` (the engine is disposed
    first)."""
    url = engine_url(database_url, sqlite_path)
    if url.drivername.startswith("sqlite"):
        await asyncio.to_thread(_prepare_sqlite_file, Path(url.database or ""))
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, hide_parameters=True, pool_pre_ping=True)
    history = History(engine, timeout_s)
    try:
        await history.migrate(migrate_timeout_s)
    except HistoryUnavailable:
        await history.close()
        raise
    return history


# --- showing ----------------------------------------------------------------------------------------


def _cell(value: str | None, width: int) -> str:
    """A printable cell, cut with `…`: rows can come from a shared database, so clean them again."""
    text = clean_text(value or "", TEXT_MAX) or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def format_entries(entries: Iterable[HistoryEntry]) -> str:
    """What `operator history` prints: one line per entry, in the order given (`recent()`: newest first).

    time (UTC) · masked number · in/out · intent · command · latency · outcome · the text, shortened
    """
    lines = [
        "  ".join(
            [
                entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                _cell(entry.number, 16).ljust(16),
                _cell(entry.direction, 3).ljust(3),
                _cell(entry.intent, 11).ljust(11),
                _cell(entry.command, 36).ljust(36),
                f"{entry.latency_ms:6.0f} ms",
                _cell(entry.outcome, 12).ljust(12),
                _cell(entry.text, 60),
            ]
        ).rstrip()
        for entry in entries
    ]
    return "\n".join(lines) if lines else "no messages recorded yet"


async def show_recent(database_url: str | None, sqlite_path: Path, limit: int, out: IO[str]) -> None:
    """`operator history`: print the latest `limit` entries. `HistoryUnavailable` is left to the CLI."""
    async with await open_history(database_url, sqlite_path) as history:
        entries = await history.recent(limit)
    out.write(format_entries(entries) + "\n")
