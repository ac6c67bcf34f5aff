"""The default strategy, ``auto``: margin unless a challenger proves better (explore-then-commit
on the change each batch makes to the model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from loopwright.active import STRATEGIES, make_strategy
from loopwright.active.bandit import Auto, flipped
from loopwright.active.strategies import DEFAULT_STRATEGY
from loopwright.cli.simulate_cmd import Choice
from loopwright.config import ActiveConfig
from loopwright.errors import Invalid


class Stub:
    """Predicts "1" where the first feature exceeds ``threshold``."""

    classes_ = np.asarray(["0", "1"])

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, X: Any) -> NDArray[Any]:
        return np.where(np.asarray(X)[:, 0] > self.threshold, "1", "0")

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        p = 1 / (1 + np.exp(-2 * (np.asarray(X)[:, 0] - self.threshold)))
        return np.column_stack([1 - p, p])


def test_auto_is_registered_and_the_default_everywhere() -> None:
    assert DEFAULT_STRATEGY == "auto" and isinstance(make_strategy("auto"), Auto)
    assert make_strategy("auto").arms == ("margin", "hybrid")  # type: ignore[attr-defined]
    assert ActiveConfig().strategy == "auto"
    assert {c.value for c in Choice} == set(STRATEGIES)


def drive(rounds: int, moves: dict[str, float]) -> Auto:
    """Label batches of a seeded pool; learning a batch chosen by ``arm`` moves the model's
    threshold by ``moves[arm]`` (so it flips that many units of the pool's first feature)."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.linspace(-3, 3, 600), rng.normal(size=600)])
    auto = Auto()
    labelled = list(range(0, 600, 60))
    model = Stub(0.0)
    for _ in range(rounds):
        rest = np.setdiff1d(np.arange(len(X)), labelled)
        picks = auto.select(model, X[rest], X[labelled], 10, rng, model.predict(X[labelled]))
        assert len(set(picks.tolist())) == 10
        labelled += rest[picks].tolist()
        model = Stub(model.threshold + moves[auto.history[-1]])
    return auto


def test_margin_keeps_the_budget_when_the_challenger_moves_the_model_no_more() -> None:
    auto = drive(8, {"margin": 0.3, "hybrid": 0.3})
    assert auto.history == ["margin", "hybrid", "margin", "hybrid", "margin", "margin", "margin", "margin"]
    assert auto.committed == "margin"
    assert auto.ratios == {"hybrid": [1.158, 1.3014]}  # equal moves, a shrinking pool: no lead


def test_a_challenger_that_moves_the_model_more_each_time_takes_over() -> None:
    auto = drive(8, {"margin": 0.1, "hybrid": 0.5})
    assert auto.history == ["margin", "hybrid", "margin", "hybrid", "margin", "hybrid", "hybrid", "hybrid"]
    assert auto.committed == "hybrid" and min(auto.ratios["hybrid"]) > 4


def test_one_weak_challenger_batch_keeps_margin() -> None:
    """Every challenger batch must lead by ``lead``: one good batch out of two is not enough."""
    auto = Auto()
    auto.history = ["margin", "hybrid", "margin", "hybrid", "margin"]
    auto.changes = [0.10, 0.30, 0.10, 0.11, 0.10]
    assert auto.next_arm() == "margin" and auto.committed == "margin"
    assert auto.ratios == {"hybrid": [3.0, 1.1]}


def test_the_challenger_reads_the_records_embeddings_for_diversity() -> None:
    """With ``embed`` given (a record's ``embedding``), hybrid's k-center runs on it, margin never."""
    calls: list[int] = []

    def embed(X: Any) -> NDArray[np.float32]:
        calls.append(len(X))
        return np.asarray(X, dtype=np.float32)[:, ::-1].copy()

    X = np.column_stack([np.linspace(-3, 3, 200), np.zeros(200)])
    auto = Auto(embed=embed)
    labelled = X[:10]
    auto.select(Stub(0.0), X[10:], labelled, 5, np.random.default_rng(0))
    assert auto.history == ["margin"] and calls == []
    auto.select(Stub(0.1), X[10:], labelled, 5, np.random.default_rng(0))
    assert auto.history == ["margin", "hybrid"] and calls == [50, 10]  # 10 x batch candidates, labelled


def test_the_reward_is_the_share_of_the_pool_whose_label_flips() -> None:
    X = np.column_stack([np.arange(10, dtype=float), np.zeros(10)])
    assert flipped(Stub(2.5), Stub(5.5), X) == 0.3


def test_bad_arms_are_refused() -> None:
    with pytest.raises(Invalid, match="must include 'margin'"):
        Auto(arms=("hybrid",))
    with pytest.raises(Invalid, match="unknown arm 'qbc'"):
        Auto(arms=("margin", "qbc"))


def test_seeded_digits_run_is_pinned() -> None:
    """Seed 0 on 600 digits: margin and hybrid alternate; hybrid moves the model more the first
    time (2.4x) but not the second (0.7x), so margin keeps the rest of the budget."""
    from loopwright.active import experiment
    from loopwright.active.experiment import digits, simulate

    X, y, config = digits()
    made: list[Any] = []
    real = experiment.make_strategy

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    experiment.make_strategy = spy
    try:
        sim = simulate(X[:600], y[:600], config, "auto", 100, 10, [0])
    finally:
        experiment.make_strategy = real
    auto = made[-1]
    assert auto.history == ["margin", "hybrid", "margin", "hybrid", "margin", "margin", "margin", "margin"]
    assert auto.committed == "margin" and auto.ratios == {"hybrid": [2.3661, 0.7069]}
    accuracy = [0.44, 0.686667, 0.846667, 0.933333, 0.92, 0.96, 0.973333, 0.98, 0.986667, 0.98]
    assert sim.runs[0].curve == list(zip(range(10, 101, 10), accuracy, strict=True))


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
