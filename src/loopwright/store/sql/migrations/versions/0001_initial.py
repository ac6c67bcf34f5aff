"""Initial schema: the whole loop, from projects to events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, nullable=False, autoincrement=True)


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", TS, nullable=False)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*(columns or ("id",)), name=f"pk_{table}")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    target_table = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{target_table}")


def upgrade() -> None:
    op.create_table(
        "projects",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        _created(),
        _pk("projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "items",
        _id(),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        _created(),
        _pk("items"),
        _fk("items", "project_id", "projects.id"),
        sa.UniqueConstraint("project_id", "external_id", name="uq_items_project_id_external_id"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("label_counts", sa.JSON, nullable=False),
        _created(),
        _pk("dataset_versions"),
        _fk("dataset_versions", "project_id", "projects.id"),
        _fk("dataset_versions", "parent_id", "dataset_versions.id"),
    )
    op.create_index("ix_dataset_versions_project_id", "dataset_versions", ["project_id"])
    op.create_table(
        "model_versions",
        _id(),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset_version_id", sa.String(64), nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("gate", sa.JSON, nullable=True),
        sa.Column("artifact", sa.LargeBinary, nullable=False),
        _created(),
        sa.Column("promoted_at", TS, nullable=True),
        _pk("model_versions"),
        _fk("model_versions", "project_id", "projects.id"),
        _fk("model_versions", "dataset_version_id", "dataset_versions.id"),
        sa.UniqueConstraint("project_id", "version", name="uq_model_versions_project_id_version"),
    )
    op.create_table(
        "predictions",
        _id(),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("model_version_id", sa.Integer, nullable=True),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _created(),
        _pk("predictions"),
        _fk("predictions", "item_id", "items.id"),
        _fk("predictions", "model_version_id", "model_versions.id"),
    )
    op.create_index("ix_predictions_item_id", "predictions", ["item_id"])
    op.create_table(
        "decisions",
        _id(),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("prediction_id", sa.Integer, nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("tier", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("audit", sa.Boolean, nullable=False),
        sa.Column("threshold", sa.Float, nullable=True),
        _created(),
        _pk("decisions"),
        _fk("decisions", "item_id", "items.id"),
        _fk("decisions", "prediction_id", "predictions.id"),
    )
    op.create_index("ix_decisions_item_id", "decisions", ["item_id"])
    op.create_table(
        "tasks",
        _id(),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("decision_id", sa.Integer, nullable=True),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("required_annotations", sa.Integer, nullable=False),
        sa.Column("parent_task_id", sa.Integer, nullable=True),
        _created(),
        sa.Column("closed_at", TS, nullable=True),
        _pk("tasks"),
        _fk("tasks", "project_id", "projects.id"),
        _fk("tasks", "item_id", "items.id"),
        _fk("tasks", "decision_id", "decisions.id"),
        _fk("tasks", "parent_task_id", "tasks.id"),
    )
    op.create_index(
        "ix_tasks_project_id_status_tier_priority",
        "tasks",
        ["project_id", "status", "tier", "priority"],
    )
    op.create_index("ix_tasks_item_id", "tasks", ["item_id"])
    op.create_table(
        "leases",
        _id(),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        _created(),
        _pk("leases"),
        _fk("leases", "task_id", "tasks.id"),
    )
    op.create_index("ix_leases_task_id_status", "leases", ["task_id", "status"])
    op.create_table(
        "annotations",
        _id(),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("lease_id", sa.Integer, nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("unsure", sa.Boolean, nullable=False),
        _created(),
        _pk("annotations"),
        _fk("annotations", "task_id", "tasks.id"),
        _fk("annotations", "item_id", "items.id"),
        _fk("annotations", "lease_id", "leases.id"),
        sa.UniqueConstraint("task_id", "annotator", name="uq_annotations_task_id_annotator"),
    )
    op.create_index("ix_annotations_item_id", "annotations", ["item_id"])
    op.create_table(
        "resolutions",
        _id(),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("agreement", sa.Float, nullable=False),
        sa.Column("n_annotations", sa.Integer, nullable=False),
        _created(),
        _pk("resolutions"),
        _fk("resolutions", "item_id", "items.id"),
        _fk("resolutions", "task_id", "tasks.id"),
    )
    op.create_index("ix_resolutions_item_id", "resolutions", ["item_id"])
    op.create_table(
        "dataset_entries",
        sa.Column("dataset_version_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("item_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("resolution_id", sa.Integer, nullable=True),
        sa.Column("split", sa.String(8), nullable=False),
        _pk("dataset_entries", "dataset_version_id", "item_id"),
        _fk("dataset_entries", "dataset_version_id", "dataset_versions.id"),
        _fk("dataset_entries", "item_id", "items.id"),
        _fk("dataset_entries", "resolution_id", "resolutions.id"),
    )
    op.create_index("ix_dataset_entries_item_id", "dataset_entries", ["item_id"])
    op.create_table(
        "events",
        _id(),
        sa.Column("project_id", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject_type", sa.String(50), nullable=False),
        sa.Column("subject_id", sa.String(100), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("at", TS, nullable=False),
        _pk("events"),
        _fk("events", "project_id", "projects.id"),
    )
    op.create_index("ix_events_project_id_id", "events", ["project_id", "id"])


def downgrade() -> None:
    for table in (
        "events",
        "dataset_entries",
        "resolutions",
        "annotations",
        "leases",
        "tasks",
        "decisions",
        "predictions",
        "model_versions",
        "dataset_versions",
        "items",
        "projects",
    ):
        op.drop_table(table)
