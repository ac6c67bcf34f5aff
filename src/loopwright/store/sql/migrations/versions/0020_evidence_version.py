"""The version of each project's audit evidence, and the version each certificate counted: the
staleness check compares the two instead of looking for evidence newer than the certificate,
which missed a write stamped before the certificate but committed after it read.

No backfill: a project without a row is at version 0, and a certificate without a version is
recounted once. The indexes on answer and resolution time served only the old check (0012, 0019).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_evidence",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_audit_evidence"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_audit_evidence_project_id_projects"
        ),
    )
    op.add_column("certifications", sa.Column("evidence_version", sa.Integer(), nullable=True))
    op.drop_index("ix_annotations_created_at", table_name="annotations")
    op.drop_index("ix_resolutions_created_at", table_name="resolutions")


def downgrade() -> None:
    op.create_index("ix_resolutions_created_at", "resolutions", ["created_at"])
    op.create_index("ix_annotations_created_at", "annotations", ["created_at"])
    with op.batch_alter_table("certifications") as batch:
        batch.drop_column("evidence_version")
    op.drop_table("audit_evidence")
