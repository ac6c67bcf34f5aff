"""Certified auto-accept thresholds, calibration and cost routing: exact values on seeded data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from loopwright.errors import Invalid, NotFitted
from loopwright.routing import (
    AUTO_ACCEPT,
    Calibrator,
    certify,
    certify_per_class,
    cheapest_routes,
    clopper_pearson_upper,
    empirical_threshold,
    expected_calibration_error,
    min_evidence_for,
)

EPS, DELTA = 0.02, 0.05


def _audit(*blocks: tuple[float, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of (confidence, items, errors) → confidences and correctness."""
    conf = np.concatenate([np.full(n, c) for c, n, _ in blocks])
    ok = np.concatenate([np.arange(n) >= k for _, n, k in blocks])
    return conf, ok


def test_clopper_pearson_matches_exact_binomial_interval() -> None:
    for k, n in [(0, 10), (1, 10), (3, 200), (7, 40)]:
        two_sided_90 = binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact")
        assert clopper_pearson_upper(k, n, 0.05) == pytest.approx(two_sided_90.high, rel=1e-9)
    np.testing.assert_allclose(
        clopper_pearson_upper([0, 5, 0], [149, 5, 0], 0.05), [1 - 0.05 ** (1 / 149), 1, 1]
    )


def test_all_correct_audit_certifies_exactly_from_149_items() -> None:
    assert math.log(DELTA) / math.log(1 - EPS) == pytest.approx(148.28, abs=0.01)
    assert min_evidence_for(EPS, DELTA) == 149
    short = certify(*_audit((0.99, 148, 0)), EPS, DELTA)
    assert short.threshold is None and not short.certified
    assert (short.n_audited, short.n_evidence, short.upper_bound) == (148, 0, 1.0)
    assert "148 audited items, need at least 149 (all correct)" in short.reason
    assert 1 - DELTA ** (1 / 148) > EPS

    enough = certify(*_audit((0.99, 149, 0)), EPS, DELTA)
    assert enough.threshold == 0.99 and enough.certified
    assert (enough.n_evidence, enough.n_errors, enough.n_audited) == (149, 0, 149)
    assert enough.upper_bound == pytest.approx(1 - DELTA ** (1 / 149))
    assert enough.upper_bound <= EPS
    assert enough.reason.startswith("certified t=0.99: 0 errors in 149")


def test_one_error_needs_more_evidence() -> None:
    failed = certify(*_audit((0.99, 149, 1)), EPS, DELTA)
    assert failed.threshold is None
    assert (failed.n_evidence, failed.n_errors) == (149, 1)
    assert failed.upper_bound == pytest.approx(0.0314, abs=1e-4)
    assert "1 of 149 are errors" in failed.reason
    # one error is tolerated from 236 items: the bound crosses ε between 235 and 236
    assert clopper_pearson_upper(1, 235, DELTA) > EPS >= clopper_pearson_upper(1, 236, DELTA)
    assert min_evidence_for(EPS, DELTA, errors=1) == 236
    assert min_evidence_for(EPS, DELTA, errors=5) == 523
    assert clopper_pearson_upper(5, 522, DELTA) > EPS >= clopper_pearson_upper(5, 523, DELTA)
    assert certify(*_audit((0.99, 236, 1)), EPS, DELTA).threshold == 0.99


def test_fixed_sequence_stops_at_first_failure() -> None:
    # 200 clean items at 0.99 pass; adding 10 items at 0.95 with 5 errors fails; adding 2000
    # clean items at 0.90 would pass again (5 errors in 2210), but the scan has stopped.
    conf, ok = _audit((0.99, 200, 0), (0.95, 10, 5), (0.90, 2000, 0))
    assert clopper_pearson_upper(5, 2210, DELTA) < EPS
    cert = certify(conf, ok, EPS, DELTA)
    assert cert.threshold == 0.99
    assert (cert.n_evidence, cert.n_errors, cert.n_audited) == (200, 0, 2210)
    # a grid fixed in advance without 0.95 goes on to 0.90
    skip = certify(conf, ok, EPS, DELTA, thresholds=[0.99, 0.90])
    assert (skip.threshold, skip.n_evidence, skip.n_errors) == (0.90, 2210, 5)
    # the naive rule just takes the lowest threshold with audit error ≤ ε
    assert empirical_threshold(conf, ok, EPS) == 0.90
    assert empirical_threshold(*_audit((0.99, 10, 0), (0.9, 10, 5)), EPS) == 0.99
    assert empirical_threshold(*_audit((0.99, 10, 1)), EPS) is None


