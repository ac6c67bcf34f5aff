"""Aggregators and agreement metrics: hand-built cases with known answers, then the real crowd sets."""

from __future__ import annotations

import csv

import krippendorff
import numpy as np
import pytest

from loopwright.consensus import (
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    WeightedMajorityVote,
    agreement_report,
    cohen_kappas,
    encode,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from loopwright.errors import Invalid, NotFitted
from shared_data import SHARED_DATA

CROWD = SHARED_DATA / "crowd"
AGGREGATORS = [MajorityVote, WeightedMajorityVote, DawidSkene, OneCoinDawidSkene]

# Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories, κ = 0.210.
FLEISS_WIKIPEDIA = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ],
    dtype=float,
)


def two_raters() -> tuple[list[str], list[str], list[str]]:
    """50 items, 2 raters: yes/yes 20, yes/no 5, no/yes 10, no/no 15 (p_o = 0.7, p_e = 0.5)."""
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    items, workers, labels = [], [], []
    for i, (a, b) in enumerate(pairs):
        items += [f"q{i:02d}", f"q{i:02d}"]
        workers += ["A", "B"]
        labels += [a, b]
    return items, workers, labels


def test_fleiss_kappa_matches_the_textbook_example() -> None:
    assert fleiss_kappa(FLEISS_WIKIPEDIA) == pytest.approx(0.20993, abs=1e-5)
    assert percent_agreement(FLEISS_WIKIPEDIA) == pytest.approx(0.37802, abs=1e-5)


def test_fleiss_kappa_uses_each_items_own_count_and_drops_singletons() -> None:
    counts = np.array([[2, 1], [0, 2], [1, 0]], dtype=float)  # third item has one rating
    # P_1 = 2/6, P_2 = 1, P̄ = 2/3; shares a = 2/5, b = 3/5, P_e = 0.52
    assert fleiss_kappa(counts) == pytest.approx((2 / 3 - 0.52) / 0.48)
    assert fleiss_kappa(np.array([[1, 0]], dtype=float)) is None


def test_cohen_kappa_and_krippendorff_alpha_on_a_hand_computed_2x2() -> None:
    ans = encode(*two_raters())
    (pair,) = cohen_kappas(ans)
    assert pair == {"a": "A", "b": "B", "shared_items": 50, "kappa": 0.4, "krippendorff_alpha": 0.4}
    counts = np.zeros((50, 2))
    np.add.at(counts, (ans.item_idx, ans.label_idx), 1.0)
    # coincidences: D_o = 30/100, D_e = 2·55·45/(100·99) = 0.5, so alpha = 1 - 0.3/0.5
    assert krippendorff_alpha(counts) == pytest.approx(0.4)


def test_cohen_kappa_needs_two_shared_items_and_variation() -> None:
    ans = encode(["q1", "q1", "q2", "q3", "q3"], ["A", "B", "A", "A", "C"], ["x", "x", "y", "x", "x"])
    assert cohen_kappas(ans) == []
    same = encode(["q1", "q1", "q2", "q2"], ["A", "B", "A", "B"], ["x", "x", "x", "x"])
    assert cohen_kappas(same)[0]["kappa"] is None
    assert cohen_kappas(same)[0]["krippendorff_alpha"] is None


def test_pairwise_alpha_matches_the_krippendorff_package_on_shared_items() -> None:
    rng = np.random.default_rng(3)
    workers = ["A", "B", "C", "D"]
    rows = [
        (f"q{i}", w, str(rng.integers(0, 3)))
        for i in range(60)
        for w in workers
        if rng.random() < 0.7  # each pair shares a different subset of items
    ]
    items, who, labels = (list(c) for c in zip(*rows, strict=True))
    pairs = cohen_kappas(encode(items, who, labels))
    assert len(pairs) == 6
    answers = {(i, w): label for i, w, label in rows}
    for pair in pairs:
        shared = sorted({i for i, w in answers if w == pair["a"]} & {i for i, w in answers if w == pair["b"]})
        data = [[int(answers[i, pair[r]]) for i in shared] for r in ("a", "b")]
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert pair["shared_items"] == len(shared)
        assert pair["krippendorff_alpha"] == pytest.approx(expected, abs=1e-6)


def test_agreement_report_is_json_friendly_and_per_label() -> None:
    report = agreement_report(*two_raters())
    assert report["percent_agreement"] == pytest.approx(0.7)
    assert report["krippendorff_alpha"] == pytest.approx(0.4)
    assert set(report["per_label"]) == {"no", "yes"}
    # one-vs-rest with two labels is the same split both ways
    assert report["per_label"]["yes"] == report["per_label"]["no"]
    assert report["pairs"]["count"] == 1 and report["pairs"]["median_cohen_kappa"] == 0.4


