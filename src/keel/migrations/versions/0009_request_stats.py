"""request_stats: per-minute and per-hour request statistics

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_stats",
        sa.Column("resolution", sa.SmallInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("errors_4xx", sa.Integer(), nullable=False),
        sa.Column("errors_5xx", sa.Integer(), nullable=False),
        sa.Column("sketch", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(
            "resolution", "period_start", "method", "route", "source", name=op.f("pk_request_stats")
        ),
    )


def downgrade() -> None:
    op.drop_table("request_stats")
