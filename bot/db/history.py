"""The audit history of every message, in and out: who (masked), what, how it was understood, how it went.

SQLite in a file by default, so a fresh install keeps history with zero set-up; PostgreSQL when a
`DATABASE_URL` is configured, so several instances share one history and a dashboard can read it.
The table is `MESSAGES` (`bot.db.schema`); the handle it goes through is a `Database`.

Privacy is enforced here, not left to callers: `make_entry` takes the raw phone number and keeps only
its mask, and every text field is cleaned and capped (`bot.db.cleaning`). Nothing here logs.
Recording must never break replying: the app catches `DatabaseUnavailable` around `record()` (the
audit writer does), logs its message and answers anyway; `operator history` lets it reach the CLI,
which prints it and exits non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, get_args

from sqlalchemy import func, insert, select

from bot.db.cleaning import clean_text, optional_text, vocabulary_word
from bot.db.database import Database
from bot.db.migrate import open_database
from bot.db.schema import COMMAND_MAX, DETAIL_MAX, MESSAGES, SID_MAX, TEXT_MAX
from bot.sms.privacy import mask_number

Direction = Literal["in", "out"]
"""`in`: a text someone sent us; `out`: a text we sent (a reply, a page)."""


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
        intent=vocabulary_word(intent),
        command=optional_text(command, COMMAND_MAX),
        source=vocabulary_word(source),
        latency_ms=_latency(latency_ms),
        outcome=vocabulary_word(outcome) or Outcome.UNKNOWN,
        segments=max(0, int(segments)),
        message_sid=optional_text(message_sid, SID_MAX),
        detail=optional_text(detail, DETAIL_MAX),
    )


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


class History:
    """The message history, over a `Database` it borrows (and closes, when it opened it: `open_history`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

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
        Raises `DatabaseUnavailable`, which the caller catches so the reply still goes out.
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
            async with self.database.engine.begin() as conn:
                await conn.execute(insert(MESSAGES), rows)

        await self.database.bounded("recording", insert_rows)

    async def recent(self, limit: int = 20) -> list[HistoryEntry]:
        """The latest `limit` entries, newest first."""
        if limit <= 0:
            return []
        query = select(*_COLUMNS).order_by(MESSAGES.c.at.desc(), MESSAGES.c.id.desc()).limit(limit)

        async def read() -> list[HistoryEntry]:
            async with self.database.engine.connect() as conn:
                return [_entry(row._mapping) for row in (await conn.execute(query)).all()]

        return await self.database.bounded("reading", read)

    async def count(self) -> int:
        async def count_rows() -> int:
            async with self.database.engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(MESSAGES))).scalar_one())

        return await self.database.bounded("counting", count_rows)

    async def close(self) -> None:
        await self.database.close()

    async def __aenter__(self) -> History:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_history(database_url: str | None, sqlite_path: Path, **options: float) -> History:
    """The history in its own migrated database (the CLI, tests); the app shares one `Database` instead."""
    return History(await open_database(database_url, sqlite_path, **options))


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
    """`operator history`: print the latest `limit` entries. `DatabaseUnavailable` is left to the CLI."""
    async with await open_history(database_url, sqlite_path) as history:
        entries = await history.recent(limit)
    out.write(format_entries(entries) + "\n")