def test_dawid_skene_recovers_known_confusion_matrices() -> None:
    rng = np.random.default_rng(0)
    classes = np.array(["a", "b", "c"])
    truth = rng.integers(0, 3, size=4000)
    confusion = np.array(
        [
            [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]],
            [[0.7, 0.3, 0.0], [0.0, 0.7, 0.3], [0.3, 0.0, 0.7]],
            [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]],
            [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]],
            [[0.85, 0.1, 0.05], [0.05, 0.85, 0.1], [0.1, 0.05, 0.85]],
        ]
    )
    items, workers, labels = [], [], []
    for w, conf in enumerate(confusion):
        for i, t in enumerate(truth):
            items.append(f"q{i:03d}")
            workers.append(f"w{w}")
            labels.append(str(classes[rng.choice(3, p=conf[t])]))
    ds = DawidSkene().fit(items, workers, labels)
    assert ds.confusions_.shape == (5, 3, 3)
    np.testing.assert_allclose(ds.confusions_, confusion, atol=0.04)
    np.testing.assert_allclose(ds.probas_.sum(axis=1), 1.0)
    accuracy = (ds.labels_ == classes[truth]).mean()
    assert accuracy >= (MajorityVote().fit(items, workers, labels).labels_ == classes[truth]).mean()
    assert ds.skills_["w0"] == pytest.approx(0.9, abs=0.03)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (MajorityVote, ["b", "b"]),
        (WeightedMajorityVote, ["b", "a"]),
        (DawidSkene, ["b", "a"]),
        (OneCoinDawidSkene, ["b", "a"]),
    ],
)
def test_gold_items_are_clamped_to_their_true_label(model: type, expected: list[str]) -> None:
    """Gold on q1 says w3 is the reliable one; the skill-learning methods then follow w3 on q2."""
    items = ["q1", "q1", "q1", "q2", "q2", "q2"]
    workers = ["w1", "w2", "w3", "w1", "w2", "w3"]
    labels = ["a", "a", "b", "b", "b", "a"]
    free = model().fit(items, workers, labels)
    assert free.labels_.tolist() == ["a", "b"]
    fitted = model().fit(items, workers, labels, gold={"q1": "b"})
    assert fitted.labels_.tolist() == expected
    np.testing.assert_allclose(fitted.probas_[0], [0.0, 1.0])
    assert fitted.classes_.tolist() == ["a", "b"] and fitted.workers_.tolist() == ["w1", "w2", "w3"]


def test_weighted_majority_vote_with_given_skills_and_a_model_as_worker() -> None:
    items, workers, labels = ["q"] * 3, ["expert", "model", "novice"], ["a", "b", "b"]
    wmv = WeightedMajorityVote(skills={"expert": 0.9, "model": 0.6, "novice": 0.6}).fit(
        items, workers, labels
    )
    # weights: log 9 for a against 2 log 1.5 for b
    score = np.log(9.0) - 2 * np.log(1.5)
    assert wmv.labels_.tolist() == ["a"]
    np.testing.assert_allclose(wmv.probas_[0], [1 / (1 + np.exp(-score)), 1 / (1 + np.exp(score))])
    with pytest.raises(Invalid, match="novice"):
        WeightedMajorityVote(skills={"expert": 0.9, "model": 0.6}).fit(items, workers, labels)


@pytest.mark.parametrize("model", AGGREGATORS)
def test_misuse_raises_domain_errors(model: type) -> None:
    with pytest.raises(NotFitted):
        _ = model().labels_
    with pytest.raises(Invalid, match="same length"):
        model().fit(["q1", "q2"], ["w1"], ["a"])
    with pytest.raises(Invalid, match="gold item"):
        model().fit(["q1"], ["w1"], ["a"], gold={"q9": "a"})


def test_dawid_skene_rejects_bad_parameters() -> None:
    with pytest.raises(Invalid):
        DawidSkene(n_iter=0).fit(["q"], ["w"], ["a"])


# Accuracy against truth.csv, measured with the defaults (DawidSkene tol=1e-5, smoothing=0.01).
MEASURED = {
    "dog": {"mv": 0.817844, "wmv": 0.830235, "ds": 0.842627, "ds1": 0.830235},
    "product": {"mv": 0.896572, "wmv": 0.929405, "ds": 0.939747, "ds1": 0.908599},
}


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_real_crowd_sets_dawid_skene_beats_majority(name: str) -> None:
    if not CROWD.is_dir():
        pytest.skip(f"real crowd data not found at {CROWD}")
    with (CROWD / name / "answers.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (CROWD / name / "truth.csv").open(newline="") as f:
        truth = {r["question"]: r["truth"] for r in csv.DictReader(f)}
    cols = ([r["question"] for r in rows], [r["worker"] for r in rows], [r["answer"] for r in rows])
    got = {}
    for key, model in zip(["mv", "wmv", "ds", "ds1"], AGGREGATORS, strict=True):
        fitted = model().fit(*cols)
        labels = dict(zip(fitted.items_.tolist(), fitted.labels_.tolist(), strict=True))
        got[key] = sum(labels[q] == t for q, t in truth.items()) / len(truth)
    assert got == pytest.approx(MEASURED[name], abs=5e-4)
    assert got["ds"] >= got["mv"]


def test_krippendorff_alpha_is_undefined_without_an_item_answered_twice() -> None:
    single = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # overlap 1: nobody to agree with
    assert krippendorff_alpha(single) is None
    assert krippendorff_alpha(np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])) == 1.0
