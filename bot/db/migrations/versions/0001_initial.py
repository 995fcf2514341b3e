"""Audit history and alert subscriptions, as create_all made them before migrations.

The same tables, columns, primary keys, check and indexes (by the same names) as `create_all` made from
the models before migrations existed, so that a database from then can be adopted by stamping it here.

Written by hand and frozen: it must keep creating these tables as they were, whatever the models in
`bot.db.history` and `bot.db.subscriptions` become; later changes are later revisions.

Revision ID: 0001
Revises:
Create Date: 2024-05-20 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def message_history() -> list[SchemaItem]:
    """`bot.db.history.MESSAGES`: times as timestamptz (naive UTC on SQLite), the number already masked."""
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(32), nullable=True),
        sa.Column("command", sa.String(200), nullable=True),
        sa.Column("source", sa.String(32), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_message_history"),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_message_history_direction"),
        sa.Index("ix_message_history_at", "at"),
        sa.Index("ix_message_history_message_sid", "message_sid"),
    ]


def alert_subscriptions() -> list[SchemaItem]:
    """`bot.db.subscriptions.SUBSCRIPTIONS`: numbers as SHA-256 digests. Its primary key has no name
    of ours because its metadata has no naming convention (PostgreSQL calls it `alert_subscriptions_pkey`)."""
    return [
        sa.Column("number_key", sa.String(64), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number_key"),
    ]


TABLES = {"message_history": message_history, "alert_subscriptions": alert_subscriptions}


def schema() -> sa.MetaData:
    """The tables as this revision makes them, for `bot.db.migrate` to compare a pre-migration database with."""
    metadata = sa.MetaData()
    for name, items in TABLES.items():
        sa.Table(name, metadata, *items())
    return metadata


def upgrade() -> None:
    op.create_table("message_history", *message_history())
    op.create_table("alert_subscriptions", *alert_subscriptions())


def downgrade() -> None:
    op.drop_table("alert_subscriptions")
    op.drop_table("message_history")  # its indexes go with it
