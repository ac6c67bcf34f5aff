"""The pure core: exact outputs on small, hand-checked inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from loopwright.config import RoutingConfig, TierBand
from loopwright.consensus import MajorityVote, majority
from loopwright.domain import DatasetEntry, GateRule, Route, Split, content_hash
from loopwright.errors import Invalid
from loopwright.learning import build_version, dump_model, gate, load_model, predict_proba_by_label, split_for
from loopwright.learning.gate import mcnemar_one_sided
from loopwright.routing import ThresholdRouter, entropy, margin, max_probability

P = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])


def test_confidence_scores_exact() -> None:
    np.testing.assert_allclose(max_probability(P), [0.7, 0.4, 1.0])
    np.testing.assert_allclose(margin(P), [0.5, 0.0, 1.0])
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(entropy(P), [expected, -(2 * 0.4 * np.log(0.4) + 0.2 * np.log(0.2)), 0.0])
    with pytest.raises(ValueError, match="2-D"):
        margin([0.5, 0.5])


def test_majority_reports_ties_and_agreement() -> None:
    assert majority(["a", "b", "a"]).label == "a"
    assert majority(["a", "b", "a"]).agreement == pytest.approx(2 / 3)
    tie = majority(["b", "a"])
    assert (tie.label, tie.tie, tie.agreement) == ("b", True, 0.5)
    with pytest.raises(Invalid):
        majority([])


def test_majority_vote_aggregator() -> None:
    mv = MajorityVote().fit(
        ["q1", "q1", "q1", "q2", "q2"], ["w1", "w2", "w3", "w1", "w2"], ["x", "y", "x", "y", "y"]
    )
    assert mv.items_.tolist() == ["q1", "q2"]
    assert mv.labels_.tolist() == ["x", "y"]
    np.testing.assert_allclose(mv.probas_, [[2 / 3, 1 / 3], [0.0, 1.0]])
    with pytest.raises(Invalid, match="'z'"):
        MajorityVote(classes=["x", "y"]).fit(["q"], ["w"], ["z"])


def _router(**kw: object) -> ThresholdRouter:
    cfg = RoutingConfig(
        accept_threshold=0.9,
        audit_rate=0.1,
        bands=[TierBand(min_confidence=0.5, tier=1), TierBand(min_confidence=0.0, tier=2)],
        **kw,  # type: ignore[arg-type]
    )
    return ThresholdRouter(cfg)


def test_router_bands_audit_and_fallback() -> None:
    choices = _router().route(
        ["a", "a", "b", "c", None], [0.95, 0.95, 0.7, 0.2, None], draws=[0.5, 0.05, 0.5, 0.5, 0.5]
    )
    assert [(c.route, c.tier, c.reason, c.audit) for c in choices] == [
        (Route.AUTO_ACCEPT, None, "confident", False),
        (Route.REVIEW, 1, "audit", True),
        (Route.REVIEW, 1, "low_confidence", False),
        (Route.REVIEW, 2, "low_confidence", False),
        (Route.REVIEW, 1, "no_model", False),
    ]
    assert choices[3].priority == pytest.approx(0.8)


def test_router_audits_whatever_the_confidence_and_uncertified_means_review() -> None:
    cfg = RoutingConfig(
        audit_rate=0.1,
        audit_tier=2,
        bands=[TierBand(min_confidence=0.5, tier=1), TierBand(min_confidence=0.0, tier=2)],
    )
    labels, confidences, draws = ["a", "a", "b"], [0.99, 0.3, 0.99], [0.05, 0.05, 0.5]
    certified = ThresholdRouter(cfg, threshold=0.95).route(labels, confidences, draws=draws)
    assert [(c.route, c.tier, c.reason, c.audit) for c in certified] == [
        (Route.REVIEW, 2, "audit", True),  # confident, audited: to the audit tier
        (Route.REVIEW, 2, "audit", True),  # unconfident items are audited too
        (Route.AUTO_ACCEPT, None, "confident", False),
    ]
    uncertified = ThresholdRouter(cfg, threshold=None).route(labels, confidences, draws=draws)
    assert [(c.route, c.tier, c.reason) for c in uncertified][2] == (Route.REVIEW, 1, "uncertified")


def test_router_high_stakes_overrides_confidence() -> None:
    choice = _router(high_stakes_labels=["fraud"]).route(["fraud"], [0.99], draws=[0.9])[0]
    assert (choice.route, choice.tier, choice.reason) == (Route.REVIEW, 3, "high_stakes")


def test_split_is_stable_and_near_fraction() -> None:
    hashes = [content_hash({"i": i}) for i in range(4000)]
    splits = [split_for(h, 0.2) for h in hashes]
    assert splits == [split_for(h, 0.2) for h in hashes]
    assert 0.18 < splits.count(Split.EVAL) / len(splits) < 0.22


def test_dataset_version_id_is_content_address() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    entries = [DatasetEntry(i, content_hash(i), str(i % 2), "review", i, Split.TRAIN) for i in range(5)]
    v1 = build_version(1, entries, None, now)
    v2 = build_version(1, list(reversed(entries)), "parent", datetime(2027, 1, 1, tzinfo=UTC))
    assert v1.id == v2.id and len(v1.id) == 64
    assert v1.label_counts == {"0": 3, "1": 2}
    relabelled = [*entries[:-1], DatasetEntry(4, content_hash(4), "1", "review", 4, Split.TRAIN)]
    assert build_version(1, relabelled, None, now).id != v1.id


def test_gate_first_model_against_baseline() -> None:
    y = ["a"] * 6 + ["b"] * 4
    first = gate(y, ["a"] * 6 + ["b"] * 4, None, min_eval_items=5)
    assert (first.passed, first.test, first.baseline_accuracy, first.delta) == (True, "baseline", 0.6, 0.4)
    assert not gate(y, ["a"] * 10, None, min_eval_items=5).passed  # no better than always "a"
    few = gate(["a"], ["a"], None, min_eval_items=5)
    assert not few.passed and "only 1" in few.reason


def test_gate_rules_on_paired_predictions() -> None:
    y = ["a"] * 40
    champion = ["a"] * 30 + ["b"] * 10  # 0.75
    slightly_worse = ["a"] * 28 + ["b"] * 12  # 0.70: 0 wins, 2 losses
    much_better = ["a"] * 40  # 1.00: 10 wins, 0 losses
    r = gate(y, slightly_worse, champion, GateRule.NOT_WORSE)
    assert (r.passed, r.wins, r.losses, r.p_value) == (False, 0, 2, None)
    r = gate(y, slightly_worse, champion, GateRule.NOT_SIGNIFICANTLY_WORSE)
    assert r.passed and r.p_value == pytest.approx(0.25)  # P(X ≤ 0 | n=2, 1/2)
    r = gate(y, much_better, champion, GateRule.SIGNIFICANTLY_BETTER)
    assert r.passed and r.p_value == pytest.approx(0.5**10) and r.delta == pytest.approx(0.25)
    r = gate(y, champion, champion, GateRule.SIGNIFICANTLY_BETTER)
    assert not r.passed and r.p_value == 1.0 and "failed significantly_better" in r.reason


def test_gate_fails_on_a_slice_regression_or_a_calibration_collapse() -> None:
    y = ["a"] * 20 + ["b"] * 20
    champion = ["b"] * 8 + ["a"] * 12 + ["b"] * 20  # wrong on 8 a's
    challenger = ["a"] * 20 + ["a"] * 8 + ["b"] * 12  # wrong on 8 b's: 8 wins, 8 losses overall
    slices = {"class": y, "source": ["review"] * 40}
    r = gate(y, challenger, champion, slices=slices)
    assert r.p_value == pytest.approx(0.5982, abs=1e-4)  # overall: nothing significant
    b = next(s for s in r.slices if s["slice"] == "b")
    assert (b["n"], b["wins"], b["losses"], b["regressed"]) == (20, 0, 8, True)  # 0.5**8 < 0.05 / 3
    assert not r.passed and r.reason.endswith("significant regression on class=b")
    assert [s["regressed"] for s in r.slices] == [False, True, False]
    calm = gate(y, challenger, champion, ece=(0.15, 0.1))
    assert calm.passed
    hot = gate(y, challenger, champion, ece=(0.25, 0.1), max_ece_increase=0.1)
    assert not hot.passed and "calibration collapsed: ECE 0.250 vs champion 0.100" in hot.reason


def test_a_significantly_more_accurate_challenger_passes_despite_a_calibration_rise() -> None:
    """After a drift a challenger trained on few labels is underconfident yet far better: an ECE
    rise fails it only when it is not significantly more accurate (p_better ≥ alpha)."""
    y = ["a"] * 20 + ["b"] * 20
    champion = ["b"] * 10 + ["a"] * 10 + ["b"] * 20  # wrong on 10 a's
    much_better = list(y)  # 10 wins, 0 losses: p_better = 0.5**10
    r = gate(y, much_better, champion, ece=(0.40, 0.05), max_ece_increase=0.1)
    assert (r.passed, r.wins, r.losses, r.ece) == (True, 10, 0, (0.40, 0.05))
    assert "calibration collapsed" not in r.reason
    assert r.reason == (
        "passed not_significantly_worse: accuracy 1.000 vs champion 0.750, 10 wins / 0 losses, "
        "p = 1 (alpha 0.05)"
    )
    slightly_better = ["a"] * 2 + champion[2:]  # 2 wins, 0 losses: p_better = 0.25
    r = gate(y, slightly_better, champion, ece=(0.40, 0.05), max_ece_increase=0.1)
    assert (r.passed, r.wins, r.losses) == (False, 2, 0)
    assert r.reason.endswith("; calibration collapsed: ECE 0.400 vs champion 0.050")
    assert gate(y, slightly_better, champion, ece=(0.14, 0.05), max_ece_increase=0.1).passed  # rise 0.09


def test_exact_mcnemar_one_sided() -> None:
    worse, better = mcnemar_one_sided(2, 8)  # P(X ≤ 2), P(X ≥ 2) for X ~ Bin(10, 1/2)
    assert worse == pytest.approx(56 / 1024) and better == pytest.approx(1013 / 1024)
    assert mcnemar_one_sided(0, 0) == (1.0, 1.0)


def test_probabilities_follow_classes_not_columns() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(X, ["dog", "dog", "cat", "cat"])  # classes_ = [cat, dog]
    proba = predict_proba_by_label(model, X, ["dog", "cat", "bird"])
    np.testing.assert_allclose(proba[:, :2], model.predict_proba(X)[:, ::-1])
    assert (proba[:, 2] == 0).all()


class _Fixed:
    def __init__(self, proba: list[list[float]], classes: list[str]) -> None:
        self.proba, self.classes_ = np.array(proba), np.array(classes)

    def predict_proba(self, X: object) -> np.ndarray:
        return self.proba


@pytest.mark.parametrize(
    ("proba", "classes", "message"),
    [
        ([[np.nan, 1.0]], ["a", "b"], "NaN"),
        ([[0.5, 0.6]], ["a", "b"], "sum to 1"),
        ([[0.5, 0.5]], ["a", "zebra"], "outside"),
        ([[1.0]], ["a", "b"], "shape"),
    ],
)
def test_unusable_probabilities_are_refused(
    proba: list[list[float]], classes: list[str], message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        predict_proba_by_label(_Fixed(proba, classes), [0], ["a", "b"])


def test_artifact_round_trip_and_refusal() -> None:
    X = np.arange(8.0).reshape(-1, 1)
    model = LogisticRegression().fit(X, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(load_model(dump_model(model)).predict_proba(X), model.predict_proba(X))
    with pytest.raises(Invalid, match="will not load"):
        load_model(dump_model(_Fixed([[1.0, 0.0]], ["a", "b"])))
