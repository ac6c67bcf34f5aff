"""Scaling: indexes on lease expiry (the lease sweep), resolution time and event kind (certificate
staleness without a scan).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_leases_status_expires_at", "leases", ["status", "expires_at"])
    op.create_index("ix_resolutions_created_at", "resolutions", ["created_at"])
    op.create_index("ix_events_project_id_action_id", "events", ["project_id", "action", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_project_id_action_id", table_name="events")
    op.drop_index("ix_resolutions_created_at", table_name="resolutions")
    op.drop_index("ix_leases_status_expires_at", table_name="leases")
