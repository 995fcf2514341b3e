"""What the dashboard shows, read from the history's database: aggregated there, not in Python.

Every page is a handful of small queries over the `at` index of a time window: counts with
`SUM(CASE …)`, intents with `GROUP BY`, messages per hour and health per slot grouped on a bucket
number computed in SQL; health over a week or a month from the hourly counts the recorder keeps
(a few thousand rows instead of 170,000 samples). Only the bucket arithmetic differs between the databases (SQLite has
`strftime('%s', …)` and integer division; PostgreSQL `extract(epoch …)` and `floor`), so it is the
one place that looks at the dialect.

Percentiles are nearest-rank, one `ORDER BY latency_ms LIMIT 1 OFFSET k` each: the database sorts
the window's answered texts and sends back one number. That is a sort of every answered text in the
window per percentile — nothing at ten thousand rows, a second or more at tens of millions; past
that, keep a latency histogram per hour (or use PostgreSQL's `percentile_cont` over an index).

Texts shown are cleaned again on the way out (controls removed, numbers masked): rows may come
from a shared database that something else wrote.

Every call is bounded by the database handle (`Database.bounded`) and raises only `DatabaseUnavailable` (short,
safe wording), which the page shows as a notice instead of failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, and_, case, cast, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from bot.db.cleaning import clean_text
from bot.db.database import Database
from bot.db.health_log import hour_of
from bot.db.schema import HEALTH_CHECKS, HEALTH_HOURS, MESSAGES

TIMEOUT_S = 3.0
"""Per page: a page that waits longer for its database is better shown with a notice."""
PER_PAGE = 50
TEXT_CHARS = 120
MAX_SLOTS = 96
"""Health strip cells at most: 15 minutes each over a day."""
RAW_HOURS = 24
"""Windows up to this long read the health samples; longer ones the hourly counts."""
ANSWERED = ("ok", "unknown", "error")
"""Outcomes of a text that got its answer in the webhook's response (the latency people felt)."""
PERCENTILES = (0.50, 0.95, 0.99)
REASONS = {"rate_limited": "(rate limited)", "rejected": "(not on the allowlist)", "deferred": "(answered later)"}
"""What a text that never reached a command is listed as, by its outcome, instead of a bare "(none)"."""

Slot = Literal["ok", "down", "none"]


@dataclass(frozen=True)
class IntentCount:
    intent: str
    texts: int
    not_ok: int
    """Texts of this intent whose outcome was not `ok` (not understood, failed, refused …)."""


@dataclass(frozen=True)
class Latency:
    answered: int
    """How many texts the percentiles are over."""
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class HourCount:
    start: datetime
    inbound: int
    outbound: int


@dataclass(frozen=True)
class MonitorHistory:
    name: str
    slots: tuple[Slot, ...]
    """Oldest first: `down` if any sample in the slot was down, `ok` if all were up, `none` if no sample."""
    samples: int
    ok: int
    last_at: datetime | None
    last_ok: bool | None
    last_detail: str

    @property
    def uptime(self) -> float | None:
        """Percent of samples up in the window."""
        return 100.0 * self.ok / self.samples if self.samples else None


@dataclass(frozen=True)
class Overview:
    start: datetime
    end: datetime
    hours: int
    texts_in: int
    """Texts people sent (alert notifications received from Alertmanager/Datadog are counted apart)."""
    texts_out: int
    """Everything sent: replies in the webhook's TwiML ("slow down" included), deferred answers and alert
    texts; not Twilio's delivery callbacks."""
    alerts_received: int
    alerts_sent: int
    acks: int
    intents: list[IntentCount]
    latency: Latency
    per_hour: list[HourCount]
    health: list[MonitorHistory]
    slot_s: int


@dataclass(frozen=True)
class MessageRow:
    at: datetime
    number: str
    direction: str
    intent: str
    command: str
    latency_ms: float
    outcome: str
    text: str


@dataclass(frozen=True)
class MessagePage:
    page: int
    rows: list[MessageRow]
    has_next: bool


