"""Review repositories: tasks (and the concurrency-safe claim), leases, annotations, gold answers."""

# No ``from __future__ import annotations`` here: it would clash with the annotations table.

import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from loopwright.domain import Annotation, GoldAnswer, Lease, LeaseStatus, MachineLabel, Task, TaskStatus
from loopwright.errors import Conflict, NotFound
from loopwright.store.sql import statements as hot
from loopwright.store.sql.annotator_stats import SqlAnnotatorStatsRepo
from loopwright.store.sql.plain import PlainSql
from loopwright.store.sql.repositories import EvidenceMarks, Repo, chunks, is_fk_violation, utcnow
from loopwright.store.sql.tables import (
    annotations,
    decisions,
    gold_answers,
    items,
    leases,
    machine_labels,
    predictions,
    tasks,
)

ACTIVE = LeaseStatus.ACTIVE.value
SWEEP_INTERVAL = 5.0  # seconds between opportunistic lease sweeps, per process and database
_LAST_SWEEP: dict[str, float] = {}  # database URL → monotonic time of its last sweep


def _task(m: Mapping[Any, Any]) -> Task:
    fields = {k: v for k, v in m.items() if k != "n_annotations"}  # the store's own counter
    return Task(**{**fields, "status": TaskStatus(m["status"])})


def _lease(m: Mapping[Any, Any]) -> Lease:
    return Lease(**{**m, "status": LeaseStatus(m["status"])})


def _found(row: Mapping[str, Any] | None, missing: str) -> Mapping[str, Any]:
    if row is None:
        raise NotFound(f"{missing} does not exist")
    return row


