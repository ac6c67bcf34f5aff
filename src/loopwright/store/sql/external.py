"""Repositories of models that live elsewhere: uploaded predictions and record embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, insert, select

from loopwright.store.sql.repositories import Repo, chunks, utcnow
from loopwright.store.sql.tables import item_embeddings, model_predictions


class SqlModelPredictionRepo(Repo):
    def replace(self, model_version_id: int, rows: Mapping[int, Mapping[str, float]]) -> int:
        """Store ``rows`` (item id → probabilities) as the version's uploaded predictions,
        replacing any earlier upload; how many were stored."""
        self._conn.execute(
            delete(model_predictions).where(model_predictions.c.model_version_id == model_version_id)
        )
        now = utcnow()
        values = [
            {"model_version_id": model_version_id, "item_id": i, "probabilities": dict(p), "created_at": now}
            for i, p in rows.items()
        ]
        for part in chunks(values, 1_000):
            self._conn.execute(insert(model_predictions), list(part))
        return len(values)

    def for_model(self, model_version_id: int) -> dict[int, dict[str, float]]:
        stmt = (
            select(model_predictions.c.item_id, model_predictions.c.probabilities)
            .where(model_predictions.c.model_version_id == model_version_id)
            .order_by(model_predictions.c.item_id)
        )
        return {i: dict(p) for i, p in self._conn.execute(stmt)}


class SqlEmbeddingRepo(Repo):
    def add_many(self, project_id: int, vectors: Mapping[int, Sequence[float]]) -> None:
        values = [{"item_id": i, "project_id": project_id, "vector": list(v)} for i, v in vectors.items()]
        for part in chunks(values, 1_000):
            self._conn.execute(insert(item_embeddings), list(part))

    def get_many(self, item_ids: Sequence[int]) -> dict[int, list[float]]:
        """The embeddings of those of ``item_ids`` that have one."""
        found: dict[int, list[float]] = {}
        for part in chunks(list(item_ids)):
            stmt = select(item_embeddings.c.item_id, item_embeddings.c.vector).where(
                item_embeddings.c.item_id.in_(part)
            )
            found.update((i, list(v)) for i, v in self._conn.execute(stmt))
        return found

    def dim(self, project_id: int) -> int | None:
        """The length of the project's embeddings, fixed by the first one stored."""
        stmt = (
            select(item_embeddings.c.vector)
            .where(item_embeddings.c.project_id == project_id)
            .order_by(item_embeddings.c.item_id)
            .limit(1)
        )
        row = self._conn.execute(stmt).first()
        return None if row is None else len(row.vector)

    def of_project(self, project_id: int) -> dict[int, list[float]]:
        stmt = (
            select(item_embeddings.c.item_id, item_embeddings.c.vector)
            .where(item_embeddings.c.project_id == project_id)
            .order_by(item_embeddings.c.item_id)
        )
        return {i: list(v) for i, v in self._conn.execute(stmt)}
