"""End-user feedback on predictions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, target: str) -> sa.ForeignKeyConstraint:
    table = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_feedback_{column}_{table}")


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("prediction_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("correction", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("task_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        _fk("project_id", "projects.id"),
        _fk("prediction_id", "predictions.id"),
        _fk("item_id", "items.id"),
        _fk("task_id", "tasks.id"),
        sa.UniqueConstraint("project_id", "idempotency_key", name="uq_feedback_project_id_idempotency_key"),
    )
    op.create_index("ix_feedback_item_id", "feedback", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_item_id", table_name="feedback")
    op.drop_table("feedback")
