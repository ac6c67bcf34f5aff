"""Learning repositories: dataset versions with their entries, and numbered model versions."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopwright.domain import DatasetEntry, DatasetVersion, ModelStatus, ModelVersion, Split
from loopwright.errors import Conflict, NotFound
from loopwright.store.sql.plain import CompiledSql
from loopwright.store.sql.repositories import Repo, is_fk_violation, utcnow
from loopwright.store.sql.tables import dataset_entries, dataset_versions, events, model_versions, projects

_MODEL_COLUMNS = [c for c in model_versions.c if c.name != "artifact"]
_ENTRY_COLUMNS = [c for c in dataset_entries.c if c.name not in ("dataset_version_id", "position")]
_CHAMPION = CompiledSql(  # plain SQL on the hot path (see loopwright.store.sql.plain)
    select(*_MODEL_COLUMNS)
    .where(
        model_versions.c.project_id == bindparam("project_id", type_=Integer),
        model_versions.c.status == ModelStatus.CHAMPION.value,
    )
    .order_by(model_versions.c.version.desc())
    .limit(1),
    _MODEL_COLUMNS,
)


def _has_child(version_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """True where some dataset version names ``version_id`` as its parent."""
    child = dataset_versions.alias("child")
    return exists().where(child.c.parent_id == version_id)


def _model(m: Mapping[Any, Any]) -> ModelVersion:
    fields = {k: v for k, v in m.items() if k != "artifact"}
    return ModelVersion(**{**fields, "status": ModelStatus(m["status"])})


class SqlDatasetRepo(Repo):
    def add(self, version: DatasetVersion) -> DatasetVersion:
        """Store a version with its entries; adding an existing id returns the stored one."""
        if self._exists(version.id):
            return self.get(version.id)
        header = {
            "id": version.id,
            "project_id": version.project_id,
            "parent_id": version.parent_id,
            "n_items": version.n_items,
            "label_counts": version.label_counts,
            "created_at": version.created_at,
        }
        rows = [
            {
                "dataset_version_id": version.id,
                "item_id": e.item_id,
                "position": position,
                "item_hash": e.item_hash,
                "label": e.label,
                "source": e.source,
                "resolution_id": e.resolution_id,
                "split": Split(e.split).value,
            }
            for position, e in enumerate(version.entries)
        ]
        try:
            self._insert(
                dataset_versions,
                header,
                conflict=f"dataset version {version.id!r} already exists",
                missing=f"project id {version.project_id} or dataset version {version.parent_id!r}",
            )
        except Conflict:  # a concurrent writer stored it since the check above
            return self.get(version.id)
        try:
            if rows:
                self._conn.execute(insert(dataset_entries), rows)
        except IntegrityError as exc:
            if not is_fk_violation(exc):
                raise
            raise NotFound(
                f"an item or resolution named by the entries of {version.id!r} does not exist"
            ) from exc
        return self.get(version.id)

    def get(self, version_id: str) -> DatasetVersion:
        """The version with its entries in their stored order."""
        stmt = select(dataset_versions).where(dataset_versions.c.id == version_id)
        row = self._one(stmt, f"dataset version {version_id!r}")
        entries = self._conn.execute(
            select(*_ENTRY_COLUMNS)
            .where(dataset_entries.c.dataset_version_id == version_id)
            .order_by(dataset_entries.c.position)
        )
        return DatasetVersion(
            **row._mapping,
            entries=tuple(DatasetEntry(**{**e._mapping, "split": Split(e.split)}) for e in entries),
        )

    def latest(self, project_id: int) -> DatasetVersion | None:
        """The newest version of the project, with entries; None before the first snapshot."""
        stmt = (
            select(dataset_versions.c.id)
            .where(dataset_versions.c.project_id == project_id)
            # two snapshots in the same instant: the newer is the one no version descends from
            .order_by(dataset_versions.c.created_at.desc(), _has_child(dataset_versions.c.id))
            .limit(1)
        )
        version_id = self._conn.execute(stmt).scalar()
        return None if version_id is None else self.get(version_id)

    def list(self, project_id: int) -> builtins.list[DatasetVersion]:
        """The project's versions without entries, oldest first."""
        stmt = (
            select(dataset_versions)
            .where(dataset_versions.c.project_id == project_id)
            .order_by(dataset_versions.c.created_at)
        )
        return [DatasetVersion(**r._mapping) for r in self._conn.execute(stmt)]

    def containing_item(self, item_id: int) -> builtins.list[str]:
        """Ids of the versions that contain ``item_id``, oldest first."""
        stmt = (
            select(dataset_versions.c.id)
            .join(dataset_entries, dataset_entries.c.dataset_version_id == dataset_versions.c.id)
            .where(dataset_entries.c.item_id == item_id)
            .order_by(dataset_versions.c.created_at)
        )
        return list(self._conn.execute(stmt).scalars())

    def ids_with_prefix(self, project_id: int, prefix: str) -> builtins.list[str]:
        """Ids of the project's versions starting with ``prefix`` (lowercase hex only), sorted."""
        prefix = prefix.lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        stmt = (
            select(dataset_versions.c.id)
            .where(dataset_versions.c.project_id == project_id, dataset_versions.c.id.startswith(prefix))
            .order_by(dataset_versions.c.id)
        )
        return list(self._conn.execute(stmt).scalars())

    def _exists(self, version_id: str) -> bool:
        stmt = select(dataset_versions.c.id).where(dataset_versions.c.id == version_id)
        return self._conn.execute(stmt).first() is not None


