"""Repositories over one connection: the shared base, and the catalogue of items and their history.

Every repository maps rows to the frozen dataclasses of :mod:`loopwright.domain`. Review
(tasks, leases, annotations) lives in :mod:`.review`; datasets and models in :mod:`.learning`.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Executable, Row, Table, func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from loopwright.domain import (
    Certification,
    Decision,
    Event,
    Feedback,
    FeedbackKind,
    Item,
    Prediction,
    Project,
    Resolution,
    Route,
)
from loopwright.errors import Conflict, NotFound
from loopwright.store.sql import bulk
from loopwright.store.sql import statements as hot  # plain SQL for what every request runs
from loopwright.store.sql.tables import (
    audit_evidence,
    certifications,
    decisions,
    events,
    feedback,
    items,
    predictions,
    projects,
    resolutions,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql as pg

T = TypeVar("T")
CHUNK = 5_000  # ids per IN (...) list, well under SQLite's bound-parameter limit


def utcnow() -> datetime:
    return datetime.now(UTC)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def is_fk_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23503" or "FOREIGN KEY constraint" in str(orig)


@dataclass
class EvidenceMarks:
    """What one unit of work changed of the audit evidence: projects whose evidence changed (an
    audited item answered, a drift alarm, an erasure), and items resolved that may have been
    audited (looked up at the end, unless an answer already told).

    Each project's evidence has a version (``audit_evidence``, 0020) that every transaction
    changing what a certificate counts moves. A certificate keeps the version it read before it
    read the evidence; another version now means it may be stale. A look-up by time cannot promise
    that: a write stamped before the certificate but committed after its read (PostgreSQL, two
    hosts) was never counted and never looked newer. Writers only mark what they touched; the unit
    of work moves the version as its last statement (:meth:`SqlCertificationRepo.move_evidence`),
    so the version's row is the last lock a transaction takes and cannot close a deadlock cycle."""

    projects: set[int] = field(default_factory=set)
    items: set[int] = field(default_factory=set)
    checked: set[int] = field(default_factory=set)  # items whose audit is known in this transaction

    def known(self, item_id: int, audited_project: int | None) -> None:
        """An answer on ``item_id``, whose statement read whether it was audited (its project if so)."""
        self.checked.add(item_id)
        self.items.discard(item_id)
        if audited_project is not None:
            self.projects.add(audited_project)

    def resolved(self, item_id: int) -> None:
        if item_id not in self.checked:
            self.items.add(item_id)


class Repo:
    """Base of the repositories: one connection, already inside the unit of work's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _one(self, stmt: Executable, missing: str) -> Row[Any]:
        """The first row of ``stmt``; NotFound("<missing> does not exist") when there is none."""
        row = self._conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"{missing} does not exist")
        return row

    def _insert(
        self, table: Table, values: Mapping[str, Any], *, conflict: str = "", missing: str = ""
    ) -> Row[Any]:
        """Insert one row and return it as stored.

        With ``conflict``, a unique clash writes nothing (``ON CONFLICT DO NOTHING``) and raises
        Conflict(conflict); the transaction stays usable. A dangling foreign key raises
        NotFound("<missing> does not exist"); on PostgreSQL the transaction is then aborted.
        """
        stmt = self._upsertable(table).values(values)
        if conflict:
            stmt = stmt.on_conflict_do_nothing()
        try:
            row = self._conn.execute(stmt.returning(*table.c)).first()
        except IntegrityError as exc:
            if missing and is_fk_violation(exc):
                raise NotFound(f"{missing} does not exist") from exc
            raise
        if row is None:
            raise Conflict(conflict)
        return row

    def _insert_many(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        key: str,
        *,
        conflict: str = "",
        missing: str = "",
    ) -> builtins.list[int]:
        """Insert ``rows`` in a few multi-row statements; their new ids, in the order given.

        ``key`` is a column unique among ``rows`` that maps each returned id back to its row
        (multi-row RETURNING does not promise an order on SQLite). A unique clash raises
        Conflict(conflict), a dangling foreign key NotFound(missing); the caller's transaction
        must then be rolled back (nothing of it is kept)."""
        if not rows:
            return []
        try:
            ids = bulk.insert_many(self._conn, table, rows, key)  # a few statements, plain SQL
            return [ids[r[key]] for r in rows]
        except IntegrityError as exc:
            if missing and is_fk_violation(exc):
                raise NotFound(f"{missing} does not exist") from exc
            if conflict:
                raise Conflict(conflict) from exc
            raise

    def _upsertable(self, table: Table) -> pg.Insert | sqlite.Insert:
        """An INSERT of the connection's dialect, which offers ``on_conflict_do_nothing``."""
        if self._conn.dialect.name != "postgresql":
            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql  # loaded with the engine on PostgreSQL only

        return postgresql.insert(table)


