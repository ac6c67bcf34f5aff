"""Near-duplicates: MinHash LSH and perceptual-hash band keys → item, so a lookup costs O(batch).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "duplicate_keys",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("band_key", sa.String(48), nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "band_key", "item_id", name="pk_duplicate_keys"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_duplicate_keys_project_id_projects"
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_duplicate_keys_item_id_items"),
    )
    op.create_index("ix_duplicate_keys_item_id", "duplicate_keys", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_duplicate_keys_item_id", table_name="duplicate_keys")
    op.drop_table("duplicate_keys")
