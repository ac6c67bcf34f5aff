"""Use cases through the Python API on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from loopwright import Conflict, Invalid, LeaseExpired, Loop, NotFound, UnknownLabel, Workspace
from loopwright.domain import LeaseStatus, ModelStatus, Route, TaskStatus
from loopwright.errors import TooFewLabels
from loopwright.store.sql import SqlStore


class ManualClock:
    """A real clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b", "c"],
    "modality": "tabular",
    "features": ["x", "y"],
    "model": {"params": {"C": 100.0}},
    "routing": {"accept_threshold": 0.9, "audit_rate": 0.0},
    "retrain": {"every_n_labels": 10, "min_labels": 10, "eval_fraction": 0.3},
    "gate": {"min_eval_items": 3},
    "tiers": [  # two people per tier-1 item (the default is one since issue 20)
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "uncertain"},
        {"tier": 3, "name": "expert"},
    ],
}
CENTRES = {"a": (0.0, 0.0), "b": (12.0, 0.0), "c": (0.0, 12.0)}


def points(n: int, seed: int = 0, start: int = 0) -> list[tuple[dict[str, Any], str]]:
    """``n`` records in three well-separated blobs with their true labels."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        label = "abc"[i % 3]
        x, y = np.asarray(CENTRES[label]) + rng.normal(0, 0.7, 2)
        out.append(({"external_id": f"p{i}", "payload": {"x": float(x), "y": float(y)}}, label))
    return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def loop(store: SqlStore, clock: ManualClock) -> Loop:
    return Workspace(store, clock).create_project(CONFIG)


def label_all(
    loop: Loop, truth: dict[str, str], annotators: tuple[str, ...] = ("ann1", "ann2", "ann3")
) -> int:
    """Annotators take turns answering truthfully until the queues are empty."""
    done, busy = 0, True
    while busy:
        busy = False
        for who in annotators:
            a = loop.next_task(who)
            if a is not None:
                loop.submit(a.lease.id, who, truth[a.item.external_id])
                done, busy = done + 1, True
    return done


def test_cold_start_routes_everything_to_tier_one(loop: Loop) -> None:
    report = loop.ingest([r for r, _ in points(6)])
    assert report.created == 6 and report.duplicates == 0
    assert {(o.route, o.tier, o.reason) for o in report.outcomes} == {(Route.REVIEW, 1, "no_model")}
    status = loop.status()
    assert status.items == 6 and status.open_tasks_by_tier == {1: 6} and status.routes == {"review": 6}


def test_same_item_twice_is_one_item(loop: Loop) -> None:
    record = points(1)[0][0]
    loop.ingest([record, record])
    second = loop.ingest([record])
    assert second.duplicates == 1 and second.created == 0
    assert loop.status().items == 1 and loop.status().open_tasks_by_tier == {1: 1}
    changed = {**record, "payload": {"x": 9.0, "y": 9.0}}
    with pytest.raises(Conflict, match="different content"):
        loop.ingest([points(1, start=5)[0][0], changed])
    assert loop.status().items == 1  # the whole batch was refused


def test_malformed_items_are_refused_whole(loop: Loop) -> None:
    good = points(1)[0][0]
    bad = [good, {"payload": {"x": 1, "y": 2}}, {"external_id": "q", "payload": {"x": "one", "y": 2}}, "junk"]
    with pytest.raises(Invalid) as info:
        loop.ingest(bad)
    assert [f for f, _ in info.value.errors] == ["[1].external_id", "[2].payload", "[3]"]
    assert loop.status().items == 0


def test_overlap_majority_and_escalation(loop: Loop) -> None:
    loop.ingest([r for r, _ in points(2)])
    # item p0: two tier-1 annotators agree → resolved by majority
    a1 = loop.next_task("ann1")
    a2 = loop.next_task("ann2")
    assert a1 is not None and a2 is not None and a1.task.id == a2.task.id  # overlap of 2
    c3 = loop.next_task("ann3")  # takes p1: p0 has no free slot left
    assert c3 is not None and c3.item.external_id == "p1"
    assert loop.submit(a1.lease.id, "ann1", "a").resolution is None
    done = loop.submit(a2.lease.id, "ann2", "a")
    assert done.resolution is not None and (done.resolution.label, done.resolution.agreement) == ("a", 1.0)
    # item p1: a tie escalates to tier 2, whose single annotation decides
    b1 = loop.next_task("ann1")
    assert b1 is not None and b1.item.external_id == "p1"
    loop.submit(b1.lease.id, "ann1", "b")
    assert loop.next_task("ann4") is None  # both of p1's slots are taken
    up = loop.submit(c3.lease.id, "ann3", "c").escalated_to
    assert up is not None and (up.tier, up.reason, up.required_annotations) == (2, "disputed", 1)
    assert loop.next_task("ann1", tiers=[1]) is None
    expert = loop.next_task("lead", tiers=[2])
    assert expert is not None and expert.task.parent_task_id is not None
    final = loop.submit(expert.lease.id, "lead", "b").resolution
    assert final is not None and final.label == "b" and final.method == "majority"
    actions = [e.action for e in loop.events(limit=1000)]
    assert actions.count("item.resolved") == 2 and actions.count("task.escalated") == 1


def test_unsure_flag_escalates(loop: Loop) -> None:
    loop.ingest([points(1)[0][0]])
    for who in ("ann1", "ann2"):
        a = loop.next_task(who)
        assert a is not None
        result = loop.submit(a.lease.id, who, "a", unsure=(who == "ann2"))
    assert result.escalated_to is not None and result.escalated_to.reason == "unsure"


def test_unknown_label_writes_nothing(loop: Loop) -> None:
    loop.ingest([points(1)[0][0]])
    a = loop.next_task("ann1")
    assert a is not None
    with pytest.raises(UnknownLabel, match="'zebra'"):
        loop.submit(a.lease.id, "ann1", "zebra")
    assert loop.status().annotations == 0
    assert loop.submit(a.lease.id, "ann1", "a").annotation.label == "a"  # the lease is still good


def test_foreign_expired_and_used_leases_conflict(loop: Loop, clock: ManualClock) -> None:
    loop.ingest([points(1)[0][0]])
    a = loop.next_task("ann1")
    assert a is not None
    with pytest.raises(Conflict, match="another annotator"):
        loop.submit(a.lease.id, "intruder", "a")
    with pytest.raises(NotFound):
        loop.submit(999_999, "ann1", "a")
    clock.advance(loop.config.tier(1).lease_seconds + 1)
    with pytest.raises(LeaseExpired):
        loop.submit(a.lease.id, "ann1", "a")
    with pytest.raises(LeaseExpired):
        loop.extend(a.lease.id, "ann1")
    # the expired lease went back to the queue: someone else (or ann1 again) can claim it
    again = loop.next_task("ann1")
    assert again is not None and again.task.id == a.task.id and again.lease.id != a.lease.id
    loop.submit(again.lease.id, "ann1", "a")
    with pytest.raises(Conflict, match="submitted"):
        loop.submit(again.lease.id, "ann1", "a")
    assert loop.status().annotations == 1


def test_extend_and_release(loop: Loop, clock: ManualClock) -> None:
    loop.ingest([points(1)[0][0]])
    a = loop.next_task("ann1")
    assert a is not None
    clock.advance(200)
    extended = loop.extend(a.lease.id, "ann1", seconds=600)
    assert extended.expires_at == clock.now + timedelta(seconds=600)
    released = loop.release(a.lease.id, "ann1")
    assert released.status is LeaseStatus.RELEASED
    b = loop.next_task("ann2")
    c = loop.next_task("ann1")
    assert b is not None and c is not None and b.task.id == c.task.id == a.task.id


def test_full_cycle_snapshot_retrain_promote_and_lineage(loop: Loop) -> None:
    data = points(45)
    truth = {r["external_id"]: label for r, label in data}
    loop.ingest([r for r, _ in data])
    assert label_all(loop, truth) == 90  # 45 items, 2 annotations each at tier 1
    assert loop.retrain_due()
    outcome = loop.maybe_retrain()
    assert outcome is not None and outcome.promoted and outcome.gate.test == "baseline"
    assert outcome.model.status is ModelStatus.CHAMPION and outcome.model.version == 1
    assert outcome.dataset.n_items == 45 and outcome.model.dataset_version_id == outcome.dataset.id
    assert outcome.model.gate is not None and outcome.model.gate["passed"] is True
    assert not loop.retrain_due()
    assert loop.snapshot().id == outcome.dataset.id  # nothing changed: same version

    fresh = points(30, seed=1, start=100)
    report = loop.ingest([r for r, _ in fresh])
    auto = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
    assert len(auto) >= 25  # blobs are easy: the champion is confident
    assert all(o.label == label for o, (_, label) in zip(report.outcomes, fresh, strict=True) if o in auto)
    with loop._ctx.store.unit_of_work() as uow:  # lineage: the prediction knows its model
        pred = uow.predictions.for_item(auto[0].item_id)[-1]
        assert pred.model_version_id == outcome.model.id
        entry = outcome.dataset.entries[0]
        assert uow.datasets.containing_item(entry.item_id) == [outcome.dataset.id]
        resolution = next(r for r in uow.resolutions.for_item(entry.item_id))
        assert resolution.id == entry.resolution_id


def test_retrain_is_reproducible(loop: Loop) -> None:
    data = points(45)
    loop.ingest([r for r, _ in data])
    label_all(loop, {r["external_id"]: label for r, label in data})
    first = loop.retrain()
    second = loop.retrain(dataset_id=first.dataset.id)
    probe = [r["payload"] for r, _ in points(20, seed=7, start=500)]
    loop.promote(first.model.version)
    p1 = loop.predict(probe)
    loop.promote(second.model.version)
    np.testing.assert_array_equal(p1, loop.predict(probe))
    assert second.gate.test == "not_significantly_worse" and second.gate.delta == 0.0


def test_retrain_needs_labels(loop: Loop) -> None:
    with pytest.raises(Invalid, match="training labels"):
        loop.retrain()
    assert loop.maybe_retrain() is None


def test_a_due_retrain_waits_while_the_training_split_is_short(loop: Loop) -> None:
    """Resolved labels reach retrain.min_labels before the training split does (30 % evaluate):
    maybe_retrain waits (None) instead of failing, retrain() says why, and both train later."""
    data = points(12, seed=3)
    loop.ingest([r for r, _ in data])
    label_all(loop, {r["external_id"]: y for r, y in data})
    assert loop.status().resolutions == 12 and loop.retrain_due()
    with pytest.raises(TooFewLabels, match="has 8 training labels in 3 classes; need ≥ 10"):
        loop.retrain()
    assert loop.maybe_retrain() is None and loop.status().champion is None
    more = points(10, seed=4, start=100)
    loop.ingest([r for r, _ in more])
    label_all(loop, {r["external_id"]: y for r, y in more})
    outcome = loop.maybe_retrain()
    assert outcome is not None and outcome.model.version == 1


def test_promote_unknown_or_rejected(loop: Loop, store: SqlStore) -> None:
    with pytest.raises(NotFound):
        loop.promote(42)
    with store.unit_of_work() as uow:
        rejected = uow.models.add(loop.project.id, ModelStatus.REJECTED, None, "h", 0, {}, b"")
    with pytest.raises(Conflict, match="rejected"):
        loop.promote(rejected.version)


def test_a_model_that_raises_loses_nothing(loop: Loop) -> None:
    def broken(X: Any) -> Any:
        raise RuntimeError("GPU on fire")

    version = loop.use_model(broken, force=True, persist=False)
    assert version.status is ModelStatus.CHAMPION
    report = loop.ingest([r for r, _ in points(4)])
    assert {(o.route, o.tier, o.reason) for o in report.outcomes} == {(Route.REVIEW, 1, "model_error")}
    with loop._ctx.store.unit_of_work() as uow:
        pred = uow.predictions.for_item(report.outcomes[0].item_id)[0]
    assert pred.error == "model_error: RuntimeError: GPU on fire" and pred.label is None
    assert loop.status().items == 4 and loop.status().open_tasks_by_tier == {1: 4}


def test_bring_your_own_estimator(loop: Loop) -> None:
    X = np.array([[0, 0], [12, 0], [0, 12]] * 5, dtype=float)
    model = LogisticRegression().fit(X, ["a", "b", "c"] * 5)
    loop.use_model(model, force=True)
    report = loop.ingest([r for r, _ in points(6)])
    assert [o.label for o in report.outcomes] == ["a", "b", "c"] * 2
    # the estimator was stored safely, so a new process (a new Loop) can serve it
    fresh = Workspace(loop._ctx.store).project("toy")
    assert fresh.predict([{"x": 12.0, "y": 0.0}]).argmax() == 1


def test_callable_model_with_bad_output_goes_to_review(loop: Loop) -> None:
    loop.use_model(lambda X: np.full((len(X), 3), np.nan), force=True, persist=False)
    report = loop.ingest([r for r, _ in points(2)])
    assert {o.reason for o in report.outcomes} == {"model_error"}


def test_workspace_projects(store: SqlStore) -> None:
    ws = Workspace(store)
    ws.create_project(CONFIG)
    with pytest.raises(Conflict):
        ws.create_project(CONFIG)
    with pytest.raises(NotFound, match="nope"):
        ws.project("nope")
    with pytest.raises(Invalid, match="labels"):
        ws.create_project({"name": "x", "labels": ["only"]})
    assert [p.name for p in ws.projects()] == ["toy"]


def test_task_states_after_resolution(loop: Loop) -> None:
    loop.ingest([points(1)[0][0]])
    for who in ("ann1", "ann2"):
        a = loop.next_task(who)
        assert a is not None
        loop.submit(a.lease.id, who, "a")
    with loop._ctx.store.unit_of_work() as uow:
        (task,) = uow.tasks.for_item(1)
    assert task.status is TaskStatus.RESOLVED and task.closed_at is not None


def test_concurrent_final_submissions_resolve_every_task(store: SqlStore) -> None:
    """Two annotators finishing the same overlap-2 task at once: exactly one resolution each."""
    loop = Workspace(store).create_project(CONFIG)
    n = 12
    loop.ingest([r for r, _ in points(n)])
    pairs = []
    for _ in range(n):
        a, b = loop.next_task("ann1"), loop.next_task("ann2")
        assert a is not None and b is not None and a.task.id == b.task.id
        pairs.append((a, b))
    barrier = threading.Barrier(2)

    def finish(who: str, lease_id: int) -> None:
        barrier.wait()
        loop.submit(lease_id, who, "a")

    for a, b in pairs:
        threads = [
            threading.Thread(target=finish, args=(w, x.lease.id)) for w, x in (("ann1", a), ("ann2", b))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    status = loop.status()
    assert status.annotations == 2 * n and status.resolutions == n and status.open_tasks_by_tier == {}


def test_voted_high_stakes_label_goes_to_the_expert_tier(store: SqlStore) -> None:
    config = {**CONFIG, "routing": {**CONFIG["routing"], "high_stakes_labels": ["c"]}}
    loop = Workspace(store).create_project(config)
    loop.ingest([points(1)[0][0]])
    result = None
    for who in ("ann1", "ann2"):
        a = loop.next_task(who)
        assert a is not None
        result = loop.submit(a.lease.id, who, "c")
    assert result is not None and result.resolution is None
    assert result.escalated_to is not None
    assert (result.escalated_to.tier, result.escalated_to.reason) == (3, "high_stakes")
    expert = loop.next_task("expert", tiers=[3])
    assert expert is not None
    final = loop.submit(expert.lease.id, "expert", "c").resolution
    assert final is not None and final.label == "c"  # at the high-stakes tier the vote stands


@pytest.mark.parametrize(("method", "with_model"), [("dawid_skene", True), ("one_coin_dawid_skene", False)])
def test_dawid_skene_resolution_and_escalation(store: SqlStore, method: str, with_model: bool) -> None:
    config = {
        **CONFIG,
        "consensus": {"method": method, "min_posterior": 0.9, "model_as_annotator": with_model},
        "tiers": [
            {"tier": 1, "name": "bulk", "required_annotations": 2},
            {"tier": 2, "name": "expert", "required_annotations": 1},
        ],
        "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    }
    loop = Workspace(store).create_project(config)
    loop.use_model(lambda X: np.tile([0.6, 0.3, 0.1], (len(X), 1)), force=True, persist=False)  # always "a"
    loop.ingest([r for r, _ in points(2)])

    def answer(who: str, label: str) -> Any:
        a = loop.next_task(who)
        assert a is not None
        return loop.submit(a.lease.id, who, label)

    answer("ann1", "a")
    agreed = answer("ann2", "a")  # p0: both annotators and the model say "a"
    assert agreed.resolution is not None
    assert (agreed.resolution.label, agreed.resolution.method) == ("a", method)
    answer("ann1", "b")
    split = answer("ann2", "c")  # p1: three different answers, no label reaches 0.9
    assert split.resolution is None and split.escalated_to is not None
    assert (split.escalated_to.tier, split.escalated_to.reason) == (2, "disputed")
    final = answer("lead", "b").resolution  # top tier: the posterior mode is final
    assert final is not None and final.method in {method, f"{method}_top_tier"}
    assert final.label == "b" and final.n_annotations == 1


def test_retrain_on_a_schedule(store: SqlStore, clock: ManualClock) -> None:
    policy = {"every_n_labels": 1000, "min_labels": 10, "eval_fraction": 0.3, "every_hours": 24}
    review_all = {"accept_threshold": 1.0, "audit_rate": 0.0}
    loop = Workspace(store, clock).create_project({**CONFIG, "retrain": policy, "routing": review_all})
    data = points(45)
    truth = {r["external_id"]: label for r, label in data}
    loop.ingest([r for r, _ in data[:30]])
    label_all(loop, truth)
    assert loop.retrain_due()  # no model yet: the schedule is due at once
    first = loop.maybe_retrain()
    assert first is not None
    loop.ingest([r for r, _ in data[30:]])
    label_all(loop, truth)
    clock.now = first.model.created_at + timedelta(hours=23)
    assert not loop.retrain_due()  # 15 new labels, far below 1000, and not a day yet
    clock.now = first.model.created_at + timedelta(hours=24)
    assert loop.retrain_due()
    assert loop.maybe_retrain() is not None
    clock.now += timedelta(hours=48)
    assert not loop.retrain_due()  # a day passed, but no label changed since
