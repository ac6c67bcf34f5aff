"""The suggestion shown: the model's label a lease offered with its task, kept on the lease and
on the annotation made under it (None where nothing was shown: no model, or answered blind).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("leases", "annotations")


def upgrade() -> None:
    label = sa.String(200).with_variant(sa.Text(), "postgresql")
    for table in TABLES:
        op.add_column(table, sa.Column("suggested", label, nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("suggested")
