"""Broker: a cursor per event sink over the event log (the outbox), leased by one publisher.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_cursors",
        sa.Column("sink", sa.String(200), nullable=False),
        sa.Column("last_event_id", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", name="pk_event_cursors"),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
