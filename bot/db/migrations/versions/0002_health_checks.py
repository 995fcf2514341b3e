"""Backend health history for the dashboard (`bot.db.health_log.HEALTH_CHECKS` and `HEALTH_HOURS`).

Written by hand and frozen, like 0001: it must keep creating the table as it was at this revision,
whatever the model becomes; later changes are later revisions.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_checks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("monitor", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_health_checks"),
    )
    op.create_index("ix_health_checks_at", "health_checks", ["at"])
    op.create_index("ix_health_checks_monitor_at", "health_checks", ["monitor", "at"])
    op.create_table(
        "health_hours",
        sa.Column("monitor", sa.String(64), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("ups", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("monitor", "hour", name="pk_health_hours"),
    )


def downgrade() -> None:
    op.drop_table("health_hours")
    op.drop_table("health_checks")  # its indexes go with it
