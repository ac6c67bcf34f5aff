"""Contract of the SQL store, run on SQLite and PostgreSQL (see the ``store`` fixture).

Duplicates: ``items.add`` of an existing (project, external_id) raises Conflict and leaves the
unit of work usable, so a caller can catch it and look the item up with ``by_external_ids``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, text

from conftest import PG_URL
from loopwright.domain import (
    DatasetEntry,
    DatasetVersion,
    Item,
    LeaseStatus,
    ModelStatus,
    Project,
    Route,
    Split,
    Task,
    TaskStatus,
    content_hash,
)
from loopwright.errors import Conflict, NotFound, StoreUnavailable
from loopwright.loop.ports import UnitOfWork
from loopwright.store.sql import SqlStore, make_engine
from loopwright.store.sql.engine import PG_POOL_SIZE
from loopwright.store.sql.tables import metadata

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=10)


def new_project(uow: UnitOfWork, name: str = "digits") -> Project:
    return uow.projects.add(name, {"labels": ["cat", "dog"]})


def new_item(uow: UnitOfWork, project: Project, external_id: str = "a") -> Item:
    return uow.items.add(project.id, external_id, content_hash(external_id), {"x": 1}, {})


def new_task(
    uow: UnitOfWork,
    project: Project,
    priority: float = 0.5,
    tier: int = 1,
    required: int = 1,
    external_id: str | None = None,
) -> Task:
    item = new_item(uow, project, external_id or f"item-{time.perf_counter_ns()}")
    return uow.tasks.add(project.id, item.id, None, tier, priority, "low confidence", required)


def claim(uow: UnitOfWork, task_project: Project, who: str, now: datetime = T0) -> Task | None:
    claimed = uow.tasks.claim(task_project.id, who, [1, 2], now, now + timedelta(minutes=10))
    return None if claimed is None else claimed[0]


# --- catalogue -------------------------------------------------------------------------------


def test_project_round_trip(store: SqlStore) -> None:
    config = {"labels": ["cat", "dog"], "routing": {"accept_threshold": 0.9, "bands": [1, 2]}}
    with store.unit_of_work() as uow:
        project = uow.projects.add("digits", config)
    with store.unit_of_work() as uow:
        assert uow.projects.get("digits") == project
        assert uow.projects.get_by_id(project.id) == project
        assert uow.projects.list() == [project]
    assert project.config == config
    assert project.created_at.tzinfo is UTC


def test_project_conflict_and_not_found(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        new_project(uow, "p")
        with pytest.raises(Conflict, match="project 'p' already exists"):
            new_project(uow, "p")
        with pytest.raises(NotFound, match="project 'nope' does not exist"):
            uow.projects.get("nope")
        with pytest.raises(NotFound, match="project id 999 does not exist"):
            uow.projects.get_by_id(999)


def test_item_round_trip_and_lookups(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        a = uow.items.add(project.id, "a", "h" * 64, {"pixels": [0, 1.5]}, {"batch": "b1"})
        b = uow.items.add(project.id, "b", "g" * 64, {"text": "héllo"}, {})
    with store.unit_of_work() as uow:
        assert uow.items.get(a.id) == a
        assert uow.items.get_many([b.id, a.id, b.id]) == [b, a, b]
        assert uow.items.by_external_ids(project.id, ["a", "zz"]) == {"a": a}
        assert uow.items.count(project.id) == 2
        with pytest.raises(NotFound, match="item id 999 does not exist"):
            uow.items.get(999)
        with pytest.raises(NotFound, match=r"item ids \[999\]"):
            uow.items.get_many([a.id, 999])
        with pytest.raises(NotFound, match="project id 999"):
            uow.items.add(999, "a", "h", {}, {})
    assert a.payload == {"pixels": [0, 1.5]} and a.metadata == {"batch": "b1"}


def test_item_duplicate_external_id_raises_conflict(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project, other = new_project(uow, "p"), new_project(uow, "q")
        first = uow.items.add(project.id, "a", "h1", {"v": 1}, {})
        with pytest.raises(Conflict, match="item 'a' already exists"):
            uow.items.add(project.id, "a", "h2", {"v": 2}, {})
        assert uow.items.by_external_ids(project.id, ["a"]) == {"a": first}
        uow.items.add(other.id, "a", "h2", {"v": 2}, {})  # unique per project only
    with store.unit_of_work() as uow:
        assert uow.items.count(project.id) == 1
        assert uow.items.count(other.id) == 1


def test_prediction_round_trip(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        item = new_item(uow, new_project(uow))
        good = uow.predictions.add(item.id, None, {"cat": 0.1, "dog": 0.9}, "dog", 0.9, None)
        failed = uow.predictions.add(item.id, None, {}, None, None, "ValueError: bad input")
    with store.unit_of_work() as uow:
        assert uow.predictions.get(good.id) == good
        assert uow.predictions.for_item(item.id) == [good, failed]
        with pytest.raises(NotFound, match="prediction id 999"):
            uow.predictions.get(999)
        with pytest.raises(NotFound, match="item id 999"):
            uow.predictions.add(999, None, {}, None, None, None)
    assert good.probabilities == {"cat": 0.1, "dog": 0.9} and good.confidence == 0.9


def test_decisions(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project, other = new_project(uow, "p"), new_project(uow, "q")
        a, b, c = new_item(uow, project, "a"), new_item(uow, project, "b"), new_item(uow, other)
        pa, pb, pc = (uow.predictions.add(i.id, None, {"cat": 0.95}, "cat", 0.95, None) for i in (a, b, c))
        auto = uow.decisions.add(a.id, pa.id, Route.AUTO_ACCEPT, None, "confident", False, 0.9)
        review = uow.decisions.add(b.id, pb.id, Route.REVIEW, 2, "audit sample", True, 0.9)
        uow.decisions.add(c.id, pc.id, Route.AUTO_ACCEPT, None, "confident", False, None)
    with store.unit_of_work() as uow:
        assert uow.decisions.for_item(a.id) == [auto]
        assert uow.decisions.for_item(b.id) == [review]
        assert uow.decisions.auto_accepted(project.id) == [(auto, pa)]
        assert uow.decisions.count_by_route(project.id) == {"auto_accept": 1, "review": 1}
    assert auto.route is Route.AUTO_ACCEPT and review.audit is True and review.tier == 2


def test_resolutions(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        ta, tb = new_task(uow, project), new_task(uow, project)
        r1 = uow.resolutions.add(ta.item_id, ta.id, "cat", "majority", 0.5, 2)
        r2 = uow.resolutions.add(ta.item_id, ta.id, "dog", "dawid_skene", 1.0, 3)
        r3 = uow.resolutions.add(tb.item_id, tb.id, "cat", "majority", 0.75, 4)
    with store.unit_of_work() as uow:
        assert uow.resolutions.latest_by_item(project.id) == {ta.item_id: r2, tb.item_id: r3}
        assert uow.resolutions.for_item(ta.item_id) == [r1, r2]
        assert uow.resolutions.count(project.id) == 3
        assert uow.resolutions.latest_by_item(project.id + 1) == {}


def test_events_are_listed_in_order(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        p, q = new_project(uow, "p"), new_project(uow, "q")
        e1 = uow.events.add(p.id, "alice", "task.claimed", "task", "1", {"tier": 1})
        e2 = uow.events.add(None, "system", "store.opened", "store", "-")
        e3 = uow.events.add(q.id, "bob", "task.claimed", "task", "2")
        e4 = uow.events.add(p.id, "alice", "annotation.added", "annotation", "7")
    with store.unit_of_work() as uow:
        assert uow.events.list() == [e1, e2, e3, e4]
        assert uow.events.list(p.id) == [e1, e4]
        assert uow.events.list(after_id=e1.id, limit=2) == [e2, e3]
        assert uow.events.list(p.id, after_id=e1.id) == [e4]
    assert e1.data == {"tier": 1} and e2.data == {} and e2.project_id is None
    assert e1.id < e2.id < e3.id < e4.id and e1.at.tzinfo is UTC
    assert not any(hasattr(uow.events, name) for name in ("update", "delete", "remove"))


# --- review: tasks, claims, leases, annotations ----------------------------------------------


def test_task_round_trip_status_and_counts(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        item = new_item(uow, project)
        t1 = uow.tasks.add(project.id, item.id, None, 1, 0.25, "low confidence", 2)
        t2 = uow.tasks.add(project.id, item.id, None, 2, 0.75, "escalated", 1, parent_task_id=t1.id)
    with store.unit_of_work() as uow:
        assert uow.tasks.get(t1.id) == t1
        assert uow.tasks.for_item(item.id) == [t1, t2]
        assert uow.tasks.count_open_by_tier(project.id) == {1: 1, 2: 1}
        closed = uow.tasks.set_status(t1.id, TaskStatus.ESCALATED, T0)
        assert uow.tasks.get(t1.id) == closed
        assert uow.tasks.count_open_by_tier(project.id) == {2: 1}
        with pytest.raises(NotFound, match="task id 999"):
            uow.tasks.get(999)
        with pytest.raises(NotFound, match="task id 999"):
            uow.tasks.set_status(999, TaskStatus.RESOLVED, T0)
    assert (t1.status, t1.closed_at, t2.parent_task_id) == (TaskStatus.OPEN, None, t1.id)
    assert (closed.status, closed.closed_at) == (TaskStatus.ESCALATED, T0)


def test_claim_takes_highest_priority_then_oldest(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project, other = new_project(uow, "p"), new_project(uow, "q")
        low = new_task(uow, project, priority=0.1)
        high_a = new_task(uow, project, priority=0.9)
        high_b = new_task(uow, project, priority=0.9, tier=2)
        new_task(uow, project, priority=5.0, tier=3)  # tier not asked for
        done = new_task(uow, project, priority=5.0)
        uow.tasks.set_status(done.id, TaskStatus.RESOLVED, T0)
        new_task(uow, other, priority=5.0)  # other project
    order = []
    with store.unit_of_work() as uow:
        while (claimed := uow.tasks.claim(project.id, "ann", [1, 2], T0, LATER)) is not None:
            task, lease = claimed
            assert task == uow.tasks.get(task.id)
            assert (lease.task_id, lease.annotator, lease.status) == (
                task.id,
                "ann",
                LeaseStatus.ACTIVE,
            )
            assert (lease.expires_at, lease.created_at.tzinfo) == (LATER, UTC)
            order.append(task.id)
    assert order == [high_a.id, high_b.id, low.id]
    with store.unit_of_work() as uow:
        assert uow.tasks.claim(project.id, "ann", [], T0, LATER) is None


def test_claim_skips_tasks_annotated_or_held_by_the_annotator(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        first = new_task(uow, project, priority=0.9, required=3)
        second = new_task(uow, project, priority=0.1, required=3)
        task, lease = uow.tasks.claim(project.id, "ann", [1], T0, LATER) or pytest.fail()
        assert task.id == first.id
        assert claim(uow, project, "ann") == uow.tasks.get(second.id)  # holds first
        assert claim(uow, project, "ann") is None  # holds both
        uow.annotations.add(first.id, first.item_id, lease.id, "ann", "cat", False)
        uow.leases.set_status(lease.id, LeaseStatus.SUBMITTED)
        assert claim(uow, project, "ann") is None  # annotated first, holds second
        assert claim(uow, project, "bob") == uow.tasks.get(first.id)


def test_overlap_two_annotators_then_full(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        task = new_task(uow, project, required=2)
        assert claim(uow, project, "a") == task
        assert claim(uow, project, "b") == task
        assert claim(uow, project, "c") is None  # two live leases fill both slots
    with store.unit_of_work() as uow:
        a_lease = uow.tasks.claim(project.id, "a", [1], T0, LATER)
        assert a_lease is None  # "a" still holds a live lease
        assert claim(uow, project, "c", now=T0 + timedelta(minutes=1)) is None


def test_submitted_annotation_keeps_its_slot(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        task = new_task(uow, project, required=2)
        _, lease = uow.tasks.claim(project.id, "a", [1], T0, LATER) or pytest.fail()
        uow.annotations.add(task.id, task.item_id, lease.id, "a", "cat", False)
        uow.leases.set_status(lease.id, LeaseStatus.SUBMITTED)
        assert claim(uow, project, "b") == task
        assert claim(uow, project, "c") is None  # one annotation + one live lease


def test_expired_lease_frees_its_slot(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project, other = new_project(uow, "p"), new_project(uow, "q")
        task = new_task(uow, project, required=1)
        other_task = new_task(uow, other, required=1)
        _, stale = uow.tasks.claim(project.id, "a", [1], T0, T0 + timedelta(minutes=5)) or (pytest.fail())
        uow.tasks.claim(other.id, "a", [1], T0, T0 + timedelta(minutes=5))
        assert claim(uow, project, "b", now=T0 + timedelta(minutes=4)) is None
        # The stale lease is still 'active' in the table, but past expiry it holds no slot.
        _, fresh = (
            uow.tasks.claim(project.id, "b", [1], T0 + timedelta(minutes=5), T0 + timedelta(minutes=15))
            or pytest.fail()
        )
        assert fresh.task_id == task.id
        assert uow.leases.get(stale.id).status is LeaseStatus.ACTIVE
        assert uow.leases.expire_stale(project.id, T0 + timedelta(minutes=6)) == 1
        assert uow.leases.get(stale.id).status is LeaseStatus.EXPIRED
        assert uow.leases.get(fresh.id).status is LeaseStatus.ACTIVE
        assert uow.leases.expire_stale(project.id, T0 + timedelta(minutes=6)) == 0
        assert uow.annotations.for_task(other_task.id) == []
        assert uow.leases.expire_stale(other.id, T0 + timedelta(minutes=6)) == 1


def test_lease_round_trip_status_and_extend(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        new_task(uow, project)
        _, lease = uow.tasks.claim(project.id, "a", [1], T0, LATER) or pytest.fail()
    with store.unit_of_work() as uow:
        assert uow.leases.get(lease.id) == lease
        extended = uow.leases.extend(lease.id, LATER + timedelta(hours=1))
        assert extended == replace(lease, expires_at=LATER + timedelta(hours=1))
        released = uow.leases.set_status(lease.id, LeaseStatus.RELEASED)
        assert released == replace(extended, status=LeaseStatus.RELEASED)
        assert uow.leases.get(lease.id) == released
        for call in (
            lambda: uow.leases.get(999),
            lambda: uow.leases.extend(999, LATER),
            lambda: uow.leases.set_status(999, LeaseStatus.RELEASED),
        ):
            with pytest.raises(NotFound, match="lease id 999"):
                call()


def test_annotation_unique_per_task_and_annotator(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        task = new_task(uow, project, required=2)
        _, lease = uow.tasks.claim(project.id, "a", [1], T0, LATER) or pytest.fail()
        first = uow.annotations.add(task.id, task.item_id, lease.id, "a", "cat", True)
        with pytest.raises(Conflict, match="'a' has already annotated task"):
            uow.annotations.add(task.id, task.item_id, lease.id, "a", "dog", False)
        assert uow.annotations.for_task(task.id) == [first]
    with store.unit_of_work() as uow:
        assert uow.annotations.for_task(task.id) == [first]
        assert uow.annotations.count(project.id) == 1
        with pytest.raises(NotFound, match="task id 999"):
            uow.annotations.add(999, task.item_id, lease.id, "b", "cat", False)
    assert (first.label, first.unsure, first.lease_id) == ("cat", True, lease.id)


def test_annotation_queries(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        t1, t2 = new_task(uow, project, required=2), new_task(uow, project, required=2)
        made = []
        for who in ("a", "b"):
            for task in (t1, t2):
                _, lease = uow.tasks.claim(project.id, who, [1], T0, LATER) or pytest.fail()
                assert lease.task_id == task.id
                made.append(uow.annotations.add(task.id, task.item_id, lease.id, who, "cat", False))
                uow.leases.set_status(lease.id, LeaseStatus.SUBMITTED)
    with store.unit_of_work() as uow:
        assert uow.annotations.for_task(t1.id) == [made[0], made[2]]
        assert uow.annotations.for_item(t2.item_id) == [made[1], made[3]]
        assert uow.annotations.count(project.id) == 4
        assert uow.annotations.counts_by_annotator([t1.item_id]) == {"a": 1, "b": 1}
        assert uow.annotations.counts_by_annotator([t1.item_id, t2.item_id]) == {"a": 2, "b": 2}
        assert uow.annotations.counts_by_annotator([]) == {}


def test_exception_in_unit_of_work_rolls_everything_back(store: SqlStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.unit_of_work() as uow:
        project = new_project(uow)
        new_task(uow, project)
        uow.events.add(project.id, "alice", "project.created", "project", str(project.id))
        raise RuntimeError("boom")
    with store.unit_of_work() as uow:
        assert uow.projects.list() == []
        assert uow.events.list() == []


# --- learning: dataset versions and models ---------------------------------------------------


def _version(project: Project, entries: list[DatasetEntry], **kw: object) -> DatasetVersion:
    manifest = [e.manifest_row() for e in entries]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    fields: dict[str, object] = {
        "id": content_hash(manifest),
        "project_id": project.id,
        "parent_id": None,
        "n_items": len(entries),
        "label_counts": counts,
        "created_at": T0,
        "entries": tuple(entries),
        **kw,
    }
    return DatasetVersion(**fields)  # type: ignore[arg-type]


def test_dataset_version_with_1000_entries_round_trips(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        project = new_project(uow)
        items = [new_item(uow, project, f"item-{i:04d}") for i in range(1000)]
        task = new_task(uow, project)
        resolution = uow.resolutions.add(task.item_id, task.id, "dog", "majority", 1.0, 2)
    entries = [
        DatasetEntry(
            item_id=item.id,
            item_hash=item.content_hash,
            label=("cat", "dog", "bird")[i % 3],
            source="review" if i % 2 else "seed",
            resolution_id=resolution.id if i % 2 else None,
            split=Split.EVAL if i % 5 == 0 else Split.TRAIN,
        )
        for i, item in reversed(list(enumerate(items)))  # not in id order
    ]
    version = _version(project, entries)
    child = _version(project, entries[:10], parent_id=version.id, created_at=LATER)
    with store.unit_of_work() as uow:
        assert uow.datasets.latest(project.id) is None
        assert uow.datasets.add(version) == version
        assert uow.datasets.add(version) == version  # idempotent on the id
        assert uow.datasets.add(child) == child
    with store.unit_of_work() as uow:
        stored = uow.datasets.get(version.id)
        assert stored == version and stored.entries == tuple(entries)
        assert uow.datasets.latest(project.id) == child
        assert uow.datasets.list(project.id) == [
            replace(version, entries=()),
            replace(child, entries=()),
        ]
        assert uow.datasets.containing_item(entries[0].item_id) == [version.id, child.id]
        assert uow.datasets.containing_item(entries[-1].item_id) == [version.id]
        assert uow.datasets.containing_item(task.item_id) == []
        with pytest.raises(NotFound, match="dataset version 'nope'"):
            uow.datasets.get("nope")
    dangling = DatasetEntry(999_999, "h", "cat", "seed", None, Split.TRAIN)
    with pytest.raises(NotFound, match="an item or resolution"), store.unit_of_work() as uow:
        uow.datasets.add(_version(project, [dangling]))
    assert stored.created_at.tzinfo is UTC and stored.label_counts == version.label_counts


def test_model_versions_number_per_project(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        p, q = new_project(uow, "p"), new_project(uow, "q")
        m1 = uow.models.add(p.id, ModelStatus.CANDIDATE, None, "cfg1", 2**32 - 1, {"acc": 0.5}, b"\x00one")
        q1 = uow.models.add(q.id, ModelStatus.CANDIDATE, None, "cfg1", 0, {}, b"")
        m2 = uow.models.add(p.id, ModelStatus.CANDIDATE, None, "cfg2", 7, {"acc": 0.75}, b"two")
    assert (m1.version, m2.version, q1.version) == (1, 2, 1)
    assert (m1.status, m1.gate, m1.promoted_at, m1.seed) == (ModelStatus.CANDIDATE, None, None, 2**32 - 1)
    with store.unit_of_work() as uow:
        assert uow.models.get(p.id, 2) == m2
        assert uow.models.get_by_id(m1.id) == m1
        assert uow.models.artifact(m1.id) == b"\x00one"
        assert uow.models.champion(p.id) is None
        champion = uow.models.set_status(m2.id, ModelStatus.CHAMPION, promoted_at=T0)
        assert champion == replace(m2, status=ModelStatus.CHAMPION, promoted_at=T0)
        assert uow.models.champion(p.id) == champion
        assert uow.models.champion(q.id) is None
        gate = {"passed": False, "p_value": 0.21, "deltas": [0.01, -0.02]}
        gated = uow.models.set_gate(m1.id, gate)
        assert gated == replace(m1, gate=gate)
        retired = uow.models.set_status(m2.id, ModelStatus.RETIRED)
        assert retired.promoted_at == T0  # kept when not given
        assert uow.models.list(p.id) == [gated, retired]
        for call in (
            lambda: uow.models.get(p.id, 9),
            lambda: uow.models.get_by_id(999),
            lambda: uow.models.artifact(999),
            lambda: uow.models.set_gate(999, {}),
        ):
            with pytest.raises(NotFound):
                call()
        with pytest.raises(NotFound, match="project id 999"):
            uow.models.add(999, ModelStatus.CANDIDATE, None, "c", 0, {}, b"")
        with pytest.raises(NotFound, match="dataset version 'nope'"):
            uow.models.add(p.id, ModelStatus.CANDIDATE, "nope", "c", 0, {}, b"")


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_claims_never_overfill_a_task(store: SqlStore) -> None:
    n_tasks, required, annotators = 30, 2, [f"worker-{i}" for i in range(8)]
    with store.unit_of_work() as uow:
        project = new_project(uow)
        tasks = [new_task(uow, project, priority=i % 4, required=required) for i in range(n_tasks)]
    errors: list[BaseException] = []
    deadline = time.monotonic() + 30

    def work(who: str) -> None:
        try:
            while time.monotonic() < deadline:
                now = datetime.now(UTC)
                with store.unit_of_work() as uow:
                    claimed = uow.tasks.claim(project.id, who, [1], now, now + timedelta(hours=1))
                if claimed is None:
                    with store.unit_of_work() as uow:
                        if uow.annotations.count(project.id) >= n_tasks * required:
                            return
                    time.sleep(0.005)  # slots still held by others' live leases
                    continue
                task, lease = claimed
                with store.unit_of_work() as uow:
                    uow.annotations.add(task.id, task.item_id, lease.id, who, "cat", False)
                    uow.leases.set_status(lease.id, LeaseStatus.SUBMITTED)
            raise TimeoutError(f"{who} gave up")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(who,)) for who in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.unit_of_work() as uow:
        for task in tasks:
            done = uow.annotations.for_task(task.id)
            assert len(done) == required
            assert len({a.annotator for a in done}) == required
        assert uow.annotations.count(project.id) == n_tasks * required


# --- engine and migrations -------------------------------------------------------------------


def test_migrated_schema_matches_tables(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'lw.db'}")
    with engine.connect() as conn:
        pragma = {
            name: conn.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    engine.dispose()
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000, "synchronous": 1}


def test_plain_postgresql_url_uses_psycopg() -> None:
    engine = make_engine("postgresql://lw:secret@db.example/loop")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_pool_keeps_its_connections_under_concurrency(pg_admin: Engine) -> None:
    """20 threads each opening a transaction 10 times, all at once: every round reuses the same
    20 connections. SQLAlchemy's default pool (5 kept, 10 on overflow closed after use) opened
    a new PostgreSQL backend for most rounds."""
    engine = make_engine(PG_URL)
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    threads = PG_POOL_SIZE
    barrier = threading.Barrier(threads)

    def work() -> None:
        for _ in range(10):
            barrier.wait()
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_sleep(0.01)"))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: work(), range(threads)))
    engine.dispose()
    assert len(opened) == threads


def test_unreachable_database_raises_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as info:
        SqlStore("postgresql://lw:s3cret@127.0.0.1:1/loop", retry_delays=(0.01, 0.02))
    message = info.value.message
    assert "postgresql+psycopg://lw:***@127.0.0.1:1/loop" in message
    assert "after 3 attempts" in message and "s3cret" not in message
