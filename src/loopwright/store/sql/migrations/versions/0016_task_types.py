"""Task types: label columns become Text, so an answer's canonical text fits (a label set as
sorted JSON, a rubric rating, a preference). PostgreSQL alters the columns; SQLite does not
enforce VARCHAR lengths, so there it is a no-op.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("predictions", "label", True),
    ("tasks", "gold_label", True),
    ("annotations", "label", False),
    ("gold_answers", "label", False),
    ("resolutions", "label", False),
    ("dataset_entries", "label", False),
    ("feedback", "correction", True),
    ("machine_labels", "label", True),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=sa.Text(), existing_type=sa.String(200), existing_nullable=nullable
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=sa.String(200), existing_type=sa.Text(), existing_nullable=nullable
        )
