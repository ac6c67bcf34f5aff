"""The default strategy, ``auto``: a bandit over margin, hybrid and kcenter (Hsu & Lin 2015)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from loopwright.active import STRATEGIES, make_strategy
from loopwright.active.bandit import Auto
from loopwright.active.strategies import DEFAULT_STRATEGY
from loopwright.cli.simulate_cmd import Choice
from loopwright.config import ActiveConfig


class Stub:
    """A model that is right everywhere when ``good``, wrong everywhere otherwise."""

    classes_ = np.asarray(["0", "1"])

    def __init__(self, good: bool) -> None:
        self.good = good

    @staticmethod
    def truth(X: Any) -> NDArray[Any]:
        return np.where(np.asarray(X)[:, 0] > 0, "1", "0")

    def predict(self, X: Any) -> NDArray[Any]:
        right = self.truth(X)
        return right if self.good else np.where(right == "1", "0", "1")

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        p = 1 / (1 + np.exp(-2 * np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])


def test_auto_is_registered_and_the_default_everywhere() -> None:
    assert DEFAULT_STRATEGY == "auto" and isinstance(make_strategy("auto"), Auto)
    assert ActiveConfig().strategy == "auto"
    assert {c.value for c in Choice} == set(STRATEGIES)


def drive(rounds: int, better: str) -> Auto:
    """Label batches of a seeded pool; a model is accurate iff the arm ``better`` chose the batch
    it learnt last."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2))
    auto = Auto()
    labelled = list(range(10))
    model = Stub(good=False)
    for _ in range(rounds):
        rest = np.setdiff1d(np.arange(len(X)), labelled)
        picks = auto.select(model, X[rest], X[labelled], 10, rng, Stub.truth(X[labelled]))
        assert len(set(picks.tolist())) == 10
        labelled += rest[picks].tolist()
        model = Stub(good=auto.history[-1] == better)
    return auto


def test_the_bandit_moves_to_the_arm_whose_batches_make_the_model_accurate() -> None:
    auto = drive(30, "kcenter")
    assert auto.history[0] == "margin"  # the anchor goes first
    p = dict(zip(auto.arms, auto.probabilities(), strict=True))
    assert max(p, key=p.__getitem__) == "kcenter"
    assert auto.history.index("kcenter") == 9 and auto.history[-10:].count("kcenter") == 8
    # the reward is the accuracy a batch bought: +1 for a kcenter batch after another arm's,
    # -1 for another arm's after a kcenter batch, 0 when nothing changed
    assert {r for arm, r in auto.rewards if arm == "kcenter"} == {0.0, 1.0}
    assert {r for arm, r in auto.rewards if arm != "kcenter"} == {-1.0, 0.0}


def test_the_bandit_stays_with_margin_when_it_is_the_better_arm() -> None:
    auto = drive(30, "margin")
    p = dict(zip(auto.arms, auto.probabilities(), strict=True))
    assert max(p, key=p.__getitem__) == "margin" and p["margin"] > 0.8
    assert auto.history.count("margin") == 29


def test_the_reward_is_importance_weighted_accuracy() -> None:
    auto = Auto()
    X = np.arange(8, dtype=float).reshape(4, 2) - 3
    auto._asked = {X[i].tobytes(): q for i, q in enumerate([0.5, 0.5, 0.1, 0.1])}
    y = np.asarray(["0", "0", "1", "0"])  # truth from Stub: x0 > 0 → "1"; rows 0, 1: "0"; 2, 3: "1"
    # the good stub is right on rows 0, 1, 2 and wrong on row 3: (2 + 2 + 10) / (2 + 2 + 10 + 10)
    assert auto.reward(Stub(good=True), X, y) == pytest.approx(14 / 24)


@pytest.mark.parametrize("rows", [slice(0, 600), slice(600, 1200)])
def test_never_below_margin_on_small_seeded_sets(rows: slice) -> None:
    """The mean held-out accuracy along the label curve (3 seeds) is at least plain margin's."""
    from loopwright.active.experiment import digits, simulate

    X, y, config = digits()

    def area(strategy: str) -> float:
        sim = simulate(X[rows], y[rows], config, strategy, 100, 10, [0, 1, 2])
        return float(np.mean([[acc for _, acc in r.curve] for r in sim.runs]))

    auto, margin = area("auto"), area("margin")
    assert auto >= margin, (auto, margin)
