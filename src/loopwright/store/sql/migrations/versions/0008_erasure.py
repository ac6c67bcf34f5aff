"""Erasure: a salt per project, tombstones of erased items, and the dataset versions that held them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{referred}")


def upgrade() -> None:
    op.create_table(
        "erasure_salts",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_erasure_salts"),
        _fk("erasure_salts", "project_id", "projects.id"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erasures"),
        _fk("erasures", "project_id", "projects.id"),
    )
    op.create_index("ix_erasures_project_id_subject_hash", "erasures", ["project_id", "subject_hash"])
    op.create_table(
        "erased_entries",
        sa.Column("erasure_id", sa.Integer, nullable=False),
        sa.Column("dataset_version_id", sa.String(64), nullable=False),
        sa.Column("split", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("erasure_id", "dataset_version_id", name="pk_erased_entries"),
        _fk("erased_entries", "erasure_id", "erasures.id"),
        _fk("erased_entries", "dataset_version_id", "dataset_versions.id"),
    )
    op.create_index("ix_erased_entries_dataset_version_id", "erased_entries", ["dataset_version_id"])


def downgrade() -> None:
    op.drop_index("ix_erased_entries_dataset_version_id", table_name="erased_entries")
    op.drop_table("erased_entries")
    op.drop_index("ix_erasures_project_id_subject_hash", table_name="erasures")
    op.drop_table("erasures")
    op.drop_table("erasure_salts")
