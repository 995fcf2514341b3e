"""pgBouncer's SHOW answers read into figures, and the figures as SMS lines (pure: no connection)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, LiteralString

from monitors.base import Report
from monitors.errors import (
    BackendQueryError,
    BadBackendResponse,
)
from monitors.formatting import duration, human, number, safe

DISPLAY = "pgBouncer"
ADMIN_DB = "pgbouncer"
"""The admin console's virtual database; its pool is our own connection."""
SHOW_POOLS: LiteralString = "SHOW POOLS"
SHOW_STATS: LiteralString = "SHOW STATS"
SHOW_CLIENTS: LiteralString = "SHOW CLIENTS"
SHOW_VERSION: LiteralString = "SHOW VERSION"
Row = Mapping[str, Any]
Answers = Mapping[str, Sequence[Row]]


MAX_SHOWN = 3
"""Pools, databases, users or addresses named in one SMS; the rest are counted."""
LIST_BUDGET = 220
"""Characters a list of pool or database lines may take; lines past it are counted, not cut."""
MAX_REPLY = 300
"""A last bound on a reply, for names longer than any real one."""
NAME_LIMIT = 20
"""Characters of one backend-provided name (database, user, address) in a reply."""


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
