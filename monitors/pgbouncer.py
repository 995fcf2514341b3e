"""pgBouncer: pool, client and traffic figures from its admin console (SHOW POOLS, STATS, CLIENTS).

The admin console understands only the simple query protocol, so every statement goes through a
client-side-binding cursor (`AsyncClientCursor`) on an autocommit connection: no prepared
statements, no BEGIN. Each question opens one short connection; the console is cheap to reach and
a held connection would count as a client in the very figures we report.

Queries per second are pgBouncer's own `avg_query_count` (the average over its last
`stats_period`, 60 s by default) rather than a delta of `total_query_count`: a delta needs two
readings some time apart, so either each SMS waits a second of its deadline for a noisy one-second
sample, or the bot keeps readings between questions and its first answer (and every answer after
a restart or from another worker) has nothing to compare with. pgBouncer already does the
averaging over a longer, steadier window.

The password comes only from the PGBOUNCER_PASSWORD setting and is passed beside the DSN, never in
it, so it cannot surface in an error message. The admin console's own pool ("pgbouncer") is left out
unless asked for: our own connection would otherwise always show up as one active client.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitors.base import DbQuery, Health, Kind, Query, Report, Result
from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    scrub,
)
from monitors.formatting import clip, safe
from monitors.pgbouncer_report import (
    DISPLAY,
    MAX_REPLY,
    SHOW_CLIENTS,
    SHOW_POOLS,
    SHOW_STATS,
    SHOW_VERSION,
    report,
)
from monitors.registry import BuildContext

HANG_UP_GRACE_S = 0.1
"""How long after the deadline the asyncio timeout waits for the hang-up to end a stuck query."""
AUTH_FAILED = ("authentication failed", "no password supplied", "password is required", "no such user")
NOT_ALLOWED = ("not allowed", "pg_hba.conf")
UNREACHABLE = ("connection refused", "could not translate host name", "no such file or directory", "could not connect",
               "network is unreachable", "no route to host", "name or service not known")  # fmt: skip
NOT_POSTGRES = ("invalid response to ssl negotiation", "expected authentication request", "unexpected message",
                "lost synchronization", "invalid message", "received invalid response")  # fmt: skip
CONNECTION_LOST = ("server closed the connection", "connection is lost", "connection socket closed",
                   "consuming input failed", "connection reset")  # fmt: skip
_LIBPQ_PREFIX = re.compile(
    r"^(?:connection failed: )?"
    r'(?:connection to server (?:at|on socket) "[^"]*"(?:\s*\([^)]*\))?(?:, port \d+)? failed: )?'
    r"(?:(?:FATAL|ERROR):\s+)?"
)


class PgBouncerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is refused, not ignored

    dsn: str
    """libpq DSN of the admin console (postgresql://user@host:6432/pgbouncer), without a password."""
    timeout_s: float = Field(3.0, gt=0, le=30)
    database: str | None = None
    """Report only this database's pools (default: every pool but the admin console's)."""

    @field_validator("dsn")
    @classmethod
    def _no_password_inside(cls, value: str) -> str:
        try:
            params = conninfo_to_dict(value)
        except psycopg.ProgrammingError:
            raise ValueError("not a PostgreSQL connection string") from None
        if "password" in params:
            raise ValueError("keep the password out of the dsn: set PGBOUNCER_PASSWORD")
        return value


STATEMENTS: dict[str | None, tuple[LiteralString, ...]] = {
    None: (SHOW_POOLS, SHOW_STATS),
    "connections": (SHOW_POOLS, SHOW_CLIENTS),
    "pools": (SHOW_POOLS,),
    "stats": (SHOW_STATS,),
    "clients": (SHOW_CLIENTS,),
}
"""What each `db` question needs from the console, run on one connection."""


# --- the monitor -----------------------------------------------------------------------------------


class PgBouncer:
    display = DISPLAY
    system = "database"
    kinds = frozenset({Kind.DB})

    def __init__(self, name: str, config: PgBouncerConfig, password: str | None = None) -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        self.database = config.database
        self._dsn = config.dsn
        self._password = password

    async def health(self) -> Health:
        rows = (await self.ask((SHOW_VERSION,)))[SHOW_VERSION]
        version = str(next(iter(rows[0].values()), "")) if rows and rows[0] else ""
        return Health(True, safe(version, 40) or "answering")

    async def query(self, request: Query) -> Result:
        if not isinstance(request, DbQuery):
            raise BackendQueryError(self.display, "only db questions")
        statements = STATEMENTS.get(request.metric)
        if statements is None:
            raise BackendQueryError(self.display, "ask for connections, pools, stats or clients")
        return report(request.metric, await self.ask(statements), self.name, self.database)

    def format(self, result: Result) -> str:
        assert isinstance(result, Report)
        return clip(f"{result.title}: {'; '.join(result.facts)}", MAX_REPLY)

    async def ask(self, statements: Sequence[LiteralString]) -> dict[str, list[dict[str, Any]]]:
        """Each statement's rows, from one admin-console connection, all within `timeout_s`.

        libpq's connect_timeout bounds each connection attempt (in whole seconds, 2 at least), and
        the asyncio deadline bounds everything. A query stuck on a silent server is ended by shutting
        its socket at the deadline, slightly before the asyncio timeout: cancelling psycopg mid-query
        would make it send the server a cancel request and wait up to 10 s for that to work."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline + HANG_UP_GRACE_S):
                conn = await self._connect()
                async with conn:
                    with _hang_up_at(conn, deadline) as watchdog:
                        try:
                            return {statement: await _rows(conn, statement) for statement in statements}
                        except psycopg.OperationalError as exc:
                            if watchdog.fired:
                                raise TimeoutError from exc
                            raise
        except TimeoutError as exc:
            raise BackendTimeout(self.display, self.timeout_s) from exc
        except psycopg.Error as exc:
            raise translate(exc, self.timeout_s) from exc

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, prepare_threshold=None, connect_timeout=max(2, math.ceil(self.timeout_s)),
            application_name="operator-sms", password=self._password or None,
        )  # fmt: skip


async def _rows(conn: psycopg.AsyncConnection[Any], statement: LiteralString) -> list[dict[str, Any]]:
    async with psycopg.AsyncClientCursor(conn, row_factory=dict_row) as cursor:
        await cursor.execute(statement)
        return await cursor.fetchall() if cursor.description is not None else []


class _Watchdog:
    """Shuts a stuck connection's socket, so the query waiting on it fails at once."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        try:
            fd = self.conn.pgconn.socket  # asked now: a dropped connection's number may belong to another socket
        except psycopg.OperationalError:
            return
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def _hang_up_at(conn: psycopg.AsyncConnection[Any], deadline: float) -> Iterator[_Watchdog]:
    watchdog = _Watchdog(conn)
    handle = asyncio.get_running_loop().call_at(deadline, watchdog.fire)
    try:
        yield watchdog
    finally:
        handle.cancel()


def translate(exc: psycopg.Error, timeout_s: float) -> BackendError:
    """A psycopg error as one of ours: the server's own refusal, or what kind of connection failure."""
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return BackendTimeout(DISPLAY, timeout_s)
    sqlstate = exc.sqlstate or ""
    if sqlstate.startswith("28"):
        return BackendAuthError(DISPLAY, detail="login refused")
    if exc.diag.message_primary:
        if sqlstate == "42704":  # unrecognized configuration parameter "pools": a plain PostgreSQL
            return BackendQueryError(DISPLAY, "not the admin console (the dsn's database must be pgbouncer)")
        return BackendQueryError(DISPLAY, scrub(exc.diag.message_primary))
    reason = reason_of(str(exc))
    lowered = reason.lower()
    if any(marker in lowered for marker in AUTH_FAILED):
        return BackendAuthError(DISPLAY, detail="login refused")
    if any(marker in lowered for marker in NOT_ALLOWED):
        return BackendAuthError(DISPLAY, detail="not an admin or stats user")
    if any(marker in lowered for marker in UNREACHABLE):
        return BackendUnavailable(DISPLAY, "cannot connect")
    if any(marker in lowered for marker in NOT_POSTGRES):
        return BadBackendResponse(DISPLAY, "not a PostgreSQL server")
    if any(marker in lowered for marker in CONNECTION_LOST):
        return BackendUnavailable(DISPLAY, "connection lost")
    if isinstance(exc, psycopg.DataError):
        return BadBackendResponse(DISPLAY, "unreadable value")
    return BackendError(DISPLAY, scrub(reason))


def reason_of(message: str) -> str:
    """libpq's message without its "connection to server at ... failed:" preamble, first line only."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    return _LIBPQ_PREFIX.sub("", first).strip() or "failed"


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> PgBouncer:
    return PgBouncer(name, PgBouncerConfig(**config), context.secrets.get("pgbouncer_password"))
