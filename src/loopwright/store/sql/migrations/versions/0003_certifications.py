"""Certified auto-accept thresholds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certifications",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("model_version_id", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("n_evidence", sa.Integer, nullable=False),
        sa.Column("n_errors", sa.Integer, nullable=False),
        sa.Column("upper_bound", sa.Float, nullable=False),
        sa.Column("n_audited", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_certifications"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_certifications_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_certifications_model_version_id_model_versions",
        ),
    )
    op.create_index("ix_certifications_project_id_id", "certifications", ["project_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_certifications_project_id_id", table_name="certifications")
    op.drop_table("certifications")