class DashboardQueries:
    """The dashboard's reads over the database the history lives in."""

    def __init__(self, database: Database, timeout_s: float = TIMEOUT_S) -> None:
        self.database = database
        self.timeout_s = timeout_s

    async def overview(self, now: datetime, hours: int, sample_s: float) -> Overview:
        """Everything on the overview for the `hours` before `now`. Raises `DatabaseUnavailable`."""
        start = now - timedelta(hours=hours)

        async def read() -> Overview:
            async with self.database.engine.connect() as conn:
                counts = await _counts(conn, start)
                intents = await _intents(conn, start)
                latency = await _latency(conn, start)
                per_hour = await _per_hour(conn, start, hours)
                health, slot_s = await _health(conn, start, hours, sample_s)
            return Overview(start=start, end=now, hours=hours, intents=intents, latency=latency, per_hour=per_hour,
                            health=health, slot_s=slot_s, **counts)  # fmt: skip

        return await self.database.bounded("reading the dashboard", read, self.timeout_s)

    async def messages(self, page: int, per_page: int = PER_PAGE) -> MessagePage:
        """Page `page` (from 1) of the messages, newest first. Raises `DatabaseUnavailable`."""
        columns = [MESSAGES.c[name] for name in
                   ("at", "number", "direction", "intent", "command", "latency_ms", "outcome", "text")]  # fmt: skip
        query = (
            select(*columns)
            .order_by(MESSAGES.c.at.desc(), MESSAGES.c.id.desc())
            .limit(per_page + 1)
            .offset((page - 1) * per_page)
        )

        async def read() -> list[Any]:
            async with self.database.engine.connect() as conn:
                return list((await conn.execute(query)).all())

        rows = await self.database.bounded("reading messages", read, self.timeout_s)
        shown = [_message(row._mapping) for row in rows[:per_page]]
        return MessagePage(page, shown, has_next=len(rows) > per_page)


def _message(row: Any) -> MessageRow:
    return MessageRow(
        at=row["at"],
        number=clean_text(row["number"] or "", 40) or "-",
        direction=row["direction"],
        intent=clean_text(row["intent"] or "", 32) or _reason(row),
        command=cut(row["command"] or "", 60) or "-",
        latency_ms=float(row["latency_ms"] or 0.0),
        outcome=clean_text(row["outcome"] or "", 32) or "-",
        text=cut(row["text"] or "", TEXT_CHARS),
    )


def _reason(row: Any) -> str:
    """A text that never reached a command is shown by why (rate limited …) rather than as "-"."""
    return REASONS.get(row["outcome"] or "", "-") if row["direction"] == "in" else "-"


def cut(text: str, width: int) -> str:
    """Cleaned (controls gone, numbers masked) and cut with `…`."""
    cleaned = clean_text(text, width * 4)
    return cleaned if len(cleaned) <= width else cleaned[: width - 1] + "…"


def _since(start: datetime) -> ColumnElement[bool]:
    return MESSAGES.c.at >= start


def _bucket(column: Any, start: datetime, slot_s: int, dialect: str) -> ColumnElement[Any]:
    """Which `slot_s`-long slot after `start` the time in `column` falls in (0 is the first)."""
    origin = math.floor(start.timestamp())
    if dialect == "sqlite":  # times stored as naive UTC text; `//` is SQLite's integer division
        return (cast(func.strftime("%s", column), Integer) - origin) // slot_s
    return func.floor((extract("epoch", column) - origin) / slot_s)  # numeric on PostgreSQL: floor it


def _sent() -> ColumnElement[bool]:
    """Rows of texts we sent: `out` rows with a body. Twilio's delivery callbacks are `out` rows too (the
    message they report on), with no body: they are not texts."""
    return and_(MESSAGES.c.direction == "out", MESSAGES.c.text != "")


