"""The demo's economics: seeded augmentation, the adaptive audit rate, synthetic items never in eval."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from loopwright import Workspace
from loopwright.cli.demo import demo_stream
from loopwright.config import ProjectConfig
from loopwright.domain import Split
from loopwright.learning import default_estimator
from loopwright.learning.augment import apply_transform, augment, draw_transform
from loopwright.loop import audit
from loopwright.store.sql import SqlStore

IDENTITY = {
    "rotate_deg": 0.0,
    "scale": 1.0,
    "shift_x": 0.0,
    "shift_y": 0.0,
    "noise_sigma": 0.0,
    "noise_seed": 1,
}
CONFIG: dict[str, Any] = {
    "name": "economics",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {
        "audit_rate": 0.5,
        "audit_target": 20,
        "audit_floor": 0.1,
        "certify": {"epsilon": 0.1, "delta": 0.1},
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
    "retrain": {"eval_fraction": 0.5},
}


def model(X: NDArray[np.float64]) -> NDArray[np.float64]:
    p_b = np.clip(0.5 + X[:, 0] / 20.0, 0.0, 1.0)
    return np.column_stack([1.0 - p_b, p_b])


def items(start: int, n: int, **metadata: Any) -> list[dict[str, Any]]:
    return [
        {"external_id": f"x{i}", "payload": {"x": (i * 7919 % 2001 - 1000) / 100}, "metadata": metadata}
        for i in range(start, start + n)
    ]


def test_augmentation_is_recorded_and_reproducible() -> None:
    image = np.arange(64, dtype=np.float64) % 17
    assert apply_transform(image, IDENTITY).tolist() == image.tolist()
    right = apply_transform(image, {**IDENTITY, "shift_x": 1.0}).reshape(8, 8)
    assert right[:, 1:].tolist() == image.reshape(8, 8)[:, :-1].tolist() and not right[:, 0].any()
    a, ta = augment(image, np.random.default_rng(3))
    b, tb = augment(image, np.random.default_rng(3))
    assert ta == tb and a.tolist() == b.tolist() == apply_transform(image, ta).tolist()
    assert a.min() >= 0.0 and a.max() <= 16.0 and a.tolist() != image.tolist()
    t = draw_transform(np.random.default_rng(0))
    assert abs(t["rotate_deg"]) <= 10 and 0.9 <= t["scale"] <= 1.1 and 0 <= t["noise_sigma"] <= 0.8


def test_demo_stream_marks_synthetic_items_and_never_uses_held_out_sources() -> None:
    originals = np.arange(100, 200)
    stream = demo_stream(originals, 1000, seed=0)
    assert len(stream) == 1000 and len({s.external_id for s in stream}) == 1000
    real = [s for s in stream if s.transform is None]
    assert sorted(s.source for s in real) == originals.tolist() and all(s.metadata() == {} for s in real)
    synthetic = [s for s in stream if s.transform is not None]
    assert len(synthetic) == 900 and {s.source for s in synthetic} <= set(originals.tolist())
    meta = synthetic[0].metadata()
    assert meta["synthetic"] is True and meta["source"] == f"digit-{synthetic[0].source}"
    assert meta["transform"] == synthetic[0].transform
    again = demo_stream(originals, 1000, seed=0)
    assert [(s.external_id, s.transform) for s in again] == [(s.external_id, s.transform) for s in stream]


def test_the_image_default_is_a_calibrated_svm() -> None:
    config = ProjectConfig.from_dict({"name": "i", "labels": ["0", "1"], "modality": "image"})
    estimator = default_estimator(config, seed=0)
    assert type(estimator).__name__ == "ImageSVC" and estimator.get_params()["probability"] is True


def test_the_audit_rate_falls_as_evidence_accumulates(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    loop.use_model(model, force=True, persist=False)
    first = loop.ingest(items(0, 40))
    n_first = sum(o.reason == "audit" for o in first.outcomes)
    with store.unit_of_work() as uow:
        rate = audit.rate(loop._ctx, uow)
    assert 0 < n_first < 40 and rate == pytest.approx(max(0.1, 0.5 - min(1.0, n_first / 20) * 0.4))
    second = loop.ingest(items(40, 400))
    n_second = sum(o.reason == "audit" for o in second.outcomes)
    assert n_second / 400 == pytest.approx(rate, abs=0.05)  # the draws are uniform
    with store.unit_of_work() as uow:
        assert audit.rate(loop._ctx, uow) == pytest.approx(0.1)  # the target is reached: the floor


def test_synthetic_items_never_join_the_eval_split(store: SqlStore) -> None:
    config = {**CONFIG, "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}}
    loop = Workspace(store).create_project(config)
    loop.ingest(items(0, 30, synthetic=True, source="x0"))
    loop.ingest(items(30, 30))
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", "a" if a.item.payload["x"] < 0 else "b")
    version = loop.snapshot()
    with store.unit_of_work() as uow:
        synthetic = {i.id for i in uow.items.get_many([e.item_id for e in version.entries]) if i.metadata}
    assert len(synthetic) == 30 and len(version.entries) == 60
    assert all(e.split is Split.TRAIN for e in version.entries if e.item_id in synthetic)
    assert any(e.split is Split.EVAL for e in version.entries if e.item_id not in synthetic)


def test_augmented_training_adds_copies_only_while_labels_are_scarce() -> None:
    from sklearn.linear_model import LogisticRegression

    from loopwright.learning.augment import AugmentedTraining

    recipe = AugmentedTraining(LogisticRegression(max_iter=2000), scarce=600, max_copies=3)
    assert [recipe.copies_for(n) for n in (0, 100, 150, 200, 300, 599, 600)] == [0, 3, 3, 2, 1, 1, 0]
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 16, size=(40, 64))
    y = np.array(["a", "b"] * 20)
    fitted = recipe.fit(X, y)  # three seeded draws of copies, each fitted, probabilities averaged
    members = [m.estimator for m in fitted.estimators_]
    assert [type(m) for m in members] == [LogisticRegression] * 3 and recipe.synthetic_ == 3 * 120
    assert all(m is not recipe.estimator for m in members)  # each draw fits its own clone
    assert len({m.coef_.tobytes() for m in members}) == 3  # three different draws
    mean = np.mean([m.predict_proba(X) for m in members], axis=0)
    assert np.array_equal(fitted.predict_proba(X), mean) and fitted.classes_.tolist() == ["a", "b"]
    assert fitted.predict(X).tolist() == np.array(["a", "b"])[mean.argmax(axis=1)].tolist()
    again = AugmentedTraining(LogisticRegression(max_iter=2000), scarce=600, max_copies=3).fit(X, y)
    assert np.array_equal(again.predict_proba(X), mean)  # seeded: the same copies every time
    one = AugmentedTraining(LogisticRegression(max_iter=2000), scarce=600, max_copies=3, draws=1)
    single = one.fit(X, y)
    assert isinstance(single, LogisticRegression) and one.synthetic_ == 120
    assert single.coef_.tolist() == members[0].coef_.tolist()  # the first draw alone
    plenty = AugmentedTraining(LogisticRegression(max_iter=2000), scarce=30)
    plenty.fit(X, y)
    assert plenty.synthetic_ == 0
    tabular = AugmentedTraining(LogisticRegression(max_iter=2000), scarce=600)
    tabular.fit(X[:, :5], y)  # not a square image: nothing to transform, nothing added
    assert tabular.synthetic_ == 0


def test_the_review_budget_leaves_the_rest_pending(store: SqlStore) -> None:
    from loopwright.simulate import team, work

    config = {**CONFIG, "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}}
    loop = Workspace(store).create_project(config)
    loop.ingest(items(0, 30))
    people = team(["a", "b"], {1: 3}, {1: 1.0})
    first = work(loop, people, lambda ext: "a", budget={1: 12})
    assert first.annotations == 12 and first.by_tier == {1: 12}
    assert loop.status().open_tasks_by_tier == {1: 18}  # pending: neither accepted nor labelled
    second = work(loop, people, lambda ext: "a", budget={1: 100})
    assert second.annotations == 18 and loop.status().open_tasks_by_tier == {}


def test_audited_items_without_a_model_go_to_the_audit_tier() -> None:
    from loopwright.config import RoutingConfig
    from loopwright.routing import ThresholdRouter

    config = RoutingConfig(audit_rate=0.5, audit_tier=3, fallback_tier=1)
    choices = ThresholdRouter(config, threshold=None).route([None, None], [None, None], draws=[0.1, 0.9])
    assert [(c.tier, c.audit, c.reason) for c in choices] == [(3, True, "no_model"), (1, False, "no_model")]


def test_a_held_threshold_survives_a_slip_at_the_top() -> None:
    from loopwright.routing import certify

    conf = np.linspace(1.0, 0.5, 400)  # highest first
    correct = np.ones(400, dtype=bool)
    correct[[0, 1]] = False  # two slips among the most confident
    fresh = certify(conf, correct, 0.02, 0.05, min_evidence=236)
    assert fresh.threshold is None and (fresh.n_evidence, fresh.n_errors) == (236, 2)
    held = certify(conf, correct, 0.02, 0.05, min_evidence=236, start_at=float(conf[319]))
    assert held.threshold == pytest.approx(conf[-1]) and (held.n_evidence, held.n_errors) == (400, 2)
    too_high = certify(conf, correct, 0.02, 0.05, min_evidence=236, start_at=float(conf[100]))
    assert too_high.threshold is None and too_high.n_evidence == 149  # the scan starts where it is told


def test_the_bulk_team_shrinks_while_a_threshold_is_certified() -> None:
    from loopwright.cli.demo import REVIEW_BUDGET, round_budget

    assert round_budget(REVIEW_BUDGET, certified=False) == {1: 45, 2: 15, 3: 140}
    assert round_budget(REVIEW_BUDGET, certified=True) == {1: 20, 2: 15, 3: 140}
    assert round_budget({1: 20, 4: 7}, certified=True) == {1: 20, 4: 7}  # a cap, never a raise
    assert round_budget(None, certified=True) is None


def test_a_large_project_is_consolidated_against_a_periodic_fit() -> None:
    from types import SimpleNamespace

    from loopwright.loop.resolve import FULL_BELOW, _Fit

    def fit(n: int, since: int) -> _Fit:
        return _Fit(SimpleNamespace(n_answers_=n), since)  # type: ignore[arg-type]

    assert FULL_BELOW == 200
    assert [fit(199, 0).due(), fit(200, 0).due(), fit(200, 9).due(), fit(200, 10).due()] == [
        True,
        False,
        False,
        True,
    ]
    assert [fit(1000, 49).due(), fit(1000, 50).due()] == [False, True]  # 5 % of the answers