class SqlModelRepo(Repo):
    def add(
        self,
        project_id: int,
        status: ModelStatus,
        dataset_version_id: str | None,
        config_hash: str,
        seed: int,
        metrics: dict[str, Any],
        artifact: bytes,
    ) -> ModelVersion:
        """Store a model version numbered one past the project's last (1, 2, …)."""
        # Lock the project row (PostgreSQL) so concurrent adds number in turn.
        lock = select(projects.c.id).where(projects.c.id == project_id).with_for_update()
        self._one(lock, f"project id {project_id}")
        last = select(func.max(model_versions.c.version)).where(model_versions.c.project_id == project_id)
        values = {
            "project_id": project_id,
            "version": (self._conn.execute(last).scalar() or 0) + 1,
            "status": ModelStatus(status).value,
            "dataset_version_id": dataset_version_id,
            "config_hash": config_hash,
            "seed": seed,
            "metrics": metrics,
            "gate": None,
            "artifact": artifact,
            "created_at": utcnow(),
            "promoted_at": None,
        }
        row = self._insert(model_versions, values, missing=f"dataset version {dataset_version_id!r}")
        return _model(row._mapping)

    def get(self, project_id: int, version: int) -> ModelVersion:
        stmt = select(*_MODEL_COLUMNS).where(
            model_versions.c.project_id == project_id, model_versions.c.version == version
        )
        return _model(self._one(stmt, f"model version {version} of project id {project_id}")._mapping)

    def get_by_id(self, model_version_id: int) -> ModelVersion:
        stmt = select(*_MODEL_COLUMNS).where(model_versions.c.id == model_version_id)
        return _model(self._one(stmt, f"model version id {model_version_id}")._mapping)

    def champion(self, project_id: int) -> ModelVersion | None:
        """The project's champion (the newest, should there be several); None if there is none."""
        row = _CHAMPION.first(self._conn, {"project_id": project_id})  # every blind `next` asks
        return None if row is None else _model(row)

    def artifact(self, model_version_id: int) -> bytes:
        stmt = select(model_versions.c.artifact).where(model_versions.c.id == model_version_id)
        return bytes(self._one(stmt, f"model version id {model_version_id}").artifact)

    def set_status(
        self, model_version_id: int, status: ModelStatus, promoted_at: datetime | None = None
    ) -> ModelVersion:
        """Change the status; ``promoted_at`` is written only when given (a retired model keeps it)."""
        values: dict[str, Any] = {"status": ModelStatus(status).value}
        if promoted_at is not None:
            values["promoted_at"] = promoted_at
        return self._update(model_version_id, values)

    def set_gate(self, model_version_id: int, gate: dict[str, Any]) -> ModelVersion:
        return self._update(model_version_id, {"gate": gate})

    def list(self, project_id: int) -> builtins.list[ModelVersion]:
        stmt = (
            select(*_MODEL_COLUMNS)
            .where(model_versions.c.project_id == project_id)
            .order_by(model_versions.c.version)
        )
        return [_model(r._mapping) for r in self._conn.execute(stmt)]

    def register(
        self,
        project_id: int,
        name: str,
        tag: str,
        dataset_version_id: str | None,
        artifact_uri: str | None,
        endpoint: str | None,
        metrics: dict[str, Any],
    ) -> ModelVersion:
        """A candidate version of a model that lives elsewhere, named ``name@tag``; Conflict if
        the project has that name already."""
        if self.by_ref(project_id, name, tag) is not None:
            raise Conflict(f"model {name}@{tag} is registered already")
        version = self.add(project_id, ModelStatus.CANDIDATE, dataset_version_id, "external", 0, metrics, b"")
        values = {"kind": "external", "name": name, "tag": tag, "artifact_uri": artifact_uri}
        return self._update(version.id, {**values, "endpoint": endpoint})

    def by_ref(self, project_id: int, name: str, tag: str) -> ModelVersion | None:
        stmt = select(*_MODEL_COLUMNS).where(
            model_versions.c.project_id == project_id,
            model_versions.c.name == name,
            model_versions.c.tag == tag,
        )
        row = self._conn.execute(stmt).first()
        return None if row is None else _model(row._mapping)

    def champion_log(self, project_id: int) -> builtins.list[tuple[str, int]]:
        """``(action, version)`` of the project's promotion and rollback events, oldest first."""
        stmt = (
            select(events.c.action, events.c.subject_id)
            .where(
                events.c.project_id == project_id,
                events.c.action.in_(("model.promoted", "model.rolled_back")),
                events.c.subject_type == "model_version",
            )
            .order_by(events.c.id)
        )
        return [(a, int(v)) for a, v in self._conn.execute(stmt)]

    def _update(self, model_version_id: int, values: dict[str, Any]) -> ModelVersion:
        stmt = (
            update(model_versions)
            .where(model_versions.c.id == model_version_id)
            .values(values)
            .returning(*_MODEL_COLUMNS)
        )
        return _model(self._one(stmt, f"model version id {model_version_id}")._mapping)
