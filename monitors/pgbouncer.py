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
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, LiteralString

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, field_validator

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
from monitors.formatting import clip, duration, human, number, safe
from monitors.registry import BuildContext

DISPLAY = "pgBouncer"
ADMIN_DB = "pgbouncer"
"""The admin console's virtual database; its pool is our own connection."""

SHOW_POOLS: LiteralString = "SHOW POOLS"
SHOW_STATS: LiteralString = "SHOW STATS"
SHOW_CLIENTS: LiteralString = "SHOW CLIENTS"
SHOW_VERSION: LiteralString = "SHOW VERSION"

MAX_SHOWN = 3
"""Pools, databases, users or addresses named in one SMS; the rest are counted."""
LIST_BUDGET = 220
"""Characters a list of pool or database lines may take; lines past it are counted, not cut."""
MAX_REPLY = 300
"""A last bound on a reply, for names longer than any real one."""
NAME_LIMIT = 20
"""Characters of one backend-provided name (database, user, address) in a reply."""
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

Row = Mapping[str, Any]
Answers = Mapping[str, Sequence[Row]]


class PgBouncerConfig(BaseModel):
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


# --- figures, parsed from the admin console's rows --------------------------------------------------


@dataclass(frozen=True)
class Pool:
    database: str
    user: str
    cl_active: int
    """Clients linked to a server or idle (pgBouncer counts both as active)."""
    cl_waiting: int
    sv_active: int
    sv_idle: int
    """Idle servers, counting those waiting for a check before reuse (sv_used)."""
    sv_login: int
    maxwait_s: float
    mode: str


@dataclass(frozen=True)
class DbStats:
    database: str
    qps: float
    tps: float
    query_s: float
    xact_s: float
    wait_s: float


@dataclass(frozen=True)
class Client:
    database: str
    user: str
    addr: str
    state: str
    """active (paired with a server), idle (connected, no transaction) or waiting (queued for a server)."""
    wait_s: float


def selected(rows: Sequence[Row], database: str | None) -> list[Row]:
    """The rows of one database, or of every database but the admin console's."""
    if database is not None:
        return [row for row in rows if str(row.get("database")) == database]
    return [row for row in rows if str(row.get("database")) != ADMIN_DB]


def parse_pools(rows: Sequence[Row], database: str | None = None) -> list[Pool]:
    return [
        Pool(
            database=_text(row, "database"),
            user=_text(row, "user"),
            cl_active=_count(row, "cl_active"),
            cl_waiting=_count(row, "cl_waiting"),
            sv_active=_count(row, "sv_active"),
            sv_idle=_count(row, "sv_idle") + _count(row, "sv_used", required=False),
            sv_login=_count(row, "sv_login", required=False),
            maxwait_s=_count(row, "maxwait") + _count(row, "maxwait_us", required=False) / 1e6,
            mode=_text(row, "pool_mode", required=False),
        )
        for row in selected(rows, database)
    ]


def parse_stats(rows: Sequence[Row], database: str | None = None) -> list[DbStats]:
    """Per-database rates and average durations (pgBouncer reports durations in microseconds)."""
    return [
        DbStats(
            database=_text(row, "database"),
            qps=_figure(row, "avg_query_count"),
            tps=_figure(row, "avg_xact_count"),
            query_s=_figure(row, "avg_query_time") / 1e6,
            xact_s=_figure(row, "avg_xact_time") / 1e6,
            wait_s=_figure(row, "avg_wait_time", required=False) / 1e6,
        )
        for row in selected(rows, database)
    ]


def parse_clients(rows: Sequence[Row], database: str | None = None) -> list[Client]:
    return [
        Client(
            database=_text(row, "database"),
            user=_text(row, "user"),
            addr=_text(row, "addr", required=False) or "unix",
            state=_client_state(row),
            wait_s=_count(row, "wait", required=False) + _count(row, "wait_us", required=False) / 1e6,
        )
        for row in selected(rows, database)
    ]


def _client_state(row: Row) -> str:
    if _text(row, "state").startswith("waiting"):
        return "waiting"
    return "active" if row.get("link") else "idle"


def _text(row: Row, column: str, required: bool = True) -> str:
    value = row.get(column)
    if value is None:
        if required and column not in row:
            raise BadBackendResponse(DISPLAY, f"no {column} column")
        return ""
    return str(value)