def _ones(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _counts(conn: AsyncConnection, start: datetime) -> dict[str, int]:
    c = MESSAGES.c
    alert = c.intent == "alert"
    query = select(
        _ones(and_(c.direction == "in", c.intent.is_distinct_from("alert"))).label("texts_in"),
        _ones(_sent()).label("texts_out"),
        _ones(and_(c.direction == "in", alert)).label("alerts_received"),
        _ones(and_(c.direction == "out", alert)).label("alerts_sent"),
        _ones(and_(c.direction == "in", c.intent == "ack", c.outcome == "ok")).label("acks"),
    ).where(_since(start))
    row = (await conn.execute(query)).one()._mapping
    return {key: int(value or 0) for key, value in row.items()}


async def _intents(conn: AsyncConnection, start: datetime) -> list[IntentCount]:
    c = MESSAGES.c
    texts = func.count().label("texts")
    reason = case((c.intent.is_(None), c.outcome), else_="").label("reason")  # why a text has no intent
    query = (
        select(c.intent, reason, texts, _ones(c.outcome != "ok").label("not_ok"))
        .where(_since(start), c.direction == "in", c.intent.is_distinct_from("alert"))
        .group_by(c.intent, reason)
        .order_by(texts.desc(), c.intent, reason)
    )
    rows = (await conn.execute(query)).all()
    return [IntentCount(clean_text(intent or "", 32) or REASONS.get(why or "", "(none)"), int(n), int(bad))
            for intent, why, n, bad in rows]  # fmt: skip


async def _latency(conn: AsyncConnection, start: datetime) -> Latency:
    c = MESSAGES.c
    answered = and_(_since(start), c.direction == "in", c.outcome.in_(ANSWERED), c.intent.is_distinct_from("alert"))
    count = int((await conn.execute(select(func.count()).where(answered))).scalar_one())
    values: list[float | None] = []
    for fraction in PERCENTILES:
        if not count:
            values.append(None)
            continue
        rank = max(1, math.ceil(fraction * count))  # nearest rank: the smallest value with `fraction` at or below
        query = select(c.latency_ms).where(answered).order_by(c.latency_ms).limit(1).offset(rank - 1)
        values.append(float((await conn.execute(query)).scalar_one()))
    return Latency(count, *values)


async def _per_hour(conn: AsyncConnection, start: datetime, hours: int) -> list[HourCount]:
    c = MESSAGES.c
    counted = or_(c.direction == "in", _sent())
    inner = select(_bucket(c.at, start, 3600, conn.dialect.name).label("slot"), c.direction).where(
        _since(start), counted
    )
    buckets = inner.subquery()
    query = select(buckets.c.slot, buckets.c.direction, func.count()).group_by(buckets.c.slot, buckets.c.direction)
    inbound, outbound = [0] * hours, [0] * hours
    for slot, direction, n in (await conn.execute(query)).all():
        index = min(max(int(slot), 0), hours - 1)
        (inbound if direction == "in" else outbound)[index] += int(n)
    return [HourCount(start + timedelta(hours=i), inbound[i], outbound[i]) for i in range(hours)]


async def _health(
    conn: AsyncConnection, start: datetime, hours: int, sample_s: float
) -> tuple[list[MonitorHistory], int]:
    """Each monitor's strip and uptime over the window, and the slot length in seconds.

    A day or less is bucketed from the samples themselves (at most MAX_SLOTS slots, none shorter than
    a sample); longer windows from `health_hours` in slots of whole hours, so the hour the window
    starts in counts whole (at most an hour more than the window, of 25 or more).
    """
    if hours <= RAW_HOURS:
        window_s = hours * 3600
        slots = max(1, min(MAX_SLOTS, int(window_s // max(sample_s, 1))))
        slot_s = math.ceil(window_s / slots)
        h = HEALTH_CHECKS.c
        bucket = _bucket(h.at, start, slot_s, conn.dialect.name).label("slot")
        inner = select(h.monitor, h.ok, bucket).where(h.at >= start).subquery()
        ups = func.coalesce(func.sum(case((inner.c.ok, 1), else_=0)), 0)
        grouped = select(inner.c.monitor, inner.c.slot, func.count(), ups).group_by(inner.c.monitor, inner.c.slot)
    else:
        slot_h = math.ceil(hours / MAX_SLOTS)
        slots, slot_s = math.ceil(hours / slot_h), slot_h * 3600
        first = hour_of(start)
        r = HEALTH_HOURS.c
        bucket = ((r.hour - first) / slot_h).label("slot")  # integers: integer division on both databases
        grouped = (
            select(r.monitor, bucket, func.sum(r.samples), func.sum(r.ups))
            .where(r.hour >= first)
            .group_by(r.monitor, bucket)
        )
    per_monitor: dict[str, dict[int, tuple[int, int]]] = {}
    for monitor, slot, n, up in (await conn.execute(grouped)).all():
        cells = per_monitor.setdefault(monitor, {})
        index = min(max(int(slot), 0), slots - 1)
        before = cells.get(index, (0, 0))
        cells[index] = (before[0] + int(n), before[1] + int(up or 0))
    histories = []
    for monitor in sorted(per_monitor):
        cells = per_monitor[monitor]
        strip: tuple[Slot, ...] = tuple(_slot(cells.get(i)) for i in range(slots))
        last = await _latest_health(conn, monitor, start)
        histories.append(MonitorHistory(
            name=clean_text(monitor, 64) or "-", slots=strip,
            samples=sum(n for n, _ in cells.values()), ok=sum(up for _, up in cells.values()),
            last_at=last[0] if last else None, last_ok=bool(last[1]) if last else None,
            last_detail=cut(last[2] or "", 80) if last else "",
        ))  # fmt: skip
    return histories, slot_s


def _slot(cell: tuple[int, int] | None) -> Slot:
    if cell is None or cell[0] == 0:
        return "none"
    return "ok" if cell[1] == cell[0] else "down"


async def _latest_health(
    conn: AsyncConnection, monitor: str, start: datetime
) -> tuple[datetime, bool, str | None] | None:
    """The monitor's newest sample in the window: one step down the (monitor, at) index."""
    h = HEALTH_CHECKS.c
    query = select(h.at, h.ok, h.detail).where(h.monitor == monitor, h.at >= start).order_by(h.at.desc()).limit(1)
    row = (await conn.execute(query)).first()
    return (row[0], row[1], row[2]) if row is not None else None
