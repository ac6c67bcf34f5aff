"""An index on annotation time: the certificate's staleness check asks whether an audited item was
answered since the certificate (an answer that asks for another leaves no resolution behind).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_annotations_created_at", "annotations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_annotations_created_at", table_name="annotations")