def _figure(row: Row, column: str, required: bool = True) -> float:
    """A number column as sent (int4, or numeric for the 64-bit counters), or as text."""
    value = row.get(column)
    if value is None:
        if required:
            raise BadBackendResponse(DISPLAY, f"no {column} column")
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise BadBackendResponse(DISPLAY, f"{column} is not a number")
    try:
        figure = float(value)
    except ValueError as exc:
        raise BadBackendResponse(DISPLAY, f"{column} is not a number") from exc
    if not math.isfinite(figure) or figure < 0:
        raise BadBackendResponse(DISPLAY, f"{column} is out of range")
    return figure


def _count(row: Row, column: str, required: bool = True) -> int:
    return int(_figure(row, column, required))


# --- reports ---------------------------------------------------------------------------------------


def report(metric: str | None, answers: Answers, name: str = "pgbouncer", database: str | None = None) -> Report:
    """The Report for one `db` question from the admin console's rows (by SHOW statement)."""
    if metric is None:
        pools, stats = parse_pools(answers[SHOW_POOLS], database), parse_stats(answers[SHOW_STATS], database)
        return summary(name, pools, stats, database)
    if metric == "connections":
        pools, clients = parse_pools(answers[SHOW_POOLS], database), parse_clients(answers[SHOW_CLIENTS], database)
        return connections(name, pools, clients, database)
    if metric == "pools":
        return pools_report(name, parse_pools(answers[SHOW_POOLS], database))
    if metric == "stats":
        return stats_report(name, parse_stats(answers[SHOW_STATS], database))
    if metric == "clients":
        return clients_report(name, parse_clients(answers[SHOW_CLIENTS], database))
    raise BackendQueryError(DISPLAY, "ask for connections, pools, stats or clients")


STATEMENTS: dict[str | None, tuple[LiteralString, ...]] = {
    None: (SHOW_POOLS, SHOW_STATS),
    "connections": (SHOW_POOLS, SHOW_CLIENTS),
    "pools": (SHOW_POOLS,),
    "stats": (SHOW_STATS,),
    "clients": (SHOW_CLIENTS,),
}
"""What each `db` question needs from the console, run on one connection."""


def summary(name: str, pools: Sequence[Pool], stats: Sequence[DbStats], database: str | None = None) -> Report:
    """ "pgbouncer appdb: clients 12 active, 3 waiting (max wait 2s); servers 5 active, 5 idle; 140 q/s"."""
    databases = sorted({p.database for p in pools} | {s.database for s in stats})
    scope = database if database is not None else (databases[0] if len(databases) == 1 else None)
    title = _title(name, scope, len(databases))
    if not pools:
        return Report(title, (_no_pools(database),))
    facts = [_client_line(pools), _server_line(pools)]
    if stats:
        facts.append(f"{number(sum(s.qps for s in stats))} q/s")
    if len(databases) > 1:
        facts.append("by db: " + _top(_load_by_database(pools)))
    return Report(title, tuple(facts))


def connections(name: str, pools: Sequence[Pool], clients: Sequence[Client], database: str | None = None) -> Report:
    """Client connections by what they do now (from SHOW CLIENTS), server connections by state (SHOW POOLS)."""
    title = _title(name, database, 0) + " connections"
    if not pools and not clients:
        return Report(title, (_no_pools(database),))
    states = Counter(c.state for c in clients)
    facts = [f"clients {states['active']} active, {states['idle']} idle, {states['waiting']} waiting",
             _server_line(pools)]  # fmt: skip
    longest = max((p.maxwait_s for p in pools), default=0.0)
    if states["waiting"] or longest >= 1:
        facts.append(f"max wait {_wait(longest)}")
    return Report(title, tuple(facts))


def pools_report(name: str, pools: Sequence[Pool]) -> Report:
    """One line per (database, user) pool, the most loaded first."""
    title = f"{safe(name, NAME_LIMIT)} pools"
    if not pools:
        return Report(title, (_no_pools(None),))
    ranked = sorted(pools, key=lambda p: (-p.cl_waiting, -p.cl_active, -p.sv_active, p.database, p.user))
    return Report(title, _listed([_pool_line(p) for p in ranked]))


