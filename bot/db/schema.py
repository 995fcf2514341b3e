"""Every table Operator keeps, in one `MetaData` (a declaration: no connection, no I/O).

Alembic's migrations (`bot/db/migrations/`) produce exactly this schema; `bot.db.migrate` compares a
database with it. One naming convention for every table, so constraint and index names are the same
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)

TEXT_MAX = 1600
"""Twilio's own limit on one message body; a longer text is cut, never refused."""
COMMAND_MAX = 200
DETAIL_MAX = 200
WORD_MAX = 32
"""Intent, source and outcome are short vocabulary words."""
NUMBER_MAX = 32
SID_MAX = 64


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
    }
)
"""Alembic's `target_metadata`. Primary keys are named where the migrations named them (the subscriptions
table predates the convention; its key keeps the database's own name)."""

MESSAGES = Table(
    "message_history",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), autoincrement=True),
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
    PrimaryKeyConstraint("id", name="pk_message_history"),
)

MONITOR_MAX = 64
"""A monitor's configured name."""

HEALTH_CHECKS = Table(
    "health_checks",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),  # windows and pruning are by time
    Column("monitor", String(MONITOR_MAX), nullable=False),
    Column("ok", Boolean(), nullable=False),
    Column("detail", String(DETAIL_MAX)),
    Column("latency_ms", Float()),
    PrimaryKeyConstraint("id", name="pk_health_checks"),
)
"""`latency_ms` is how long the health check took; NULL when the answer came from the health cache
(someone else had just asked) and so says nothing about this sample."""
Index("ix_health_checks_monitor_at", HEALTH_CHECKS.c.monitor, HEALTH_CHECKS.c.at)  # each monitor's newest sample

HEALTH_HOURS = Table(
    "health_hours",
    METADATA,
    Column("monitor", String(MONITOR_MAX)),
    Column("hour", BigInteger()),
    Column("samples", Integer(), nullable=False),
    Column("ups", Integer(), nullable=False),
    PrimaryKeyConstraint("monitor", "hour", name="pk_health_hours"),
)
"""Samples and how many were up, per monitor per hour (`hour` counts whole hours since the epoch, UTC),
kept beside the samples as they are stored. A 30-day window is 720 of these per monitor instead of
43,200 samples: the week and month views read them; a day or less reads the samples."""

SUBSCRIPTIONS = Table(
    "alert_subscriptions",
    METADATA,
    Column("number_key", String(64), primary_key=True),
    Column("subscribed", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Who asked for alert texts and who asked to stop; numbers as SHA-256 digests (`bot.sms.privacy.number_key`)."""