def _candidate(claimable: Any, order: list[Any], n_tiers: int, passed_over: list[int]) -> Select[Any]:
    """The claim's candidate statement, passing over ``passed_over`` (same parameters)."""
    tiers = [bindparam(f"tier_{i}", type_=Integer) for i in range(n_tiers)]
    return (
        select(tasks)
        .where(
            tasks.c.project_id == bindparam("project_id", type_=Integer),
            tasks.c.tier.in_(tiers),
            claimable(bindparam("annotator", type_=String), bindparam("now", type_=tasks.c.created_at.type)),
            tasks.c.id.not_in(passed_over),
        )
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def _live(now: datetime) -> ColumnElement[bool]:
    """Leases that still hold a slot: active and not yet expired."""
    return and_(leases.c.status == ACTIVE, leases.c.expires_at > now)


def _n_annotations() -> Any:
    """The task's annotations, counted as they are added (``SqlAnnotationRepo.add``)."""
    return tasks.c.n_annotations


def _unseen(annotator: str, now: datetime) -> ColumnElement[bool]:
    """``annotator`` never labelled the task's item (at any tier, gold included), holds no live
    lease on it, and did not skip this task."""
    task_of_lease = select(tasks.c.item_id).where(tasks.c.id == leases.c.task_id).scalar_subquery()
    annotated = exists().where(annotations.c.item_id == tasks.c.item_id, annotations.c.annotator == annotator)
    answered = exists().where(
        gold_answers.c.item_id == tasks.c.item_id, gold_answers.c.annotator == annotator
    )
    holds = exists().where(leases.c.annotator == annotator, _live(now), task_of_lease == tasks.c.item_id)
    skipped = exists().where(
        leases.c.task_id == tasks.c.id,
        leases.c.annotator == annotator,
        leases.c.status == LeaseStatus.SKIPPED.value,
    )
    return and_(~annotated, ~answered, ~holds, ~skipped)


def _claimable(annotator: str, now: datetime) -> ColumnElement[bool]:
    """An open task with a free slot that ``annotator`` has not seen (:func:`_unseen`)."""
    n_live = (
        select(func.count())
        .select_from(leases)
        .where(leases.c.task_id == tasks.c.id, _live(now))
        .scalar_subquery()
    )
    free = _n_annotations() + n_live < tasks.c.required_annotations
    return and_(tasks.c.status == TaskStatus.OPEN.value, free, _unseen(annotator, now))


def _gold_claimable(annotator: str, now: datetime) -> ColumnElement[bool]:
    """A gold task that ``annotator`` has not seen: gold tasks have no slots to fill."""
    return and_(tasks.c.status == TaskStatus.GOLD.value, _unseen(annotator, now))


def _gold_preferred(annotator: str, now: datetime) -> ColumnElement[bool]:
    """The gold task ``:prefer``, if ``annotator`` may claim it (:func:`_gold_claimable`)."""
    return and_(tasks.c.id == bindparam("prefer", type_=Integer), _gold_claimable(annotator, now))


def _suggested_label() -> Any:
    """The label of the latest prediction for the task's item."""
    return (
        select(predictions.c.label)
        .where(predictions.c.item_id == tasks.c.item_id)
        .order_by(predictions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _item_metadata(key: str) -> Any:
    """The task's item metadata field ``key``, as text."""
    return select(items.c.metadata[key].as_string()).where(items.c.id == tasks.c.item_id).scalar_subquery()


def _untouched(now: datetime) -> ColumnElement[bool]:
    """No answer, no parent task (nothing sent it up) and no live lease on it."""
    live = exists().where(
        leases.c.task_id == tasks.c.id, leases.c.status == ACTIVE, leases.c.expires_at > now
    )
    return and_(tasks.c.n_annotations == 0, tasks.c.parent_task_id.is_(None), ~live)


class SqlTaskRepo(Repo):
    def add(
        self,
        project_id: int,
        item_id: int,
        decision_id: int | None,
        tier: int,
        priority: float,
        reason: str,
        required_annotations: int,
        parent_task_id: int | None = None,
    ) -> Task:
        values = {
            "project_id": project_id,
            "item_id": item_id,
            "decision_id": decision_id,
            "tier": tier,
            "status": TaskStatus.OPEN.value,
            "priority": priority,
            "reason": reason,
            "required_annotations": required_annotations,
            "parent_task_id": parent_task_id,
            "created_at": utcnow(),
            "closed_at": None,
        }
        missing = (
            f"project id {project_id}, item id {item_id}, decision id {decision_id}"
            f" or parent task id {parent_task_id}"
        )
        return _task(self._insert(tasks, values, missing=missing)._mapping)

    def add_many(self, project_id: int, rows: Sequence[tuple[int, int | None, int, float, str, int]]) -> None:
        """Open tasks ``(item_id, decision_id, tier, priority, reason, required_annotations)`` in
        bulk (one multi-row statement per few hundred rows)."""
        now = utcnow()
        keys = ("item_id", "decision_id", "tier", "priority", "reason", "required_annotations")
        values = [
            {
                **dict(zip(keys, r, strict=True)),
                "project_id": project_id,
                "status": TaskStatus.OPEN.value,
                "parent_task_id": None,
                "created_at": now,
                "closed_at": None,
            }
            for r in rows
        ]
        self._insert_many(tasks, values, "item_id", missing=f"project id {project_id}, an item or a decision")

    def get(self, task_id: int) -> Task:
        return _task(_found(hot.TASK_GET.first(self._conn, {"id": task_id}), f"task id {task_id}"))

    def lock(self, task_id: int) -> Task:
        """The task, row-locked until the transaction ends (SQLite: already serialised)."""
        return _task(_found(hot.TASK_LOCK.first(self._conn, {"id": task_id}), f"task id {task_id}"))

    def lock_item(self, item_id: int) -> list[Task]:
        """Row locks on the item and its tasks until commit (PostgreSQL; SQLite writers queue
        anyway): a concurrent submission, claim, feedback or re-check waits, then reads what the
        other added. Returns the item's tasks as they are once locked, oldest first."""
        # tasks before the item, in the order a submission takes them (task, then a key-share
        # lock on the item for its annotation's foreign key), so the two never deadlock; then the
        # tasks again, for any a concurrent writer added before the item was locked
        owned = tasks.c.item_id == item_id
        self._conn.execute(select(tasks.c.id).where(owned).with_for_update())
        self._conn.execute(select(items.c.id).where(items.c.id == item_id).with_for_update())
        rows = self._conn.execute(select(tasks).where(owned).order_by(tasks.c.id).with_for_update())
        return [_task(r._mapping) for r in rows]

    def claim(
        self,
        project_id: int,
        annotator: str,
        tiers: Sequence[int],
        now: datetime,
        expires_at: datetime,
        session_id: str | None = None,
        avoid_label: str | None = None,
        avoid_source: tuple[str, str] | None = None,
    ) -> tuple[Task, Lease] | None:
        """Lease the best claimable open task in ``tiers``.

        Order: tasks whose suggested label is not ``avoid_label`` and whose item's metadata
        ``key`` is not ``value`` for ``avoid_source = (key, value)`` (rotation), then highest
        priority, then most annotations already (so overlap completes and items resolve
        sooner, rather than filling every item's first slot breadth-first), then lowest id.
        """
        order: list[Any] = [tasks.c.priority.desc(), _n_annotations().desc(), tasks.c.id]
        params: dict[str, Any] = {}
        if avoid_source is not None:
            key, params["avoid_source"] = avoid_source
            other = _item_metadata(key) == bindparam("avoid_source", type_=String)
            order.insert(0, case((other, 1), else_=0))
        if avoid_label is not None:
            params["avoid_label"] = avoid_label
            order.insert(0, case((_suggested_label() == bindparam("avoid_label", type_=String), 1), else_=0))
        shape = ("open", avoid_label is not None, None if avoid_source is None else avoid_source[0])
        return self._claim(
            project_id, annotator, tiers, now, expires_at, session_id, _claimable, order, shape, params
        )

    def claim_gold(
        self,
        project_id: int,
        annotator: str,
        tiers: Sequence[int],
        now: datetime,
        expires_at: datetime,
        session_id: str | None = None,
        prefer: int | None = None,
    ) -> tuple[Task, Lease] | None:
        """Lease a gold task in ``tiers`` whose item ``annotator`` has not seen: the task
        ``prefer`` if it still is one (found by its key), else the oldest."""
        order = [tasks.c.id]
        if prefer is not None:
            args = (_gold_preferred, order, ("gold-preferred",), {"prefer": prefer})
            claimed = self._claim(project_id, annotator, tiers, now, expires_at, session_id, *args)
            if claimed is not None:
                return claimed
        return self._claim(
            project_id, annotator, tiers, now, expires_at, session_id, _gold_claimable, order, ("gold",), {}
        )

    def gold_unseen(
        self, project_id: int, annotator: str, tiers: Sequence[int], now: datetime, limit: int
    ) -> list[Task]:
        stmt = (
            select(tasks)
            .where(
                tasks.c.project_id == project_id,
                tasks.c.tier.in_(list(tiers)),
                _gold_claimable(annotator, now),
            )
            .order_by(tasks.c.id)
            .limit(limit)
        )
        return [_task(r._mapping) for r in self._conn.execute(stmt)]

    def gold_items(self, project_id: int, limit: int) -> list[tuple[int, str]]:
        stmt = (
            select(tasks.c.item_id, func.min(tasks.c.gold_label))
            .where(tasks.c.project_id == project_id, tasks.c.status == TaskStatus.GOLD.value)
            .group_by(tasks.c.item_id)
            .order_by(tasks.c.item_id.desc())
            .limit(limit)
        )
        return [(item_id, label) for item_id, label in self._conn.execute(stmt)]

    def _claim(
        self,
        project_id: int,
        annotator: str,
        tiers: Sequence[int],
        now: datetime,
        expires_at: datetime,
        session_id: str | None,
        claimable: Any,
        order: list[Any],
        shape: tuple[Any, ...],
        params: dict[str, Any],
    ) -> tuple[Task, Lease] | None:
        """Lease the first task by ``order`` that passes ``claimable(annotator, now)``.

        Two prebuilt statements (:mod:`.statements`, cached by ``shape``, the variant of
        ``claimable`` and ``order``). PostgreSQL: the candidate row is locked with ``FOR UPDATE
        SKIP LOCKED`` (concurrent claimers move on to other tasks); the lease is then inserted
        only if the task is still claimable, checked by that new statement, whose fresh READ
        COMMITTED snapshot sees the leases of any claimer that held the lock before us.
        SQLite: the transaction began with ``BEGIN IMMEDIATE``, so claims run one at a time.
        """
        tiers = list(tiers)
        if not tiers:  # no tier to draw from: nothing is claimable
            return None
        bound = {"project_id": project_id, "annotator": annotator, "now": now, **params}
        bound |= {f"tier_{i}": tier for i, tier in enumerate(tiers)}
        insert_lease = hot.lease_if_claimable(claimable, shape[:1])
        passed_over: list[int] = []
        while True:
            if passed_over:  # rare: a claimer took the slot between our two statements
                row = self._conn.execute(_candidate(claimable, order, len(tiers), passed_over), bound).first()
                task = None if row is None else dict(row._mapping)
            else:
                task = hot.claim_candidate(claimable, order, len(tiers), shape).first(self._conn, bound)
            if task is None:
                return None
            values = {**bound, "task_id": task["id"], "expires_at": expires_at, "session_id": session_id}
            lease = insert_lease.first(self._conn, values)
            if lease is None:
                passed_over.append(task["id"])
                continue
            return _task(task), _lease(lease)

    def add_gold(self, project_id: int, item_id: int, tier: int, label: str) -> Task:
        """A gold task: status ``gold``, the known answer in ``gold_label``; it never closes."""
        values = {
            "project_id": project_id,
            "item_id": item_id,
            "decision_id": None,
            "tier": tier,
            "status": TaskStatus.GOLD.value,
            "priority": 0.0,
            "reason": "gold",
            "required_annotations": 0,
            "parent_task_id": None,
            "created_at": utcnow(),
            "closed_at": None,
            "gold_label": label,
        }
        return _task(
            self._insert(tasks, values, missing=f"project id {project_id} or item id {item_id}")._mapping
        )

    def set_status(self, task_id: int, status: TaskStatus, closed_at: datetime | None) -> Task:
        params = {"id": task_id, "status": TaskStatus(status).value, "closed_at": closed_at}
        return _task(_found(hot.TASK_STATUS.first(self._conn, params), f"task id {task_id}"))

    def set_required(self, task_id: int, required_annotations: int) -> None:
        stmt = update(tasks).where(tasks.c.id == task_id).values(required_annotations=required_annotations)
        self._conn.execute(stmt)

    def backlog(
        self, project_id: int, reasons: Sequence[str], since_item_id: int, now: datetime, limit: int
    ) -> list[Task]:
        stmt = (
            select(tasks)
            .where(
                tasks.c.project_id == project_id,
                tasks.c.status == TaskStatus.OPEN.value,
                tasks.c.reason.in_(list(reasons)),
                tasks.c.item_id >= since_item_id,
                _untouched(now),
                ~exists().where(decisions.c.id == tasks.c.decision_id, decisions.c.audit.is_(True)),
            )
            .order_by(tasks.c.item_id, tasks.c.id)
            .limit(limit)
        )
        return [_task(r._mapping) for r in self._conn.execute(stmt)]

    def accept(self, task_ids: Sequence[int], now: datetime) -> list[int]:
        closed: list[int] = []
        for part in chunks(list(task_ids)):
            stmt = (
                update(tasks)
                .where(tasks.c.id.in_(part), tasks.c.status == TaskStatus.OPEN.value, _untouched(now))
                .values(status=TaskStatus.ACCEPTED.value, closed_at=now)
                .returning(tasks.c.id)
            )
            closed += self._conn.execute(stmt).scalars()
        return sorted(closed)

    def for_item(self, item_id: int) -> list[Task]:
        stmt = select(tasks).where(tasks.c.item_id == item_id).order_by(tasks.c.id)
        return [_task(r._mapping) for r in self._conn.execute(stmt)]

    def count_open_by_tier(self, project_id: int) -> dict[int, int]:
        stmt = (
            select(tasks.c.tier, func.count())
            .where(tasks.c.project_id == project_id, tasks.c.status == TaskStatus.OPEN.value)
            .group_by(tasks.c.tier)
        )
        return {tier: n for tier, n in self._conn.execute(stmt)}

    def count_open_answered(self, project_id: int, reasons: Sequence[str]) -> int:
        stmt = select(func.count()).where(
            tasks.c.project_id == project_id,
            tasks.c.status == TaskStatus.OPEN.value,
            tasks.c.reason.in_(list(reasons)),
            tasks.c.n_annotations > 0,
        )
        return self._conn.execute(stmt).scalar_one()

    def timeline(self, project_id: int) -> list[tuple[int, datetime, datetime | None]]:
        """``(tier, created_at, closed_at)`` of every task but gold ones, oldest first."""
        stmt = (
            select(tasks.c.tier, tasks.c.created_at, tasks.c.closed_at)
            .where(tasks.c.project_id == project_id, tasks.c.status != TaskStatus.GOLD.value)
            .order_by(tasks.c.id)
        )
        return [(tier, created, closed) for tier, created, closed in self._conn.execute(stmt)]


class SqlLeaseRepo(Repo):
    def get(self, lease_id: int) -> Lease:
        return _lease(_found(hot.LEASE_GET.first(self._conn, {"id": lease_id}), f"lease id {lease_id}"))

    def set_status(self, lease_id: int, status: LeaseStatus) -> Lease:
        params = {"id": lease_id, "status": LeaseStatus(status).value}
        return _lease(_found(hot.LEASE_STATUS.first(self._conn, params), f"lease id {lease_id}"))

    def extend(self, lease_id: int, expires_at: datetime) -> Lease:
        stmt = (
            update(leases).where(leases.c.id == lease_id).values(expires_at=expires_at).returning(*leases.c)
        )
        return _lease(self._one(stmt, f"lease id {lease_id}")._mapping)

    def suggest(self, lease_id: int, label: str) -> None:
        self._conn.execute(update(leases).where(leases.c.id == lease_id).values(suggested=label))

    def add_submitted(self, task_id: int, annotator: str, at: datetime) -> Lease:
        """A lease born submitted: the record of an annotation made elsewhere (an import)."""
        values = {
            "task_id": task_id,
            "annotator": annotator,
            "status": LeaseStatus.SUBMITTED.value,
            "expires_at": at,
            "created_at": at,
            "session_id": None,
            "suggested": None,
        }
        return _lease(self._insert(leases, values, missing=f"task id {task_id}")._mapping)

    def count_submitted(self, annotator: str, session_id: str) -> int:
        """Leases ``annotator`` submitted in work session ``session_id``."""
        stmt = select(func.count()).where(
            leases.c.annotator == annotator,
            leases.c.session_id == session_id,
            leases.c.status == LeaseStatus.SUBMITTED.value,
        )
        return self._conn.execute(stmt).scalar_one()

    def expire_stale(self, project_id: int, now: datetime) -> int:
        """Mark the project's active leases past their expiry as expired; return how many.

        Driven by the index on ``(status, expires_at)`` (0012): the cost follows the stale
        leases, not the project. Rows another transaction holds are skipped (PostgreSQL), so
        concurrent sweeps never deadlock; whatever they leave is swept next time (claims check
        expiry themselves).
        """
        in_project = exists().where(tasks.c.id == leases.c.task_id, tasks.c.project_id == project_id)
        return self._expire(and_(leases.c.status == ACTIVE, leases.c.expires_at <= now, in_project))

    def sweep(self, now: datetime, min_interval: float = SWEEP_INTERVAL, limit: int = 1000) -> int:
        """Expire up to ``limit`` stale leases of every project; return how many.

        Throttled per process and database: a call within ``min_interval`` seconds (monotonic)
        of the last sweep does nothing and returns 0, so claims can call it on every request
        (the server also runs it on a timer, :class:`loopwright.service.sweeper.LeaseSweeper`).
        """
        key = str(self._conn.engine.url)
        tick = time.monotonic()
        if min_interval > 0 and tick - _LAST_SWEEP.get(key, -math.inf) < min_interval:
            return 0
        _LAST_SWEEP[key] = tick
        return self._expire(and_(leases.c.status == ACTIVE, leases.c.expires_at <= now), limit)

    def _expire(self, stale_leases: ColumnElement[bool], limit: int | None = None) -> int:
        stale = select(leases.c.id).where(stale_leases).limit(limit).with_for_update(skip_locked=True)
        stmt = update(leases).where(leases.c.id.in_(stale)).values(status=LeaseStatus.EXPIRED.value)
        return self._conn.execute(stmt).rowcount


_ANNOTATION_COLUMNS = ", ".join(c.name for c in annotations.c)
_ANNOTATION_ADD_BUMP = PlainSql(  # PostgreSQL only: a data-modifying CTE (SQLite has none)
    "WITH added AS ("
    "INSERT INTO annotations (task_id, item_id, lease_id, annotator, label, unsure, created_at, suggested)"
    " VALUES (:task_id, :item_id, :lease_id, :annotator, :label, :unsure, :created_at, :suggested)"
    f" ON CONFLICT DO NOTHING RETURNING {_ANNOTATION_COLUMNS}), "
    "bumped AS (UPDATE tasks SET n_annotations = n_annotations + 1"
    " WHERE id = :task_id AND EXISTS (SELECT 1 FROM added)), "
    "counted AS (UPDATE annotator_stats SET work = work + 1"  # 0017; no row: built on read
    " WHERE project_id = (SELECT project_id FROM tasks WHERE id = :task_id)"
    " AND annotator = :annotator AND EXISTS (SELECT 1 FROM added))"
    f" SELECT {_ANNOTATION_COLUMNS}, (SELECT {hot.IF_AUDITED} FROM tasks WHERE tasks.id = :task_id)"
    " FROM added",
    [*annotations.c, hot.AUDITED_PROJECT],
)


class SqlAnnotationRepo(Repo):
    def __init__(self, conn: Connection, marks: EvidenceMarks) -> None:
        super().__init__(conn)
        self._marks = marks

    def add(
        self,
        task_id: int,
        item_id: int,
        lease_id: int,
        annotator: str,
        label: str,
        unsure: bool,
        at: datetime | None = None,
        suggested: str | None = None,
    ) -> Annotation:
        """Record an annotation; Conflict, and nothing written, if ``annotator`` already has one."""
        values = {
            "task_id": task_id,
            "item_id": item_id,
            "lease_id": lease_id,
            "annotator": annotator,
            "label": label,
            "unsure": unsure,
            "created_at": at or utcnow(),
            "suggested": suggested,
        }
        postgres = self._conn.dialect.name == "postgresql"
        try:  # PostgreSQL: the insert and the task's counter in one statement
            row = (_ANNOTATION_ADD_BUMP if postgres else hot.ANNOTATION_ADD).first(self._conn, values)
        except IntegrityError as exc:
            if is_fk_violation(exc):
                missing = f"task id {task_id}, item id {item_id} or lease id {lease_id}"
                raise NotFound(f"{missing} does not exist") from exc
            raise
        if row is None:
            raise Conflict(f"{annotator!r} has already annotated task {task_id}")
        if not postgres:
            SqlAnnotatorStatsRepo(self._conn).add_work(task_id, annotator)
            bumped = hot.TASK_BUMP.first(self._conn, {"id": task_id})
            assert bumped is not None  # the insert's foreign key holds the task
            row |= bumped
        self._marks.known(item_id, row.pop("audited_project"))
        return Annotation(**row)

    def for_task(self, task_id: int) -> list[Annotation]:
        return [Annotation(**r) for r in hot.ANNOTATIONS_OF_TASK.rows(self._conn, {"task_id": task_id})]

    def for_item(self, item_id: int) -> list[Annotation]:
        stmt = select(annotations).where(annotations.c.item_id == item_id).order_by(annotations.c.id)
        return [Annotation(**r._mapping) for r in self._conn.execute(stmt)]

    def first_labels(self, item_ids: Sequence[int]) -> dict[int, str]:
        """The label of each item's oldest sure annotation, for the items of ``item_ids`` that have one."""
        first: dict[int, str] = {}
        for part in chunks(item_ids, 500):  # bounded IN lists
            stmt = (
                select(annotations.c.item_id, annotations.c.label)
                .where(annotations.c.item_id.in_(part), annotations.c.unsure.is_(False))
                .order_by(annotations.c.id)
            )
            for item_id, label in self._conn.execute(stmt):
                first.setdefault(item_id, label)
        return first

    def votes(self, project_id: int) -> list[tuple[int, str, str]]:
        """(item id, annotator, label) of every annotation in the project, oldest first."""
        stmt = (
            select(annotations.c.item_id, annotations.c.annotator, annotations.c.label)
            .join(tasks, tasks.c.id == annotations.c.task_id)
            .where(tasks.c.project_id == project_id)
            .order_by(annotations.c.id)
        )
        return [(i, a, label) for i, a, label in self._conn.execute(stmt)]

    def count(self, project_id: int) -> int:
        stmt = (
            select(func.count())
            .select_from(annotations)
            .join(tasks, tasks.c.id == annotations.c.task_id)
            .where(tasks.c.project_id == project_id)
        )
        return self._conn.execute(stmt).scalar_one()

    def page(self, project_id: int, after_id: int, limit: int) -> list[Annotation]:
        """The project's annotations with id > ``after_id``, oldest first, at most ``limit``."""
        stmt = (
            select(annotations)
            .join(tasks, tasks.c.id == annotations.c.task_id)
            .where(tasks.c.project_id == project_id, annotations.c.id > after_id)
            .order_by(annotations.c.id)
            .limit(limit)
        )
        return [Annotation(**r._mapping) for r in self._conn.execute(stmt)]

    def counts_by_annotator(self, item_ids: Sequence[int]) -> dict[str, int]:
        """How many annotations each annotator made on ``item_ids``."""
        counts: dict[str, int] = {}
        for part in chunks(list(dict.fromkeys(item_ids))):
            stmt = (
                select(annotations.c.annotator, func.count())
                .where(annotations.c.item_id.in_(part))
                .group_by(annotations.c.annotator)
            )
            for annotator, n in self._conn.execute(stmt):
                counts[annotator] = counts.get(annotator, 0) + n
        return counts

    def recent(self, project_id: int, annotator: str, limit: int) -> list[Annotation]:
        """``annotator``'s latest ``limit`` annotations in the project, newest first."""
        stmt = (
            select(annotations)
            .join(tasks, tasks.c.id == annotations.c.task_id)
            .where(tasks.c.project_id == project_id, annotations.c.annotator == annotator)
            .order_by(annotations.c.id.desc())
            .limit(limit)
        )
        return [Annotation(**r._mapping) for r in self._conn.execute(stmt)]

    def work_times(self, project_id: int, annotator: str, since: datetime) -> list[datetime]:
        """When ``annotator`` submitted work (annotations and gold answers) after ``since``, oldest first."""
        rows = self._conn.execute(self._work(project_id, annotator, since).order_by("at"))
        return [at if at.tzinfo else at.replace(tzinfo=UTC) for (at,) in rows]

    def count_work(self, project_id: int, annotator: str, since: datetime) -> int:
        """How many ``work_times`` there are, counted in the database."""
        work = self._work(project_id, annotator, since).subquery()
        return int(self._conn.execute(select(func.count()).select_from(work)).scalar_one())

    @staticmethod
    def _work(project_id: int, annotator: str, since: datetime) -> CompoundSelect:
        parts = [
            select(table.c.created_at.label("at"))
            .join(tasks, tasks.c.id == table.c.task_id)
            .where(
                tasks.c.project_id == project_id, table.c.annotator == annotator, table.c.created_at > since
            )
            for table in (annotations, gold_answers)
        ]
        return union_all(*parts)


class SqlGoldAnswerRepo(Repo):
    def add(
        self,
        task_id: int,
        item_id: int,
        lease_id: int,
        annotator: str,
        tier: int,
        label: str,
        correct: bool,
        at: datetime,
    ) -> GoldAnswer:
        """Record a scored gold answer; Conflict, and nothing written, if one exists already."""
        values = {
            "task_id": task_id,
            "item_id": item_id,
            "lease_id": lease_id,
            "annotator": annotator,
            "tier": tier,
            "label": label,
            "correct": correct,
            "created_at": at,
        }
        row = self._insert(
            gold_answers,
            values,
            conflict=f"{annotator!r} has already answered gold task {task_id}",
            missing=f"task id {task_id}, item id {item_id} or lease id {lease_id}",
        )
        return GoldAnswer(**row._mapping)

    def for_project(self, project_id: int, annotator: str | None = None) -> list[GoldAnswer]:
        """The project's gold answers (only ``annotator``'s, if given), oldest first."""
        stmt = (
            select(gold_answers)
            .join(tasks, tasks.c.id == gold_answers.c.task_id)
            .where(tasks.c.project_id == project_id)
            .order_by(gold_answers.c.id)
        )
        if annotator is not None:
            stmt = stmt.where(gold_answers.c.annotator == annotator)
        return [GoldAnswer(**r._mapping) for r in self._conn.execute(stmt)]


class SqlMachineLabelRepo(Repo):
    """Model annotators' answers (0011), apart from human annotations."""

    def add(self, values: Mapping[str, Any]) -> MachineLabel:
        fields = {"created_at": utcnow(), **values}
        item = fields.get("item_id")
        return MachineLabel(**self._insert(machine_labels, fields, missing=f"item id {item}")._mapping)

    def for_item(self, item_id: int) -> list[MachineLabel]:
        stmt = select(machine_labels).where(machine_labels.c.item_id == item_id).order_by(machine_labels.c.id)
        return [MachineLabel(**r._mapping) for r in self._conn.execute(stmt)]

    def votes(self, project_id: int) -> list[tuple[int, str, str]]:
        """``(item, annotator, label)``: each annotator's newest label per item, by item."""
        stmt = (
            select(machine_labels.c.item_id, machine_labels.c.annotator, machine_labels.c.label)
            .where(machine_labels.c.project_id == project_id, machine_labels.c.status == "labelled")
            .order_by(machine_labels.c.id)
        )
        newest = {(i, a): label for i, a, label in self._conn.execute(stmt)}
        return sorted((i, a, label) for (i, a), label in newest.items())
