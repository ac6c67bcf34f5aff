"""The overall drift verdict holds its stated alpha: per-feature family and domain classifier each at
alpha / 2 (Bonferroni); identifier-like columns are skipped with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loopwright.drift import data_drift
from loopwright.drift.classifier import domain_classifier_test


def null_window(rng: np.random.Generator, n: int) -> np.ndarray:
    """Five columns: three continuous, one five-level, one binary."""
    return np.column_stack([rng.normal(size=(n, 3)), rng.integers(0, 5, size=n), rng.random(n) < 0.3]).astype(
        float
    )


def test_the_combined_verdict_holds_alpha_on_null_windows_within_a_binomial_bound() -> None:
    alpha, windows = 0.1, 100
    pooled = null_window(np.random.default_rng(0), 240 * windows)
    names = ["x0", "x1", "x2", "level", "flag"]
    alarms, p_values = 0, list[float]()
    for w in range(windows):
        rows = np.random.default_rng([1, w]).permutation(len(pooled))[:240]
        report = data_drift(pooled[rows[:120]], pooled[rows[120:]], names, alpha=alpha, seed=w)
        assert report.alpha_features == alpha / 2 and report.domain_classifier_p_value is not None
        alarms += report.drift
        assert report.p_value is not None
        p_values.append(report.p_value)
    # one-sided: more than the 99 % quantile of Binomial(windows, alpha) alarms would break the level
    assert alarms <= stats.binom.ppf(0.99, windows, alpha)
    assert alarms == 4  # seeded: the count this run gives
    assert all(0 < p <= 1 for p in p_values)


def test_the_report_states_the_split_and_the_overall_p_value() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    cur[:, 0] += 1.0
    report = data_drift(ref, cur, ["a", "b", "c"], alpha=0.05)
    assert report.alpha_features == 0.025 and report.combination == "bonferroni"
    assert report.drifted == ["a"] and report.drift and report.domain_classifier_drift
    p_features, p_classifier = report.features_p_value, report.domain_classifier_p_value
    assert p_features is not None and p_classifier is not None
    expected = min(1.0, 2 * min(p_features, p_classifier))
    assert report.p_value == pytest.approx(expected)
    assert report.features_p_value == pytest.approx(report.feature("a").p_adjusted)
    alone = data_drift(ref, cur, ["a", "b", "c"], alpha=0.05, domain_classifier=False)
    assert alone.alpha_features == 0.05 and alone.p_value == alone.features_p_value
    assert report.to_dict()["p_value"] == report.p_value


def test_the_classifier_test_is_chance_on_one_distribution_and_certain_on_a_shift() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    auc, p = domain_classifier_test(ref, cur, seed=0)
    assert auc == pytest.approx(0.5, abs=0.06) and p > 0.05
    auc, p = domain_classifier_test(ref, cur + np.array([1.5, 0, 0, 0]), seed=0)
    assert auc > 0.8 and p < 1e-10
    assert domain_classifier_test(ref, cur, seed=2) == domain_classifier_test(ref, cur, seed=2)


def test_an_identifier_column_is_skipped_with_its_reason() -> None:
    rng = np.random.default_rng(7)
    ref = np.column_stack([np.arange(300), 1_700_000_000 + np.arange(300) * 60, rng.normal(size=300)])
    cur = np.column_stack([np.arange(300, 600), 1_700_018_000 + np.arange(300) * 60, rng.normal(size=300)])
    names = ["id", "timestamp", "x"]
    report = data_drift(ref, cur, names, categorical=["id"])
    skipped = {f.name: f.skipped for f in report.features if f.skipped}
    assert "one row per category" in skipped["id"]
    assert "timestamp or running id" in skipped["timestamp"]
    assert report.feature("id").psi is None and report.feature("timestamp").psi is None
    assert report.drifted == [] and not report.drift  # the windows differ only in time
    overlap = np.column_stack([rng.permutation(600)[:300], rng.normal(size=300)])
    later = np.column_stack([rng.permutation(600)[:300], rng.normal(size=300)])
    kept = data_drift(overlap, later, ["code", "y"], domain_classifier=False)
    assert kept.feature("code").skipped is None  # distinct but overlapping numbers are tested
    moved = data_drift(ref[:, 2:], ref[:, 2:] + 50.0, ["x"], domain_classifier=False)
    assert moved.feature("x").skipped is None and moved.drift  # a real value that moved far is drift
