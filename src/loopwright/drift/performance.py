"""Label-free performance estimate (confidence-based, like NannyML's CBPE) and its check on an audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopwright.errors import Invalid


@dataclass(frozen=True)
class AccuracyEstimate:
    """Expected accuracy of a window and an interval for its realised accuracy (if calibrated)."""

    expected: float
    low: float
    high: float
    n: int
    confidence: float


@dataclass(frozen=True)
class AuditComparison:
    """An audited accuracy set against the estimate: Clopper-Pearson interval and a binomial test."""

    estimated: float
    audited: float
    audited_low: float
    audited_high: float
    n_audited: int
    gap: float  # audited - estimated
    p_value: float
    consistent: bool


def _max_proba(proba: Any) -> np.ndarray:
    p = np.asarray(proba, dtype=float)
    if p.ndim == 2:
        p = p.max(axis=1)
    if p.ndim != 1 or p.size == 0:
        raise Invalid("give probabilities as rows x classes (or the top-class probability per row), ≥ 1 row")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise Invalid("probabilities must be finite and lie in [0, 1]")
    return p


def _correct(correct: Any, n: int) -> np.ndarray:
    c = np.asarray(correct, dtype=float)
    if c.shape != (n,) or not np.isin(c, (0.0, 1.0)).all():
        raise Invalid(f"correct must be {n} values of 0/1 (1 = the prediction was right)")
    return c


def estimate_accuracy(
    proba: Any, *, confidence: float = 0.95, calibration: tuple[Any, Any] | None = None
) -> AccuracyEstimate:
    """Expected accuracy = mean top-class probability; interval from the Poisson-binomial variance.

    If the probabilities are calibrated, the number of correct predictions is a sum of independent
    Bernoulli(p_i), with mean Σ p_i and variance Σ p_i (1 - p_i); the interval is the normal one,
    clipped to [0, 1]. ``calibration=(reference_proba, reference_correct)`` first maps the top-class
    probability through an isotonic fit of correctness on a labelled reference window.
    """
    if not 0 < confidence < 1:
        raise Invalid(f"confidence must lie strictly between 0 and 1, got {confidence}")
    p = _max_proba(proba)
    if calibration is not None:
        ref_p = _max_proba(calibration[0])
        ref_c = _correct(calibration[1], ref_p.size)
        from sklearn.isotonic import IsotonicRegression  # on use: keeps start-up light

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(ref_p, ref_c)
        p = np.asarray(iso.predict(p), dtype=float)
    n = p.size
    expected = float(p.mean())
    sd = float(np.sqrt(np.sum(p * (1 - p)))) / n
    from scipy import stats  # on use: keeps start-up light

    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return AccuracyEstimate(expected, max(0.0, expected - z * sd), min(1.0, expected + z * sd), n, confidence)


def estimate_accuracy_by_window(proba: Any, window: int, **kwargs: Any) -> list[AccuracyEstimate]:
    """``estimate_accuracy`` on consecutive windows of ``window`` rows (the last may be shorter)."""
    p = _max_proba(proba)
    if window < 1:
        raise Invalid(f"window must be at least 1 row, got {window}")
    return [estimate_accuracy(p[i : i + window], **kwargs) for i in range(0, p.size, window)]


def compare_with_audit(
    estimate: AccuracyEstimate, n_correct: int, n_audited: int, *, alpha: float = 0.05
) -> AuditComparison:
    """Is the audited accuracy (n_correct of n_audited) consistent with the label-free estimate?

    Two-sided exact binomial test of the audit against the expected accuracy; ``consistent`` when
    its p-value exceeds ``alpha``. A persistent gap means the probabilities are miscalibrated on
    this window (recalibrate) or the estimate's assumption (no concept drift) fails.
    """
    if n_audited < 1 or not 0 <= n_correct <= n_audited:
        raise Invalid(f"need 0 ≤ n_correct ≤ n_audited and n_audited ≥ 1, got {n_correct} of {n_audited}")
    from scipy import stats  # on use: keeps start-up light

    test = stats.binomtest(int(n_correct), int(n_audited), min(max(estimate.expected, 1e-12), 1 - 1e-12))
    ci = test.proportion_ci(confidence_level=1 - alpha, method="exact")
    audited = n_correct / n_audited
    return AuditComparison(
        estimated=estimate.expected,
        audited=audited,
        audited_low=float(ci.low),
        audited_high=float(ci.high),
        n_audited=int(n_audited),
        gap=audited - estimate.expected,
        p_value=float(test.pvalue),
        consistent=bool(test.pvalue > alpha),
    )
