"""Annotator stats: per (project, annotator) work count and gold fold, read by every claim.

Rows are built from the annotations and gold answers the first time they are read (and after
an erasure), then kept in step with each write, so no backfill is needed here.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "annotator_stats",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("work", sa.Integer(), nullable=False),
        sa.Column("gold", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "annotator", name="pk_annotator_stats"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_annotator_stats_project_id_projects"
        ),
    )


def downgrade() -> None:
    op.drop_table("annotator_stats")
