"""Claims in index order: a count of annotations on each task, and an index in claim order.

``tasks.n_annotations`` is kept by ``SqlAnnotationRepo.add``; the index
(project_id, status, priority DESC, n_annotations DESC, id) lets the claim walk open tasks in
its order and stop at the first claimable one, instead of sorting every open task.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("n_annotations", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE tasks SET n_annotations ="
        " (SELECT count(*) FROM annotations WHERE annotations.task_id = tasks.id)"
    )
    op.create_index(
        "ix_tasks_claim_order",
        "tasks",
        ["project_id", "status", sa.text("priority DESC"), sa.text("n_annotations DESC"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_claim_order", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("n_annotations")
