"""Active learning: exact selections on tiny seeded data, and the simulation loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from loopwright.active import (
    Hybrid,
    QueryByCommittee,
    UncertaintySampling,
    kcenter_greedy,
    kmeans_pp,
    make_strategy,
    mean_kl,
    smallest_margin,
    top_k,
    vote_entropy,
)
from loopwright.active.experiment import digits, median_labels, noisy_labels, reach, simulate
from loopwright.errors import Invalid


class Fixed:
    """A 'model' returning fixed probability rows for row indices in X[:, 0]."""

    def __init__(self, proba: Any) -> None:
        self.proba = np.asarray(proba, dtype=float)
        self.classes_ = np.arange(self.proba.shape[1])

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        return self.proba[np.asarray(X)[:, 0].astype(int)]


def rows(n: int) -> NDArray[np.float64]:
    return np.c_[np.arange(n), np.zeros(n)].astype(float)


def brute_kcenter(X: NDArray[Any], batch: int, first: int | None, L: NDArray[Any] | None) -> list[int]:
    X = X.astype(np.float64)
    if L is None:
        assert first is not None
        picks, d = [first], ((X - X[first]) ** 2).sum(1)
    else:
        picks, d = [], ((X[:, None, :] - L[None].astype(np.float64)) ** 2).sum(2).min(1)
    d[picks] = -1
    while len(picks) < batch:
        j = int(np.argmax(d))
        picks.append(j)
        d = np.minimum(d, ((X - X[j]) ** 2).sum(1))
        d[picks] = -1
    return picks


def test_top_k_is_best_first_with_ties_to_the_lower_index() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1, 0.5])
    assert top_k(scores, 3).tolist() == [1, 3, 0]
    assert top_k(scores, 4).tolist() == [1, 3, 0, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 0, 2, 5, 4]
    assert top_k(scores, 0).tolist() == []
    with pytest.raises(Invalid, match="NaN"):
        top_k([0.1, np.nan], 1)


def test_margin_picks_the_most_ambiguous_rows() -> None:
    proba = [[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.7, 0.2, 0.1], [0.34, 0.33, 0.33]]
    assert smallest_margin(proba).argmax() == 2
    picked = make_strategy("margin", cold_start=0).select(
        Fixed(proba), rows(5), rows(1), 3, np.random.default_rng(0)
    )
    assert picked.tolist() == [2, 4, 1]
    entropy = make_strategy("entropy", cold_start=0).select(
        Fixed(proba), rows(5), rows(1), 1, np.random.default_rng(0)
    )
    assert entropy.tolist() == [4]


def test_kcenter_picks_the_farthest_points_on_a_hand_made_set() -> None:
    pool = np.array([[1, 0], [10, 0], [0, 5], [9, 1], [-4, 0]], dtype=float)
    origin = np.zeros((1, 2))
    assert kcenter_greedy(pool, 3, np.random.default_rng(0), origin).tolist() == [1, 2, 4]
    assert make_strategy("kcenter").select(None, pool, origin, 3, np.random.default_rng(0)).tolist() == [
        1,
        2,
        4,
    ]


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_kcenter_matches_brute_force(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    X = rng.standard_normal((400, 5)).astype(np.float32)
    got = kcenter_greedy(X, 40, np.random.default_rng(1), chunk=chunk)
    assert got.tolist() == brute_kcenter(X, 40, int(got[0]), None)
    L = rng.standard_normal((6, 5)).astype(np.float32)
    assert kcenter_greedy(X, 40, np.random.default_rng(1), L, chunk=chunk).tolist() == brute_kcenter(
        X, 40, None, L
    )


def test_kcenter_never_repeats_on_duplicates() -> None:
    picks = kcenter_greedy(np.zeros((5, 2)), 5, np.random.default_rng(0), chunk=2)
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_pp_is_seeded_and_distinct() -> None:
    X = np.random.default_rng(0).standard_normal((200, 3))
    a = kmeans_pp(X, 20, np.random.default_rng(5))
    assert a.tolist() == kmeans_pp(X, 20, np.random.default_rng(5)).tolist()
    assert len(set(a.tolist())) == 20


def test_hybrid_picks_a_diverse_subset_of_the_top_uncertain() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=300)
    X = np.c_[np.arange(300), rng.standard_normal((300, 2))]
    model = Fixed(p)
    picks = Hybrid(cold_start=0, candidates=4).select(model, X, X[:3], 5, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 5
    assert set(picks.tolist()) <= set(top_k(smallest_margin(p), 20).tolist())


def test_qbc_is_deterministic_with_a_seed_and_measures_disagreement() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = (X[:, 0] > 0).astype(int).astype(str)
    model = LogisticRegression().fit(X[:20], y[:20])
    qbc = QueryByCommittee(cold_start=0, members=4, measure="kl")
    a = qbc.select(model, X[20:], X[:20], 5, np.random.default_rng(3), y_labelled=y[:20])
    b = qbc.select(model, X[20:], X[:20], 5, np.random.default_rng(3), y_labelled=y[:20])
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5
    agree = np.array([[[1.0, 0.0]], [[1.0, 0.0]]])
    split = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert vote_entropy(agree)[0] == 0 and vote_entropy(split)[0] == pytest.approx(np.log(2))
    assert mean_kl(agree)[0] == pytest.approx(0) and mean_kl(split)[0] == pytest.approx(np.log(2))
    with pytest.raises(Invalid, match="y_labelled"):
        qbc.select(model, X[20:], X[:20], 5, np.random.default_rng(3))


def test_cold_start_uses_diversity() -> None:
    X = np.random.default_rng(0).standard_normal((50, 2))
    model = Fixed(np.random.default_rng(1).dirichlet(np.ones(2), size=50))
    strategy = UncertaintySampling()  # threshold: 2 x 2 classes = 4 labels
    cold = strategy.select(model, X, X[:3], 4, np.random.default_rng(7))
    assert cold.tolist() == kmeans_pp(X, 4, np.random.default_rng(7), X[:3]).tolist()
    assert strategy.select(None, X, None, 4, np.random.default_rng(7)).tolist() == (
        kmeans_pp(X, 4, np.random.default_rng(7)).tolist()
    )


def test_bad_inputs_are_invalid() -> None:
    rng = np.random.default_rng(0)
    margin = make_strategy("margin", cold_start=0)
    with pytest.raises(Invalid, match="empty"):
        margin.select(Fixed([[0.5, 0.5]]), np.empty((0, 2)), rows(1), 1, rng)
    with pytest.raises(Invalid, match="larger than the pool"):
        make_strategy("kcenter").select(None, rows(3), None, 4, rng)
    with pytest.raises(Invalid, match="NaN"):
        margin.select(Fixed([[np.nan, 0.5], [0.5, 0.5]]), rows(2), rows(1), 1, rng)
    with pytest.raises(Invalid, match="predict_proba"):
        margin.select(object(), rows(2), rows(1), 1, rng)
    with pytest.raises(Invalid, match="unknown strategy"):
        make_strategy("bald")


def test_text_pool_uses_an_embedding() -> None:
    texts = [f"what is {w} {i}" for i, w in enumerate(["cat", "dog", "car", "sun"] * 5)]
    picks = make_strategy("kcenter").select(None, texts, texts[:2], 3, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 3


def test_curve_helpers_and_noise() -> None:
    curve = [(10, 0.5), (20, 0.9), (30, 0.95)]
    assert reach(curve, 0.9) == 20 and reach(curve, 0.99) is None
    assert median_labels([30, None, 10]) == 30 and median_labels([None, None, 10]) is None
    y = np.array(list("abc") * 1000)
    noisy = noisy_labels(y, 0.9, np.random.default_rng(0))
    assert 0.88 < np.mean(noisy == y) < 0.92 and set(noisy) == set("abc")


def test_simulation_is_seeded_and_keeps_the_held_out_apart() -> None:
    X, y, config = digits()
    run = lambda: simulate(X[:400], y[:400], config, "hybrid", 40, 10, [0], dataset="d")  # noqa: E731
    a, b = run(), run()
    assert a.to_dict() == b.to_dict()
    assert [n for n, _ in a.runs[0].curve] == [10, 20, 30, 40]
    assert 0.8 < a.full_accuracy <= 1
    noisy = simulate(X[:400], y[:400], config, "random", 20, 10, [0], annotators="noisy")
    assert len(noisy.runs[0].curve) == 2
    with pytest.raises(Invalid, match="larger than the pool"):
        simulate(X[:400], y[:400], config, "margin", 301, 10, [0])