def _decision(m: Mapping[Any, Any]) -> Decision:
    return Decision(**{**m, "route": Route(m["route"])})


class SqlProjectRepo(Repo):
    def add(self, name: str, config: dict[str, Any]) -> Project:
        values = {"name": name, "config": config, "created_at": utcnow()}
        row = self._insert(projects, values, conflict=f"project {name!r} already exists")
        return Project(**row._mapping)

    def get(self, name: str) -> Project:
        stmt = select(projects).where(projects.c.name == name)
        return Project(**self._one(stmt, f"project {name!r}")._mapping)

    def get_by_id(self, project_id: int) -> Project:
        stmt = select(projects).where(projects.c.id == project_id)
        return Project(**self._one(stmt, f"project id {project_id}")._mapping)

    def list(self) -> builtins.list[Project]:
        rows = self._conn.execute(select(projects).order_by(projects.c.id))
        return [Project(**r._mapping) for r in rows]

    def set_config(self, project_id: int, config: dict[str, Any]) -> None:
        """Replace a project's stored config (the edit pages: guidelines, tiers, leaderboard)."""
        self._conn.execute(update(projects).where(projects.c.id == project_id).values(config=config))


class SqlItemRepo(Repo):
    def add(
        self,
        project_id: int,
        external_id: str,
        content_hash: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> Item:
        values = {
            "project_id": project_id,
            "external_id": external_id,
            "content_hash": content_hash,
            "payload": payload,
            "metadata": metadata,
            "created_at": utcnow(),
        }
        row = self._insert(
            items,
            values,
            conflict=f"item {external_id!r} already exists in project {project_id}",
            missing=f"project id {project_id}",
        )
        return Item(**row._mapping)

    def add_many(
        self, project_id: int, rows: Sequence[tuple[str, str, dict[str, Any], dict[str, Any]]]
    ) -> builtins.list[int]:
        """Items ``(external_id, content_hash, payload, metadata)`` in bulk; their ids in order."""
        now = utcnow()
        values = [
            {
                "project_id": project_id,
                "external_id": e,
                "content_hash": h,
                "payload": p,
                "metadata": m,
                "created_at": now,
            }
            for e, h, p, m in rows
        ]
        clash = f"an item of this batch was ingested into project {project_id} meanwhile; retry"
        return self._insert_many(
            items, values, "external_id", conflict=clash, missing=f"project id {project_id}"
        )

    def get(self, item_id: int) -> Item:
        row = hot.ITEM_GET.first(self._conn, {"id": item_id})
        if row is None:
            raise NotFound(f"item id {item_id} does not exist")
        return Item(**row)

    def get_many(self, item_ids: Sequence[int]) -> list[Item]:
        """The items in the order asked; NotFound naming the ids that do not exist."""
        found: dict[int, Item] = {}
        for part in chunks(list(dict.fromkeys(item_ids))):
            rows = self._conn.execute(select(items).where(items.c.id.in_(part)))
            found.update((r.id, Item(**r._mapping)) for r in rows)
        missing = [i for i in item_ids if i not in found]
        if missing:
            raise NotFound(f"item ids {missing[:10]} do not exist")
        return [found[i] for i in item_ids]

    def by_external_ids(self, project_id: int, external_ids: Sequence[str]) -> dict[str, Item]:
        """The items of ``project_id`` among ``external_ids``, keyed by external id; absent ones left out."""
        found: dict[str, Item] = {}
        for part in chunks(list(dict.fromkeys(external_ids))):
            rows = bulk.items_by_external_id(self._conn, project_id, part)
            found.update((r["external_id"], Item(**r)) for r in rows)
        return found

    def count(self, project_id: int) -> int:
        stmt = select(func.count()).select_from(items).where(items.c.project_id == project_id)
        return self._conn.execute(stmt).scalar_one()

    def recent(self, project_id: int, limit: int, before: int | None = None) -> builtins.list[Item]:
        """The project's newest ``limit`` items (with id < ``before``, when given), oldest first."""
        stmt = select(items).where(items.c.project_id == project_id).order_by(items.c.id.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(items.c.id < before)
        return [Item(**r._mapping) for r in reversed(self._conn.execute(stmt).all())]


class SqlPredictionRepo(Repo):
    def add(
        self,
        item_id: int,
        model_version_id: int | None,
        probabilities: dict[str, float],
        label: str | None,
        confidence: float | None,
        error: str | None,
    ) -> Prediction:
        values = {
            "item_id": item_id,
            "model_version_id": model_version_id,
            "probabilities": probabilities,
            "label": label,
            "confidence": confidence,
            "error": error,
            "created_at": utcnow(),
        }
        missing = f"item id {item_id} or model version id {model_version_id}"
        return Prediction(**self._insert(predictions, values, missing=missing)._mapping)

    def add_many(
        self,
        rows: Sequence[tuple[int, int | None, dict[str, float], str | None, float | None, str | None]],
    ) -> builtins.list[int]:
        """Predictions ``(item_id, model_version_id, probabilities, label, confidence, error)`` in
        bulk; their ids in order."""
        now = utcnow()
        keys = ("item_id", "model_version_id", "probabilities", "label", "confidence", "error")
        values = [{**dict(zip(keys, r, strict=True)), "created_at": now} for r in rows]
        return self._insert_many(predictions, values, "item_id", missing="an item or model version")

    def get(self, prediction_id: int) -> Prediction:
        stmt = select(predictions).where(predictions.c.id == prediction_id)
        return Prediction(**self._one(stmt, f"prediction id {prediction_id}")._mapping)

    def for_item(self, item_id: int) -> list[Prediction]:
        return [Prediction(**r) for r in hot.PREDICTIONS_OF_ITEM.rows(self._conn, {"item_id": item_id})]

    def by_model(self, model_version_id: int, item_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """The newest probabilities ``model_version_id`` gave each of ``item_ids`` at ingest."""
        found: dict[int, dict[str, float]] = {}
        for part in chunks(list(item_ids)):
            stmt = (
                select(predictions.c.item_id, predictions.c.probabilities)
                .where(predictions.c.model_version_id == model_version_id, predictions.c.item_id.in_(part))
                .order_by(predictions.c.id)
            )
            found.update((i, dict(p)) for i, p in self._conn.execute(stmt) if p)
        return found

    def latest_labels(self, project_id: int) -> dict[int, str]:
        """Each item's newest predicted label (items whose model failed are left out)."""
        stmt = (
            select(predictions.c.item_id, predictions.c.label)
            .join(items, items.c.id == predictions.c.item_id)
            .where(items.c.project_id == project_id, predictions.c.label.is_not(None))
            .order_by(predictions.c.id)
        )
        return {item_id: label for item_id, label in self._conn.execute(stmt)}


class SqlDecisionRepo(Repo):
    def add(
        self,
        item_id: int,
        prediction_id: int,
        route: Route,
        tier: int | None,
        reason: str,
        audit: bool,
        threshold: float | None,
    ) -> Decision:
        values = {
            "item_id": item_id,
            "prediction_id": prediction_id,
            "route": Route(route).value,
            "tier": tier,
            "reason": reason,
            "audit": audit,
            "threshold": threshold,
            "created_at": utcnow(),
        }
        missing = f"item id {item_id} or prediction id {prediction_id}"
        return _decision(self._insert(decisions, values, missing=missing)._mapping)

    def add_many(
        self, rows: Sequence[tuple[int, int, Route, int | None, str, bool, float | None]]
    ) -> builtins.list[int]:
        """Decisions ``(item_id, prediction_id, route, tier, reason, audit, threshold)`` in bulk;
        their ids in order."""
        now = utcnow()
        keys = ("item_id", "prediction_id", "route", "tier", "reason", "audit", "threshold")
        values = [
            {**dict(zip(keys, r, strict=True)), "route": Route(r[2]).value, "created_at": now} for r in rows
        ]
        return self._insert_many(decisions, values, "item_id", missing="an item or prediction")

    def for_item(self, item_id: int) -> list[Decision]:
        stmt = select(decisions).where(decisions.c.item_id == item_id).order_by(decisions.c.id)
        return [_decision(r._mapping) for r in self._conn.execute(stmt)]

    def auto_accepted(self, project_id: int) -> list[tuple[Decision, Prediction]]:
        """Auto-accepted decisions of the project with their predictions, oldest first."""
        stmt = (
            select(*decisions.c, *predictions.c)
            .join(predictions, predictions.c.id == decisions.c.prediction_id)
            .join(items, items.c.id == decisions.c.item_id)
            .where(items.c.project_id == project_id, decisions.c.route == Route.AUTO_ACCEPT.value)
            .order_by(decisions.c.id)
        )
        n = len(decisions.c)
        return [
            (
                _decision(dict(zip(decisions.c.keys(), row[:n], strict=True))),
                Prediction(**dict(zip(predictions.c.keys(), row[n:], strict=True))),
            )
            for row in self._conn.execute(stmt)
        ]

    def audited_items(self, project_id: int) -> list[int]:
        """Ids of the project's items drawn into the audit sample, oldest first."""
        stmt = (
            select(decisions.c.item_id)
            .join(items, items.c.id == decisions.c.item_id)
            .where(items.c.project_id == project_id, decisions.c.audit.is_(True))
            .order_by(decisions.c.id)
        )
        return list(dict.fromkeys(self._conn.execute(stmt).scalars()))

    def count_by_route(self, project_id: int) -> dict[str, int]:
        stmt = (
            select(decisions.c.route, func.count())
            .join(items, items.c.id == decisions.c.item_id)
            .where(items.c.project_id == project_id)
            .group_by(decisions.c.route)
        )
        return {route: n for route, n in self._conn.execute(stmt)}

    def count_items(self, project_id: int, since_item_id: int = 0, audited: bool = False) -> int:
        """Items with id ≥ ``since_item_id`` that have a decision (an audit draw when ``audited``),
        counted in the database."""
        stmt = (
            select(func.count(func.distinct(decisions.c.item_id)))
            .join(items, items.c.id == decisions.c.item_id)
            .where(items.c.project_id == project_id, decisions.c.item_id >= since_item_id)
        )
        if audited:
            stmt = stmt.where(decisions.c.audit.is_(True))
        return int(self._conn.execute(stmt).scalar_one())

    def timeline(self, project_id: int) -> list[tuple[datetime, str, str]]:
        """``(created_at, route, reason)`` of every decision of the project, oldest first."""
        stmt = (
            select(decisions.c.created_at, decisions.c.route, decisions.c.reason)
            .join(items, items.c.id == decisions.c.item_id)
            .where(items.c.project_id == project_id)
            .order_by(decisions.c.id)
        )
        return [(at, route, reason) for at, route, reason in self._conn.execute(stmt)]


class SqlResolutionRepo(Repo):
    def __init__(self, conn: Connection, marks: EvidenceMarks) -> None:
        super().__init__(conn)
        self._marks = marks

    def add(
        self,
        item_id: int,
        task_id: int,
        label: str,
        method: str,
        agreement: float,
        n_annotations: int,
    ) -> Resolution:
        values = {
            "item_id": item_id,
            "task_id": task_id,
            "label": label,
            "method": method,
            "agreement": agreement,
            "n_annotations": n_annotations,
            "created_at": utcnow(),
        }
        try:
            row = hot.RESOLUTION_ADD.first(self._conn, values)
        except IntegrityError as exc:
            if is_fk_violation(exc):
                raise NotFound(f"item id {item_id} or task id {task_id} does not exist") from exc
            raise
        assert row is not None
        self._marks.resolved(item_id)
        return Resolution(**row)

    def latest_by_item(self, project_id: int) -> dict[int, Resolution]:
        """The newest resolution of each item of the project, keyed by item id."""
        latest = (
            select(func.max(resolutions.c.id))
            .join(items, items.c.id == resolutions.c.item_id)
            .where(items.c.project_id == project_id)
            .group_by(resolutions.c.item_id)
        )
        stmt = select(resolutions).where(resolutions.c.id.in_(latest)).order_by(resolutions.c.id)
        return {r.item_id: Resolution(**r._mapping) for r in self._conn.execute(stmt)}

    def for_item(self, item_id: int) -> list[Resolution]:
        stmt = select(resolutions).where(resolutions.c.item_id == item_id).order_by(resolutions.c.id)
        return [Resolution(**r._mapping) for r in self._conn.execute(stmt)]

    def recent_by_item(self, project_id: int, limit: int) -> dict[int, Resolution]:
        """The newest resolution of each item among the project's ``limit`` newest resolutions,
        keyed by item id, oldest first: a bounded sample whatever the project's size."""
        stmt = (
            select(resolutions)
            .join(items, items.c.id == resolutions.c.item_id)
            .where(items.c.project_id == project_id)
            .order_by(resolutions.c.id.desc())
            .limit(limit)
        )
        newest: dict[int, Resolution] = {}
        for r in self._conn.execute(stmt):
            newest.setdefault(r.item_id, Resolution(**r._mapping))
        return dict(reversed(newest.items()))

    def count(self, project_id: int) -> int:
        stmt = (
            select(func.count())
            .select_from(resolutions)
            .join(items, items.c.id == resolutions.c.item_id)
            .where(items.c.project_id == project_id)
        )
        return self._conn.execute(stmt).scalar_one()

    def page(self, project_id: int, after_id: int, limit: int) -> list[Resolution]:
        """The project's resolutions with id > ``after_id``, oldest first, at most ``limit``."""
        stmt = (
            select(resolutions)
            .join(items, items.c.id == resolutions.c.item_id)
            .where(items.c.project_id == project_id, resolutions.c.id > after_id)
            .order_by(resolutions.c.id)
            .limit(limit)
        )
        return [Resolution(**r._mapping) for r in self._conn.execute(stmt)]


class SqlCertificationRepo(Repo):
    def __init__(self, conn: Connection, marks: EvidenceMarks) -> None:
        super().__init__(conn)
        self._marks = marks

    def add(self, project_id: int, model_version_id: int, values: Mapping[str, Any]) -> Certification:
        """Store a certificate (``values``: the fields of :class:`Certification` without ids)."""
        row = {**values, "project_id": project_id, "model_version_id": model_version_id}
        row.setdefault("created_at", utcnow())
        missing = f"project id {project_id} or model version id {model_version_id}"
        return Certification(**self._insert(certifications, row, missing=missing)._mapping)

    def latest(self, project_id: int) -> Certification | None:
        stmt = (
            select(certifications)
            .where(certifications.c.project_id == project_id)
            .order_by(certifications.c.id.desc())
            .limit(1)
        )
        row = self._conn.execute(stmt).first()
        return None if row is None else Certification(**row._mapping)

    def evidence_version(self, project_id: int) -> int:
        """The version of the project's audit evidence (:class:`EvidenceMarks`), as this transaction
        sees it (0 before its first change)."""
        stmt = select(audit_evidence.c.version).where(audit_evidence.c.project_id == project_id)
        return int(self._conn.execute(stmt).scalar() or 0)

    def evidence_changed(self, project_id: int) -> None:
        """This transaction changes what the project's certificates count: its evidence version
        moves when it commits."""
        self._marks.projects.add(project_id)

    def move_evidence(self) -> None:
        """One step of the version of every project whose audit evidence this transaction changed:
        those marked outright, and those of the marked items that were audited. The unit of work's
        last statements, just before the commit."""
        marks = self._marks
        projects = set(marks.projects)
        for part in chunks(sorted(marks.items), 500):
            audited = (
                select(items.c.project_id)
                .join(decisions, decisions.c.item_id == items.c.id)
                .where(items.c.id.in_(part), decisions.c.audit.is_(True))
                .distinct()
            )
            projects.update(self._conn.execute(audited).scalars())
        for project_id in sorted(projects):  # one order everywhere: two writers never cross
            stmt = (
                self._upsertable(audit_evidence)
                .values(project_id=project_id, version=1)
                .on_conflict_do_update(
                    index_elements=["project_id"], set_={"version": audit_evidence.c.version + 1}
                )
            )
            self._conn.execute(stmt)
        marks.items.clear()
        marks.projects.clear()
        marks.checked.clear()

    def list(self, project_id: int) -> builtins.list[Certification]:
        """The project's certificates, oldest first."""
        stmt = select(certifications).where(certifications.c.project_id == project_id)
        return [Certification(**r._mapping) for r in self._conn.execute(stmt.order_by(certifications.c.id))]


class SqlFeedbackRepo(Repo):
    def add(self, values: Mapping[str, Any]) -> Feedback:
        """Store feedback (the fields of :class:`Feedback` but ``id``); a reused idempotency key
        raises Conflict and writes nothing."""
        row = {**values, "kind": FeedbackKind(values["kind"]).value}
        row.setdefault("created_at", utcnow())
        key = values["idempotency_key"]
        return _feedback(
            self._insert(
                feedback,
                row,
                conflict=f"idempotency key {key!r} was already used",
                missing=f"prediction id {values['prediction_id']}",
            )._mapping
        )

    def by_key(self, project_id: int, idempotency_key: str) -> Feedback | None:
        stmt = select(feedback).where(
            feedback.c.project_id == project_id, feedback.c.idempotency_key == idempotency_key
        )
        row = self._conn.execute(stmt).first()
        return None if row is None else _feedback(row._mapping)

    def for_item(self, item_id: int) -> list[Feedback]:
        stmt = select(feedback).where(feedback.c.item_id == item_id).order_by(feedback.c.id)
        return [_feedback(r._mapping) for r in self._conn.execute(stmt)]

    def corrections(self, project_id: int) -> list[tuple[int, str]]:
        """(item id, corrected label) of every correction in the project, oldest first."""
        stmt = (
            select(feedback.c.item_id, feedback.c.correction)
            .where(
                feedback.c.project_id == project_id,
                feedback.c.kind == FeedbackKind.CORRECTION.value,
            )
            .order_by(feedback.c.id)
        )
        return [(i, label) for i, label in self._conn.execute(stmt)]


def _feedback(m: Mapping[Any, Any]) -> Feedback:
    return Feedback(**{**m, "kind": FeedbackKind(m["kind"])})


class SqlEventRepo(Repo):
    """Append-only: events are added and listed, never changed."""

    def add(
        self,
        project_id: int | None,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        data: dict[str, Any] | None = None,
    ) -> Event:
        values = {
            "project_id": project_id,
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "data": data or {},
            "at": utcnow(),
        }
        try:
            row = hot.EVENT_ADD.first(self._conn, values)
        except IntegrityError as exc:
            if is_fk_violation(exc):
                raise NotFound(f"project id {project_id} does not exist") from exc
            raise
        assert row is not None
        return Event(**row)

    def of_actions(self, project_id: int, actions: Sequence[str]) -> builtins.list[Event]:
        """The project's events with one of ``actions``, oldest first."""
        stmt = select(events).where(events.c.project_id == project_id, events.c.action.in_(list(actions)))
        return [Event(**r._mapping) for r in self._conn.execute(stmt.order_by(events.c.id))]

    def list(
        self, project_id: int | None = None, after_id: int = 0, limit: int = 100
    ) -> builtins.list[Event]:
        """Events with id > ``after_id`` (of one project, or all when None), oldest first."""
        stmt = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
        if project_id is not None:
            stmt = stmt.where(events.c.project_id == project_id)
        return [Event(**r._mapping) for r in self._conn.execute(stmt)]

    def latest(self, project_id: int, action: str, before_id: int | None = None) -> Event | None:
        """The project's newest event with ``action`` (and an id below ``before_id``, when given)."""
        stmt = (
            select(events)
            .where(events.c.project_id == project_id, events.c.action == action)
            .order_by(events.c.id.desc())
            .limit(1)
        )
        if before_id is not None:
            stmt = stmt.where(events.c.id < before_id)
        row = self._conn.execute(stmt).first()
        return None if row is None else Event(**row._mapping)