def stats_report(name: str, stats: Sequence[DbStats]) -> Report:
    """Rates and average durations per database, the busiest first."""
    title = f"{safe(name, NAME_LIMIT)} stats"
    if not stats:
        return Report(title, ("no databases yet",))
    ranked = sorted(stats, key=lambda s: (-s.qps, s.database))
    lines = [
        f"{safe(s.database, NAME_LIMIT)} {number(s.qps)} q/s, {number(s.tps)} tx/s, avg query {human(s.query_s, 's')}, "
        f"xact {human(s.xact_s, 's')}, wait {human(s.wait_s, 's')}"
        for s in ranked
    ]
    return Report(title, _listed(lines))


def clients_report(name: str, clients: Sequence[Client]) -> Report:
    """How many clients in each state, and who they are (users, addresses), the most frequent first."""
    title = f"{safe(name, NAME_LIMIT)} clients"
    if not clients:
        return Report(title, ("no clients",))
    states = Counter(c.state for c in clients)
    shown = ", ".join(f"{states[s]} {s}" for s in ("active", "idle", "waiting") if states[s])
    facts = [f"{len(clients)} connected: {shown}"]
    facts.append("users " + _top(Counter(c.user for c in clients).most_common()))
    facts.append("from " + _top(Counter(c.addr for c in clients).most_common()))
    waits = [c.wait_s for c in clients if c.state == "waiting"]
    if waits:
        facts.append(f"longest wait {_wait(max(waits))}")
    return Report(title, tuple(facts))


def _title(name: str, database: str | None, count: int) -> str:
    if database is not None:
        return f"{safe(name, NAME_LIMIT)} {safe(database, NAME_LIMIT)}"
    return safe(name, NAME_LIMIT) + (f" ({count} dbs)" if count > 1 else "")


def _no_pools(database: str | None) -> str:
    return f"no pool for {safe(database, NAME_LIMIT)}" if database is not None else "no client pools yet"


def _client_line(pools: Sequence[Pool]) -> str:
    waiting = sum(p.cl_waiting for p in pools)
    longest = max(p.maxwait_s for p in pools)
    wait = f" (max wait {_wait(longest)})" if waiting or longest >= 1 else ""
    return f"clients {sum(p.cl_active for p in pools)} active, {waiting} waiting{wait}"


def _server_line(pools: Sequence[Pool]) -> str:
    login = sum(p.sv_login for p in pools)
    tail = f", {login} logging in" if login else ""
    return f"servers {sum(p.sv_active for p in pools)} active, {sum(p.sv_idle for p in pools)} idle{tail}"


def _pool_line(pool: Pool) -> str:
    wait = f" (max {_wait(pool.maxwait_s)})" if pool.cl_waiting else ""
    mode = f", {safe(pool.mode, 12)}" if pool.mode else ""
    return (f"{safe(pool.database, NAME_LIMIT)}/{safe(pool.user, NAME_LIMIT)} cl {pool.cl_active} act "
            f"{pool.cl_waiting} wait{wait}, sv {pool.sv_active} act {pool.sv_idle} idle{mode}")  # fmt: skip


def _load_by_database(pools: Sequence[Pool]) -> list[tuple[str, str]]:
    """(database, "5/3") as active/waiting clients, the most waiting first."""
    totals: dict[str, tuple[int, int]] = {}
    for pool in pools:
        active, waiting = totals.get(pool.database, (0, 0))
        totals[pool.database] = (active + pool.cl_active, waiting + pool.cl_waiting)
    ranked = sorted(totals.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    return [(db, f"{active}/{waiting}") for db, (active, waiting) in ranked]


def _listed(lines: Sequence[str]) -> tuple[str, ...]:
    """The first lines (MAX_SHOWN at most, one at least) that fit in LIST_BUDGET, and how many were left out."""
    shown: list[str] = []
    for line in lines[:MAX_SHOWN]:
        if shown and sum(len(s) + 2 for s in shown) + len(line) > LIST_BUDGET:
            break
        shown.append(line)
    more = len(lines) - len(shown)
    return (*shown, f"+{more} more") if more else tuple(shown)


def _top(items: Sequence[tuple[str, object]]) -> str:
    """ "appdb 5/3, other 1/0 +2 more": the first MAX_SHOWN (name, figure) items, names made safe."""
    shown = ", ".join(f"{safe(name, NAME_LIMIT)} {value}" for name, value in items[:MAX_SHOWN])
    return shown + (f" +{len(items) - MAX_SHOWN} more" if len(items) > MAX_SHOWN else "")


def _wait(seconds: float) -> str:
    return human(seconds, "s").replace(" ", "") if seconds < 1 else duration(seconds)


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