def test_min_evidence_only_raises_the_bar() -> None:
    conf, ok = _audit((0.99, 200, 0), (0.98, 200, 0))
    assert certify(conf, ok, EPS, DELTA).threshold == 0.98
    assert certify(conf, ok, EPS, DELTA, min_evidence=300).threshold == 0.98
    assert certify(conf, ok, EPS, DELTA, min_evidence=401).threshold is None
    assert certify(conf, ok, EPS, DELTA, min_evidence=10).threshold == 0.98
    # two errors among the top 200 stop the default scan at once; starting at 300 items skips them
    dirty = _audit((0.99, 200, 2), (0.98, 200, 0))
    assert certify(*dirty, EPS, DELTA).threshold is None
    assert certify(*dirty, EPS, DELTA, min_evidence=300).threshold == 0.98


def test_per_class_splits_delta_by_bonferroni() -> None:
    assert min_evidence_for(EPS, DELTA / 2) == 183
    conf_a, ok_a = _audit((0.97, 183, 0))
    conf_b, ok_b = _audit((0.97, 300, 20))
    labels = ["a"] * 183 + ["b"] * 300
    certs = certify_per_class(np.r_[conf_a, conf_b], np.r_[ok_a, ok_b], labels, EPS, DELTA)
    assert set(certs) == {"a", "b"}
    assert certs["a"].threshold == 0.97 and certs["a"].delta == DELTA / 2
    assert certs["b"].threshold is None and certs["b"].n_errors == 20
    # 182 clean items certify at δ alone but not at δ/2, next to a second class
    assert certify(*_audit((0.97, 182, 0)), EPS, DELTA).certified
    short = certify_per_class(np.r_[conf_a[1:], conf_b], np.r_[ok_a[1:], ok_b], labels[1:], EPS, DELTA)
    assert short["a"].threshold is None and "need at least 183" in short["a"].reason
    with pytest.raises(Invalid, match="predicted"):
        certify_per_class([0.9], [True], ["a", "b"], EPS, DELTA)


def test_bad_input_is_invalid_and_empty_is_safe() -> None:
    empty = certify([], [], EPS, DELTA)
    assert empty.threshold is None and empty.n_audited == 0
    assert "0 audited items" in empty.reason
    assert empirical_threshold([], [], EPS) is None
    with pytest.raises(Invalid, match="NaN"):
        certify([0.9, float("nan")], [True, True], EPS, DELTA)
    with pytest.raises(Invalid, match=r"\[0, 1\]"):
        certify([1.2], [True], EPS, DELTA)
    with pytest.raises(Invalid, match="one per audited item"):
        certify([0.9, 0.8], [True], EPS, DELTA)
    with pytest.raises(Invalid, match="booleans"):
        certify([0.9], [2], EPS, DELTA)
    for eps, delta in [(0.0, 0.05), (1.0, 0.05), (0.02, 0.0), (0.02, 1.5)]:
        with pytest.raises(Invalid, match="strictly between 0 and 1"):
            certify([0.9], [True], eps, delta)
    with pytest.raises(Invalid, match="epsilon"):
        empirical_threshold([0.9], [True], 1.5)
    with pytest.raises(Invalid, match="errors"):
        min_evidence_for(EPS, DELTA, errors=-1)
    with pytest.raises(Invalid, match="thresholds"):
        certify([0.9], [True], EPS, DELTA, thresholds=[float("nan")])


def test_guarantee_holds_on_seeded_simulation() -> None:
    # confidence ~ U(0.5, 1), P(error | c) = 0.4 (1 - c)²: the true error above t is
    # 0.4 (1 - t)² / 3, so a threshold is truly safe for ε = 0.02 iff t ≥ 1 - √0.15 ≈ 0.613.
    rng = np.random.default_rng(7)
    runs, n = 400, 1500
    thresholds, naive = [], []
    for _ in range(runs):
        conf = rng.uniform(0.5, 1.0, n)
        ok = rng.random(n) >= 0.4 * (1 - conf) ** 2
        thresholds.append(certify(conf, ok, EPS, DELTA).threshold)
        naive.append(empirical_threshold(conf, ok, EPS))
    certified = np.array([1.0 if t is None else t for t in thresholds])
    true_error = 0.4 * (1 - certified) ** 2 / 3
    naive_error = 0.4 * (1 - np.array(naive)) ** 2 / 3
    assert sum(t is None for t in thresholds) == 17
    assert int((true_error > EPS).sum()) == 14  # 3.5 % of runs, within δ = 5 %
    assert int((naive_error > EPS).sum()) == 221  # 55 % of runs
    assert np.median(certified) == pytest.approx(0.723, abs=0.001)


