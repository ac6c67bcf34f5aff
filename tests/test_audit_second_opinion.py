"""Second opinions on audited items (``routing.audit_answers``): one audit answer that
contradicts the model's prediction, or answers with no two in agreement, ask one more, so a
single slip of the audit tier does not count as the model's error in the certificate."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright import Loop, Workspace
from loopwright.domain import TaskStatus
from loopwright.loop.review import Assignment, SubmitResult
from loopwright.store.sql import SqlStore

CONFIG: dict[str, Any] = {
    "name": "audited",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {
        "audit_rate": 1.0,  # every item audited
        "audit_tier": 2,
        "audit_answers": 3,
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "audit"}],
}
EXPERTS = ("e1", "e2", "e3")  # the audit tier's annotators


def model(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a`` below 0 (at 0.75 for x = -5), ``b`` above."""
    p_b = np.clip(0.5 + X[:, 0] / 20.0, 0.0, 1.0)
    return np.column_stack([1.0 - p_b, p_b])


def project(store: SqlStore, **routing: Any) -> tuple[Loop, int]:
    """A project with the model as champion and one item (x = -5, predicted ``a``); its task id."""
    loop = Workspace(store).create_project({**CONFIG, "routing": {**CONFIG["routing"], **routing}})
    loop.use_model(model, force=True, persist=False)
    [outcome] = loop.ingest([{"external_id": "i0", "payload": {"x": -5.0}}]).outcomes
    assert (outcome.label, outcome.confidence) == ("a", 0.75)
    with store.unit_of_work() as uow:
        [task] = uow.tasks.for_item(outcome.item_id)
    return loop, task.id


def answer(loop: Loop, who: str, label: str, task_id: int) -> SubmitResult:
    a = loop.next_task(who)
    assert isinstance(a, Assignment) and a.task.id == task_id, (who, a)
    return loop.submit(a.lease.id, who, label)


def task_of(store: SqlStore, task_id: int) -> tuple[TaskStatus, int]:
    with store.unit_of_work() as uow:
        task = uow.tasks.get(task_id)
    return task.status, task.required_annotations


def asked(loop: Loop) -> list[tuple[str, dict[str, Any]]]:
    return [(e.actor, e.data) for e in loop.events(limit=1000) if e.action == "audit.second_opinion"]


def test_an_answer_that_agrees_with_the_prediction_resolves_at_once(store: SqlStore) -> None:
    loop, task_id = project(store)
    result = answer(loop, "e1", "a", task_id)
    assert result.resolution is not None and (result.resolution.label, result.resolution.n_annotations) == (
        "a",
        1,
    )
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 1) and asked(loop) == []


def test_a_contradiction_asks_a_second_expert_and_two_agreeing_resolve(store: SqlStore) -> None:
    loop, task_id = project(store)
    first = answer(loop, "e1", "b", task_id)
    assert (first.resolution, first.escalated_to) == (None, None)
    assert task_of(store, task_id) == (TaskStatus.OPEN, 2)
    assert asked(loop) == [("e1", {"answers": 1})]
    assert loop.next_task("e1") is None  # not offered to the one who answered it
    second = answer(loop, "e2", "b", task_id)  # another expert claims it
    assert second.resolution is not None
    assert (second.resolution.label, second.resolution.n_annotations) == ("b", 2)
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 2) and len(asked(loop)) == 1


def test_disagreeing_answers_ask_a_third(store: SqlStore) -> None:
    loop, task_id = project(store)
    assert answer(loop, "e1", "b", task_id).resolution is None
    assert answer(loop, "e2", "a", task_id).resolution is None  # 1-1: no two agree
    assert task_of(store, task_id) == (TaskStatus.OPEN, 3)
    assert asked(loop) == [("e1", {"answers": 1}), ("e2", {"answers": 2})]
    third = answer(loop, "e3", "b", task_id)
    assert third.resolution is not None
    assert (third.resolution.label, third.resolution.n_annotations) == ("b", 3)
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 3) and len(asked(loop)) == 2


def test_at_most_audit_answers_are_asked(store: SqlStore) -> None:
    """With two at most, a 1-1 split is not asked about again: consensus takes it as it is."""
    loop, task_id = project(store, audit_answers=2)
    assert answer(loop, "e1", "b", task_id).resolution is None
    r = answer(loop, "e2", "a", task_id).resolution  # the audit tier is the top: a tie is final
    assert r is not None and (r.label, r.method, r.agreement, r.n_annotations) == (
        "b",  # a tie goes to the label voted first
        "majority_top_tier",
        0.5,
        2,
    )
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 2) and asked(loop) == [("e1", {"answers": 1})]


def test_one_audit_answer_changes_nothing(store: SqlStore) -> None:
    loop, task_id = project(store, audit_answers=1)
    result = answer(loop, "e1", "b", task_id)  # contradicts the model: taken at once
    assert result.resolution is not None and result.resolution.label == "b"
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 1) and asked(loop) == []


def test_tasks_that_are_not_audits_never_ask(store: SqlStore) -> None:
    loop, task_id = project(store, audit_rate=0.0, accept_threshold=0.9)  # 0.75: low confidence
    with store.unit_of_work() as uow:
        assert uow.tasks.get(task_id).reason == "low_confidence"
    a = loop.next_task("e1")
    assert a is not None and a.task.id == task_id
    result = loop.submit(a.lease.id, "e1", "b")
    assert result.resolution is not None and result.resolution.label == "b"
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 1) and asked(loop) == []
