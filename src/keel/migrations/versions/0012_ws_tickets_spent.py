"""ws_tickets_spent: the single-use ledger of WebSocket tickets without Redis

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ws_tickets_spent",
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ws_tickets_spent")),
    )
    op.create_index(op.f("ix_ws_tickets_spent_expires_at"), "ws_tickets_spent", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ws_tickets_spent_expires_at"), table_name="ws_tickets_spent")
    op.drop_table("ws_tickets_spent")
