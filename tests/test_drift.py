"""loopwright.drift on seeded data: tests match scipy, shifts are flagged, stable data is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loopwright.drift import (
    ChangeDetector,
    adjust_pvalues,
    compare_with_audit,
    data_drift,
    detect_changes,
    domain_classifier_auc,
    estimate_accuracy,
    estimate_accuracy_by_window,
    prediction_drift,
)
from loopwright.drift import univariate as uv
from loopwright.errors import Invalid


def windows(n: int = 2000, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


def test_a_shifted_column_is_flagged_and_the_others_are_not() -> None:
    ref, cur = windows()
    cur[:, 0] += 0.5
    report = data_drift(ref, cur, ["a", "b", "c", "d"], domain_classifier=False)
    assert report.drift and report.drifted == ["a"]
    assert report.feature("a").test == "ks" and report.feature("a").p_adjusted < 1e-10
    assert all(report.feature(c).p_adjusted > 0.05 for c in "bcd")
    assert report.feature("a").wasserstein == pytest.approx(0.5, abs=0.07)


def test_identical_windows_drift_nowhere_and_psi_is_zero() -> None:
    ref, _ = windows()
    report = data_drift(ref, ref.copy(), ["a", "b", "c", "d"], domain_classifier=False)
    assert not report.drift
    for f in report.features:
        assert f.statistic == 0.0 and f.p_value == 1.0 and f.psi == 0.0 and f.wasserstein == 0.0


@pytest.mark.parametrize(("n", "m"), [(3000, 3000), (2500, 1700), (40, 55)])
def test_ks_and_wasserstein_equal_scipy_for_every_column(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    ref = np.column_stack([rng.normal(size=n), rng.exponential(size=n), rng.integers(0, 40, n)])
    cur = np.column_stack([rng.normal(0.1, size=m), rng.exponential(1.2, size=m), rng.integers(0, 45, m)])
    report = data_drift(ref, cur, ["normal", "exp", "ties"], domain_classifier=False, max_categories=5)
    for j, f in enumerate(report.features):
        method = "exact" if n * m <= uv.EXACT_KS_MAX_PAIRS else "asymp"
        expected = stats.ks_2samp(ref[:, j], cur[:, j], method=method)
        assert f.test == "ks"
        assert f.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert f.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
        assert f.wasserstein == pytest.approx(stats.wasserstein_distance(ref[:, j], cur[:, j]), rel=1e-9)


def test_categorical_chi2_matches_scipy_and_flags_a_share_change() -> None:
    rng = np.random.default_rng(1)
    ref = rng.choice(3, size=(1500, 1), p=[0.5, 0.3, 0.2]).astype(float)
    cur = rng.choice(3, size=(1200, 1), p=[0.35, 0.35, 0.3]).astype(float)
    f = data_drift(ref, cur, ["colour"], categorical=["colour"], domain_classifier=False).features[0]
    table = np.array([np.bincount(ref[:, 0].astype(int)), np.bincount(cur[:, 0].astype(int))])
    expected = stats.chi2_contingency(table, correction=False)
    assert (f.kind, f.test, f.drift) == ("categorical", "chi2", True)
    assert f.statistic == pytest.approx(expected.statistic) and f.p_value == pytest.approx(expected.pvalue)
    assert 0 < f.jensen_shannon < 1 and f.psi > 0
    same = data_drift(ref, ref[::-1], ["colour"], domain_classifier=False).features[0]
    assert (same.test, same.statistic, same.psi, same.jensen_shannon) == ("chi2", 0.0, 0.0, 0.0)


def test_low_cardinality_numbers_get_chi2() -> None:
    ref, cur = windows(d=1)
    f = data_drift(np.round(ref), np.round(cur), ["level"], domain_classifier=False).features[0]
    assert f.test == "chi2" and f.kind == "categorical"


def test_benjamini_hochberg_and_holm_on_a_known_list() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues([0.5, 0.9], "bh"), [0.9, 0.9])
    assert adjust_pvalues([], "bh").size == 0
    with pytest.raises(Invalid, match="unknown correction"):
        adjust_pvalues(p, "bonferroni-ish")


def test_domain_classifier_auc_is_chance_on_one_distribution_and_high_on_a_shift() -> None:
    ref, cur = windows(n=3000, d=5)
    assert domain_classifier_auc(ref, cur, seed=0) == pytest.approx(0.5, abs=0.04)
    assert domain_classifier_auc(ref, cur + np.array([2.0, 0, 0, 0, 0]), seed=0) > 0.9
    assert domain_classifier_auc(ref, cur, seed=3) == domain_classifier_auc(ref, cur, seed=3)


def test_domain_classifier_sees_a_correlation_change_no_single_feature_shows() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(3000, 2))
    z = rng.normal(size=3000)
    cur = np.column_stack([z, 0.95 * z + np.sqrt(1 - 0.95**2) * rng.normal(size=3000)])
    report = data_drift(ref, cur, ["x", "y"])
    assert report.drifted == [] and report.domain_classifier_auc > 0.6
    assert report.drift and report.domain_classifier_drift and report.notes


def test_bad_columns_are_skipped_one_by_one_and_the_rest_is_reported() -> None:
    ref, cur = windows(n=200, d=5)
    cur[:, 0] += 1.0
    ref[:, 1] = cur[:, 1] = 7.0  # constant in both
    cur[:, 2] = np.nan  # all missing in current
    ref[10:, 3] = np.inf  # only 10 values left in reference
    report = data_drift(
        ref, cur, ["shifted", "constant", "gone", "sparse", "only_ref"],
        current_columns=["shifted", "constant", "gone", "sparse", "only_cur"], domain_classifier=False,
    )  # fmt: skip
    skipped = {f.name: f.skipped for f in report.features if f.skipped}
    assert report.drifted == ["shifted"] and report.drift
    assert "constant (7) in both" in skipped["constant"]
    assert "all values missing in the current window" in skipped["gone"]
    assert "only 10 non-missing values in the reference window" in skipped["sparse"]
    assert "only in the reference window" in skipped["only_ref"]
    assert "only in the current window" in skipped["only_cur"]
    assert report.feature("sparse").missing_reference == pytest.approx(0.95)


def test_unusable_input_is_refused_with_what_to_do() -> None:
    ref, cur = windows(n=50, d=2)
    with pytest.raises(Invalid, match="share no column"):
        data_drift(ref, cur, ["a", "b"], current_columns=["c", "d"])
    with pytest.raises(Invalid, match="3 column names"):
        data_drift(ref, cur, ["a", "b", "c"])
    with pytest.raises(Invalid, match="numeric 2-D array"):
        data_drift([["x", "y"]], cur, ["a", "b"])
    with pytest.raises(Invalid, match="not in either window"):
        data_drift(ref, cur, ["a", "b"], categorical=["z"])
    with pytest.raises(Invalid, match="reference window has no rows"):
        data_drift(np.empty((0, 2)), cur, ["a", "b"])
    with pytest.raises(Invalid, match="alpha"):
        data_drift(ref, cur, ["a", "b"], alpha=1.5)


def test_too_few_rows_for_the_classifier_is_a_note_not_a_failure() -> None:
    ref, cur = windows(n=40, d=2)
    report = data_drift(ref[:12], cur[:12], ["a", "b"], min_rows=10)
    assert report.domain_classifier_auc is None and "at least 15 rows" in report.domain_classifier_skipped
    assert [f.test for f in report.features] == ["ks", "ks"]


def test_prediction_drift_on_class_shares_and_confidence() -> None:
    rng = np.random.default_rng(4)
    ref = rng.dirichlet([3, 3, 3], size=2000)
    cur = rng.dirichlet([6, 2, 2], size=2000)
    report = prediction_drift(ref, cur)
    tests = [(f.name, f.test) for f in report.features]
    assert tests == [("predicted_class", "chi2"), ("max_probability", "ks")]
    assert report.feature("predicted_class").drift
    assert not prediction_drift(ref, rng.dirichlet([3, 3, 3], size=2000)).drift
    with pytest.raises(Invalid, match="classes"):
        prediction_drift(ref, cur[:, :2])


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes with the exact Bayes posterior: calibrated by construction."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(loc=np.where(y == 1, 1.0, -1.0), scale=1.0)
    p1 = 1 / (1 + np.exp(-2 * x))
    proba = np.column_stack([1 - p1, p1])
    return proba, (proba.argmax(axis=1) == y).astype(int)


def test_label_free_accuracy_covers_the_true_accuracy_of_a_calibrated_model() -> None:
    proba, correct = calibrated(5000, seed=0)
    est = estimate_accuracy(proba)
    assert est.low <= correct.mean() <= est.high and est.high - est.low < 0.03
    covered = [
        (e.low <= c.mean() <= e.high)
        for e, c in zip(estimate_accuracy_by_window(proba, 500), np.split(correct, 10), strict=True)
    ]
    assert sum(covered) >= 8


def test_calibration_on_a_reference_window_fixes_overconfidence() -> None:
    proba, correct = calibrated(6000, seed=1)
    top = proba.max(axis=1) ** 0.3  # overconfident: pushed towards 1
    raw = estimate_accuracy(top[3000:])
    fixed = estimate_accuracy(top[3000:], calibration=(top[:3000], correct[:3000]))
    truth = correct[3000:].mean()
    assert abs(fixed.expected - truth) < 0.02 < abs(raw.expected - truth)


def test_compare_with_audit() -> None:
    est = estimate_accuracy(np.full(1000, 0.9))
    assert compare_with_audit(est, 178, 200).consistent
    worse = compare_with_audit(est, 150, 200)
    assert not worse.consistent and worse.gap == pytest.approx(-0.15) and worse.audited_high < 0.9
    with pytest.raises(Invalid, match="n_correct"):
        compare_with_audit(est, 5, 3)


@pytest.mark.parametrize("method", ["adwin", "page_hinkley", "ddm"])
def test_change_detectors_find_a_jump_in_error_rate_and_stay_quiet_when_stable(method: str) -> None:
    rng = np.random.default_rng(7)
    stable = (rng.random(5000) < 0.1).astype(int)
    assert detect_changes(stable, method) == []
    jump = np.r_[rng.random(1000) < 0.1, rng.random(1000) < 0.3].astype(int)
    changes = detect_changes(jump, method)
    after = [c for c in changes if c >= 1000]
    assert after and after[0] < 1300
    # DDM compares with the best error rate seen so far and is the jumpiest: one early alarm here.
    assert len(changes) - len(after) <= (1 if method == "ddm" else 0)


def test_change_detector_refuses_bad_input() -> None:
    with pytest.raises(Invalid, match="unknown change detector"):
        ChangeDetector("cusum")
    with pytest.raises(Invalid, match="0/1"):
        ChangeDetector("ddm").update(0.5)
    with pytest.raises(Invalid, match="bad parameter"):
        ChangeDetector("adwin", window=3)