def test_calibrator_is_monotone_and_lowers_ece() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1.0, 4000)
    ok = rng.random(4000) < conf**3  # overconfident model
    cal = Calibrator().fit(conf[:2000], ok[:2000])
    assert not cal.is_identity
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(cal.transform(grid)) >= 0)
    before = expected_calibration_error(conf[2000:], ok[2000:])
    after = expected_calibration_error(cal.transform(conf[2000:]), ok[2000:])
    # population ECE: mean of c - c³ over U(0.5, 1) = 2 (1/4 - 7/64) = 0.28125
    assert before == pytest.approx(0.28125, abs=0.02)
    assert after < 0.05 < before


def test_calibrator_identity_fallback_and_errors() -> None:
    small = Calibrator().fit([0.9] * 19, [True] * 18 + [False])
    assert small.is_identity
    np.testing.assert_array_equal(small.transform([[0.3, 0.9]]), [[0.3, 0.9]])
    assert Calibrator().fit([0.9] * 30, [True] * 30).is_identity  # one outcome only
    with pytest.raises(NotFitted):
        Calibrator().transform([0.5])
    with pytest.raises(Invalid):
        Calibrator().fit([0.5, float("nan")], [True, False])


def test_expected_calibration_error_exact() -> None:
    assert expected_calibration_error([0.1, 0.9], [False, True], n_bins=10) == pytest.approx(0.1)
    assert expected_calibration_error([0.8, 0.8, 0.8, 0.8], [1, 1, 1, 0]) == pytest.approx(0.05)
    assert expected_calibration_error([1.0], [1]) == 0.0
    assert expected_calibration_error([], []) == 0.0
    with pytest.raises(Invalid):
        expected_calibration_error([0.5], [1], n_bins=0)


def test_cost_routing_exact() -> None:
    proba = [[0.99, 0.01], [0.9, 0.1], [0.6, 0.4]]
    cheap = cheapest_routes(proba, 10.0, {1: 0.5, 2: 2.0}, {1: 0.1})
    np.testing.assert_array_equal(cheap.route, [AUTO_ACCEPT, AUTO_ACCEPT, 1])
    np.testing.assert_allclose(cheap.expected_cost, [0.1, 1.0, 1.5])
    dear = cheapest_routes(proba, 100.0, {1: 0.5, 2: 2.0}, {1: 0.1})
    np.testing.assert_array_equal(dear.route, [AUTO_ACCEPT, 2, 2])
    np.testing.assert_allclose(dear.expected_cost, [1.0, 2.0, 2.0])
    tie = cheapest_routes([[0.75, 0.25]], 2.0, {1: 0.5})
    assert tie.route.tolist() == [1]  # a tie goes to review

    rng = np.random.default_rng(0)
    p = rng.dirichlet([0.3] * 5, size=1000)
    counts = [
        np.bincount(cheapest_routes(p, c, {1: 1.0, 2: 3.0}, {1: 0.05}).route, minlength=3) for c in (2, 20)
    ]
    assert counts[0].tolist() == [854, 146, 0]
    assert counts[1].tolist() == [85, 915, 0]
    # by hand: tier 1 (1 + 0.05 c) always beats tier 2 (3); auto-accept wins where (1 - max p) c is lower
    top = p.max(axis=1)
    assert [int(((1 - top) * c < 1 + 0.05 * c).sum()) for c in (2, 20)] == [854, 85]
    with pytest.raises(Invalid):
        cheapest_routes([0.5, 0.5], 1.0, {1: 1.0})
    with pytest.raises(Invalid):
        cheapest_routes(proba, 1.0, {0: 1.0})
    with pytest.raises(Invalid):
        cheapest_routes(proba, 1.0, {1: 1.0}, {2: 0.1})
