"""Drift monitoring in the loop: a seeded shift is detected and acted on, a stable stream is not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from loopwright import Conflict, Loop, Workspace
from loopwright.domain import Route
from loopwright.loop import audit
from loopwright.store.sql import SqlStore

CONFIG: dict[str, Any] = {
    "name": "drifty",
    "labels": ["a", "b"],
    "features": ["x", "y"],
    "routing": {
        "audit_rate": 0.3,
        "certify": {"epsilon": 0.1, "delta": 0.1},
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
    "retrain": {"every_n_labels": 1000, "min_labels": 5},
    "drift": {"window": 100, "review_sample": 10},
}


def model(X: NDArray[np.float64]) -> NDArray[np.float64]:
    p_b = 1.0 / (1.0 + np.exp(-4.0 * X[:, 0]))
    return np.column_stack([1.0 - p_b, p_b])


def batch(start: int, n: int, shift: float, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    xy = rng.normal(0.0, 1.0, (n, 2)) + np.array([shift, 0.0])
    return [
        {"external_id": f"i{start + k}", "payload": {"x": float(x), "y": float(y)}}
        for k, (x, y) in enumerate(xy)
    ]


def label_open(loop: Loop) -> int:
    done = 0
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", "b" if a.item.payload["x"] > 0 else "a")
        done += 1
    return done


@pytest.fixture
def loop(store: SqlStore) -> Loop:
    loop = Workspace(store).create_project(CONFIG)
    loop.use_model(model, force=True, persist=False)
    return loop


def test_a_shift_is_detected_sampled_into_review_and_recertified(loop: Loop, store: SqlStore) -> None:
    with pytest.raises(Conflict, match="two windows of 100 items; the project has 0"):
        loop.check_drift()
    loop.ingest(batch(0, 200, 0.0, seed=1))
    assert label_open(loop) == 200  # everything is reviewed while nothing is certified
    stable = loop.check_drift()
    assert not stable.drift and stable.sampled_tasks == 0 and stable.data is not None
    assert stable.data["drifted"] == [] and stable.data["domain_classifier_auc"] < 0.6
    assert not loop.retrain_due()
    before = loop.certify()
    assert before is not None and before.threshold is not None and before.n_errors == 0

    report = loop.ingest(batch(200, 100, 2.0, seed=2))  # x moves by two standard deviations
    auto = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
    drifted = loop.check_drift()
    assert drifted.drift and drifted.window == (201, 300)
    assert drifted.data is not None and drifted.data["drifted"] == ["x"]
    assert drifted.data["domain_classifier_auc"] > 0.9
    assert drifted.prediction is not None and drifted.prediction["drift"]  # far more "b" now
    assert len(auto) > 10 and drifted.sampled_tasks == 10
    with store.unit_of_work() as uow:
        sampled = [t for o in auto for t in uow.tasks.for_item(o.item_id) if t.reason == "drift"]
        xs = sorted(uow.items.get(t.item_id).payload["x"] for t in sampled)
    assert len(sampled) == 10 and all(t.priority == 1.5 for t in sampled)
    assert xs[-1] - xs[0] > 1.5  # spread over the window (k-center), not bunched together
    actions = [e.action for e in loop.events(limit=1000)]
    assert actions.count("drift.checked") == 1 and actions.count("drift.detected") == 1

    after = loop.certify()  # audits from before the drift no longer count
    assert after is not None and after.n_audited == 0 and after.threshold is None
    assert loop.status().routing.startswith("uncertified")
    label_open(loop)
    assert loop.retrain_due()  # labels arrived, and drift was detected after the last model


def test_a_drifted_batch_is_caught_before_routing(store: SqlStore) -> None:
    loop = Workspace(store).create_project({**CONFIG, "drift": {"window": 100, "check_on_ingest": True}})
    loop.use_model(model, force=True, persist=False)
    first = loop.ingest(batch(0, 200, 0.0, seed=1))
    assert first.drift is None  # nothing before it to compare with
    label_open(loop)
    calm = loop.ingest(batch(200, 100, 0.0, seed=4))
    assert calm.drift is not None and not calm.drift["drift"]
    assert calm.count(route=Route.AUTO_ACCEPT) > 50  # certified on the stable world
    label_open(loop)
    shifted = loop.ingest(batch(300, 100, 2.0, seed=2))
    assert shifted.drift is not None and shifted.drift["drifted"] == ["x"]
    assert shifted.count(route=Route.AUTO_ACCEPT) == 0  # the certificate no longer holds
    assert {o.reason for o in shifted.outcomes} <= {"audit", "uncertified"}
    detected = [e for e in loop.events(limit=1000) if e.action == "drift.detected"]
    assert [(e.data["window_start_item_id"], e.data["window_end_item_id"]) for e in detected] == [(301, 400)]
    cert = loop.certify()
    assert cert is not None and cert.n_audited == 0 and cert.threshold is None


def _alarm_then(store: SqlStore, alarm: float, then: float, confirm: bool = True) -> tuple[Loop, Any, int]:
    """A stable world certified, an alarm on a batch shifted by ``alarm`` (0: a false alarm,
    seeded), then a batch shifted by ``then``: its report, and how far it moved the version of
    the audit evidence (no answer comes in between)."""
    drift = {"window": 100, "check_on_ingest": True, "confirm": confirm}
    loop = Workspace(store).create_project({**CONFIG, "name": f"drifty-{confirm}", "drift": drift})
    loop.use_model(model, force=True, persist=False)
    loop.ingest(batch(0, 200, 0.0, seed=1))
    label_open(loop)
    loop.ingest(batch(200, 100, 0.0, seed=4))
    label_open(loop)
    first = loop.ingest(batch(300, 100, alarm, seed=5 if alarm == 0 else 2))
    assert first.drift is not None and first.drift["drift"] and first.alarm_confirmed is None
    assert first.count(route=Route.AUTO_ACCEPT) == 0  # the alarm's own batch goes to review
    label_open(loop)
    before = _evidence_version(loop)
    report = loop.ingest(batch(400, 100, then, seed=7))
    return loop, report, _evidence_version(loop) - before


def _evidence_version(loop: Loop) -> int:
    with loop._ctx.store.unit_of_work() as uow:
        return uow.certifications.evidence_version(loop.project.id)


def _settlements(loop: Loop) -> list[tuple[str, int, int]]:
    return [
        (e.action, e.data["window_start_item_id"], e.data["window_end_item_id"])
        for e in loop.events(limit=2000)
        if e.action in ("drift.confirmed", "drift.retracted")
    ]


def test_a_false_alarm_the_next_batch_does_not_confirm_is_retracted(store: SqlStore) -> None:
    loop, after, moved = _alarm_then(store, alarm=0.0, then=0.0)  # seed 5: y "drifts" by chance
    assert after.alarm_confirmed is False
    assert moved == 1  # the retraction: a certificate counts the evidence from before the alarm again
    assert after.drift is not None and not after.drift["drift"]
    assert _settlements(loop) == [("drift.retracted", 301, 400)]
    assert after.count(route=Route.AUTO_ACCEPT) > 50  # the evidence from before the alarm counts again
    cert = loop.certify()
    assert cert is not None and cert.threshold is not None and cert.n_audited > 80
    board = loop.dashboard()  # the lead sees the alarm, marked as retracted
    assert [(p.window, p.settled) for p in board.drift if p.detected] == [((301, 400), "retracted")]
    assert board.totals["drift_retracted"] == 1


def test_a_lasting_shift_is_confirmed_by_the_next_batch(store: SqlStore) -> None:
    loop, after, moved = _alarm_then(store, alarm=2.0, then=2.0)
    assert after.alarm_confirmed is True and moved == 0  # a confirmation changes no evidence
    assert after.drift is not None and not after.drift["drift"]  # like the batch before it
    assert _settlements(loop) == [("drift.confirmed", 301, 400)]
    assert [p.settled for p in loop.dashboard().drift if p.detected] == ["confirmed"]
    cert = loop.certify()  # only the audits from the drifted window on
    assert cert is not None and 20 < cert.n_audited < 40


def test_without_confirmation_a_false_alarm_stands(store: SqlStore) -> None:
    loop, after, moved = _alarm_then(store, alarm=0.0, then=0.0, confirm=False)
    assert after.alarm_confirmed is None and _settlements(loop) == [] and moved == 0
    cert = loop.certify()  # the evidence is still only what came since the alarm
    assert cert is not None and 20 < cert.n_audited < 40


@pytest.mark.parametrize(
    ("pattern", "standing"),
    [
        ("A", "A"),  # an alarm nobody settled stands
        ("A R", None),  # ... unless the next batch retracted it
        ("A B R", "A"),  # R retracts the newest alarm, B: A stands again
        ("A R B", "B"),  # a retraction of an older alarm leaves the newer one standing
        ("A R B R", None),
        ("A B R R", "A"),  # B retracted twice (two processes at once): A still stands
    ],
)
def test_the_standing_alarm_skips_retracted_ones(store: SqlStore, pattern: str, standing: str | None) -> None:
    Workspace(store).create_project(CONFIG)
    with store.unit_of_work() as uow:
        pid = uow.projects.get(CONFIG["name"]).id
        alarms: dict[str, int] = {}
        newest = 0
        for step in pattern.split():
            if step == "R":  # retracts the newest alarm at the time
                uow.events.add(pid, "t", audit.DRIFT_RETRACTED, "project", "p", {"alarm_event_id": newest})
            else:
                newest = alarms[step] = uow.events.add(pid, "t", audit.DRIFT_DETECTED, "project", "p").id
        found = audit.last_drift(uow, pid)
    assert (found and found.id) == (standing and alarms[standing])


def test_concept_drift_on_the_audit_stream(store: SqlStore) -> None:
    config = {**CONFIG, "routing": {**CONFIG["routing"], "audit_rate": 1.0}}  # every item audited
    loop = Workspace(store).create_project(config)
    loop.use_model(model, force=True, persist=False)
    loop.ingest(batch(0, 200, 0.0, seed=1))
    label_open(loop)  # labelled by the model's own rule: no error
    loop.ingest(batch(200, 100, 0.0, seed=5))  # the same inputs, but now the answer flips
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", "a" if a.item.payload["x"] > 0 else "b")
    check = loop.check_drift()
    assert check.data is not None and check.data["drifted"] == []  # the inputs did not move
    assert check.drift and check.concept_changes and min(check.concept_changes) >= 201
    assert check.performance is not None and check.performance["audit"] is not None
    audit = check.performance["audit"]
    assert audit["audited"] == 0.0 and not audit["consistent"]  # the model expects ~0.85
    assert check.performance["estimated"]["expected"] > 0.8
    detected = [e for e in loop.events(limit=1000) if e.action == "drift.detected"]
    assert len(detected) == 1 and detected[0].data["concept_drift"] is True
