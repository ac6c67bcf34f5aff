"""Model annotators: the answers of LLM judges and model versions, kept apart from human
annotations (they never count toward a task's required annotations).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, target: str) -> sa.ForeignKeyConstraint:
    table = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_machine_labels_{column}_{table}")


def upgrade() -> None:
    op.create_table(
        "machine_labels",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("task_id", sa.Integer, nullable=True),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_machine_labels"),
        _fk("project_id", "projects.id"),
        _fk("item_id", "items.id"),
        _fk("task_id", "tasks.id"),
    )
    op.create_index("ix_machine_labels_item_id", "machine_labels", ["item_id"])
    op.create_index("ix_machine_labels_project_id_status", "machine_labels", ["project_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_machine_labels_project_id_status", table_name="machine_labels")
    op.drop_index("ix_machine_labels_item_id", table_name="machine_labels")
    op.drop_table("machine_labels")
