"""Review policy: gold tasks and answers, skipped leases, work sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _fk(column: str, target: str) -> sa.ForeignKeyConstraint:
    table = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_gold_answers_{column}_{table}")


def upgrade() -> None:
    op.add_column("tasks", sa.Column("gold_label", sa.String(200), nullable=True))
    op.add_column("leases", sa.Column("session_id", sa.String(200), nullable=True))
    op.create_index("ix_leases_annotator_status", "leases", ["annotator", "status"])
    op.create_index("ix_annotations_annotator_created_at", "annotations", ["annotator", "created_at"])
    op.create_table(
        "gold_answers",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("lease_id", sa.Integer, nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gold_answers"),
        _fk("task_id", "tasks.id"),
        _fk("item_id", "items.id"),
        _fk("lease_id", "leases.id"),
        sa.UniqueConstraint("task_id", "annotator", name="uq_gold_answers_task_id_annotator"),
    )
    op.create_index("ix_gold_answers_annotator_created_at", "gold_answers", ["annotator", "created_at"])
    op.create_index("ix_gold_answers_item_id", "gold_answers", ["item_id"])


def downgrade() -> None:
    op.drop_table("gold_answers")
    op.drop_index("ix_annotations_annotator_created_at", "annotations")
    op.drop_index("ix_leases_annotator_status", "leases")
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("session_id")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("gold_label")
