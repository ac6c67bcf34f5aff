"""End-user feedback and lineage on a seeded run, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from loopwright import Conflict, Invalid, Loop, NotFound, UnknownLabel, Workspace
from loopwright.domain import FeedbackKind, Route, TaskStatus
from loopwright.store.sql import SqlStore
from test_loop import CONFIG, ManualClock, label_all, points

DS_CONFIG: dict[str, Any] = {**CONFIG, "consensus": {"method": "dawid_skene", "min_posterior": 0.5}}


@pytest.fixture
def trained(store: SqlStore) -> tuple[Loop, dict[str, str]]:
    """A champion trained on 45 labelled blob points, then 30 fresh points ingested."""
    loop = Workspace(store, ManualClock()).create_project(DS_CONFIG)
    data = points(45)
    truth = {r["external_id"]: label for r, label in data}
    loop.ingest([r for r, _ in data])
    label_all(loop, truth)
    assert loop.maybe_retrain() is not None
    fresh = points(30, seed=1, start=100)
    truth |= {r["external_id"]: label for r, label in fresh}
    loop.ingest([r for r, _ in fresh])
    return loop, truth


def prediction_of(loop: Loop, external_id: str) -> int:
    return int(loop.lineage_of_item(external_id)["predictions"][-1]["id"])


def test_thumbs_down_opens_one_priority_task_and_is_idempotent(trained: tuple[Loop, dict[str, str]]) -> None:
    loop, _ = trained
    pred = prediction_of(loop, "p100")  # auto-accepted: no open task
    before = loop.status().open_tasks_by_tier
    up = loop.feedback(pred, "thumbs_up", idempotency_key="k0")
    assert up.task_id is None and loop.status().open_tasks_by_tier == before
    down = loop.feedback(pred, "thumbs_down", idempotency_key="k1", comment="wrong!")
    again = loop.feedback(pred, "thumbs_down", idempotency_key="k1", comment="wrong!")
    assert again == down and down.kind is FeedbackKind.THUMBS_DOWN and down.task_id is not None
    report = loop.feedback(pred, "report", idempotency_key="k2")
    assert report.task_id == down.task_id  # the open task is reused, not duplicated
    assert loop.status().open_tasks_by_tier == {1: before.get(1, 0) + 1}
    task = loop.next_task("ann1")  # priority 2.0 beats everything routed
    assert task is not None and task.item.external_id == "p100" and task.task.reason == "user_thumbs_down"
    actions = Counter(e.action for e in loop.events(limit=1000))
    assert actions["feedback.received"] == 3


def test_bad_feedback_writes_nothing(trained: tuple[Loop, dict[str, str]]) -> None:
    loop, _ = trained
    pred = prediction_of(loop, "p101")
    loop.feedback(pred, "thumbs_down", idempotency_key="same")
    with pytest.raises(Conflict, match="used for different feedback"):
        loop.feedback(pred, "report", idempotency_key="same")
    with pytest.raises(NotFound, match="prediction id 999999"):
        loop.feedback(999999, "report", idempotency_key="x1")
    with pytest.raises(UnknownLabel, match="'zebra'"):
        loop.feedback(pred, "correction", idempotency_key="x2", correction="zebra")
    with pytest.raises(Invalid, match="unknown feedback kind 'meh'"):
        loop.feedback(pred, "meh", idempotency_key="x3")
    with pytest.raises(Invalid, match="exactly when kind is 'correction'"):
        loop.feedback(pred, "thumbs_down", idempotency_key="x4", correction="a")
    with pytest.raises(Invalid, match="must not be empty"):
        loop.feedback(pred, "report", idempotency_key=" ")
    assert len(loop.lineage_of_item("p101")["feedback"]) == 1
    assert Counter(e.action for e in loop.events(limit=1000))["feedback.received"] == 1


def test_a_correction_alone_never_resolves(trained: tuple[Loop, dict[str, str]]) -> None:
    loop, truth = trained
    external = "p102"
    wrong = next(label for label in "abc" if label != truth[external])
    fb = loop.feedback(prediction_of(loop, external), "correction", idempotency_key="c1", correction=wrong)
    item = loop.lineage_of_item(external)
    assert item["resolutions"] == [] and fb.task_id in [t["id"] for t in item["tasks"]]
    a = loop.next_task("ann1")
    assert a is not None and a.item.external_id == external
    result = loop.submit(a.lease.id, "ann1", truth[external])
    assert result.resolution is None  # overlap 2: still one human vote short
    b = loop.next_task("ann2")
    assert b is not None and b.item.external_id == external
    resolved = loop.submit(b.lease.id, "ann2", truth[external]).resolution
    assert resolved is not None and resolved.label == truth[external]  # two humans outweigh it
    assert loop.lineage_of_item(external)["feedback"][0]["correction"] == wrong


def test_lineage_both_ways(trained: tuple[Loop, dict[str, str]]) -> None:
    loop, _ = trained
    model = loop.lineage_of_model(1)
    dataset = loop.snapshot()
    assert model["dataset_version"] == dataset.id and model["status"] == "champion"
    train = [e for e in dataset.entries if e.split.value == "train"]
    assert model["train_items"] == len(train) and model["eval_items"] == 45 - len(train)
    assert model["annotations_by_tier"] == {"1": 2 * len(train)}  # overlap 2 at tier 1, no disputes
    assert sum(model["annotations_by_annotator"].values()) == 2 * len(train)
    assert set(model["annotations_by_annotator"]) <= {"ann1", "ann2", "ann3"}
    assert model["labels_by_source"] == {"review": len(train)}
    assert sum(model["label_counts"].values()) == len(train)

    entry = train[0]
    with loop._ctx.store.unit_of_work() as uow:
        external = uow.items.get(entry.item_id).external_id
    item = loop.lineage_of_item(external)
    assert item["dataset_versions"] == [{"id": dataset.id, "split": "train"}]
    assert item["trained_models"] == [1] and item["evaluated_models"] == []
    assert [d["route"] for d in item["decisions"]] == [Route.REVIEW.value]
    assert len(item["annotations"]) == 2 and item["resolutions"][0]["label"] == entry.label
    assert [t["status"] for t in item["tasks"]] == [TaskStatus.RESOLVED.value]
    fresh = loop.lineage_of_item("p100")
    assert fresh["predictions"][-1]["model_version"] == 1 and fresh["trained_models"] == []
    with pytest.raises(NotFound, match="'nope'"):
        loop.lineage_of_item("nope")
    with pytest.raises(NotFound):
        loop.lineage_of_model(42)
