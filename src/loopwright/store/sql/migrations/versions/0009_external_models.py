"""External models: registered versions (<name>@<tag>, artifact URI, endpoint), their uploaded
predictions on the evaluation split, and the embeddings records carry.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{referred}")


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="builtin"))
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("tag", sa.String(200), nullable=True))
        batch.add_column(sa.Column("artifact_uri", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("endpoint", sa.String(2000), nullable=True))
        batch.create_unique_constraint("uq_model_versions_project_id_name_tag", ["project_id", "name", "tag"])
    op.create_table(
        "model_predictions",
        sa.Column("model_version_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_version_id", "item_id", name="pk_model_predictions"),
        _fk("model_predictions", "model_version_id", "model_versions.id"),
        _fk("model_predictions", "item_id", "items.id"),
    )
    op.create_table(
        "item_embeddings",
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("vector", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_item_embeddings"),
        _fk("item_embeddings", "item_id", "items.id"),
        _fk("item_embeddings", "project_id", "projects.id"),
    )
    op.create_index("ix_item_embeddings_project_id", "item_embeddings", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_item_embeddings_project_id", table_name="item_embeddings")
    op.drop_table("item_embeddings")
    op.drop_table("model_predictions")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint("uq_model_versions_project_id_name_tag", type_="unique")
        for column in ("endpoint", "artifact_uri", "tag", "name", "kind"):
            batch.drop_column(column)
