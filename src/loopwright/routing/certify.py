"""Auto-accept thresholds with a statistical guarantee: Learn-then-Test over a fixed sequence.

The evidence is a *uniform random audit sample* of auto-acceptable predictions whose true label a
human gave: each audited item has a confidence and whether the model was correct. For a threshold
``t`` let ``error(t)`` be the error rate of all predictions with confidence ≥ ``t``. We want the
lowest ``t`` with ``error(t) ≤ ε``, and to be wrong about that with probability at most ``δ``.

Each threshold tests the null hypothesis ``error(t) > ε`` with an exact one-sided Clopper-Pearson
bound: with ``n`` audited items at or above ``t`` of which ``k`` are errors, the null is rejected
(``t`` is certified) when ``beta.ppf(1 - δ, k + 1, n - k) ≤ ε``. Thresholds are tested from the
highest down and the scan stops at the first that fails (fixed-sequence testing), so all
certified thresholds together are wrong with probability ≤ ``δ`` with no multiplicity correction.

Thresholds with too few audited items at or above them are skipped before the scan starts: fewer
than ``ceil(ln δ / ln(1 - ε))`` (the fewest that could be certified even with no error, so
skipping them loses nothing) or than the caller's ``min_evidence``. That start depends on the
audit confidences only, never on correctness. Strictly, Learn-then-Test assumes a grid fixed in
advance; pass ``thresholds`` to fix one (the default grid is the distinct audit confidences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.errors import Invalid


@dataclass(frozen=True, slots=True)
class Certificate:
    """The outcome of a certification; ``threshold`` None means route everything to review.

    ``n_evidence``, ``n_errors`` and ``upper_bound`` describe the certified threshold, or when
    nothing is certified the first threshold that failed (0, 0 and 1.0 if none could be tested).
    """

    threshold: float | None
    epsilon: float
    delta: float
    n_evidence: int
    n_errors: int
    upper_bound: float
    n_audited: int
    reason: str

    @property
    def certified(self) -> bool:
        """Whether some threshold is certified."""
        return self.threshold is not None


def clopper_pearson_upper(k: ArrayLike, n: ArrayLike, delta: float) -> NDArray[np.float64]:
    """One-sided exact upper bound at level ``delta`` on a binomial rate, ``k`` errors in ``n``.

    Equal to 1 when ``k == n`` (including ``n == 0``).
    """
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        from scipy.stats import beta  # on use: keeps start-up light

        bound = beta.ppf(1.0 - delta, k_arr + 1.0, np.maximum(n_arr - k_arr, 1.0))
    return np.asarray(np.where(k_arr >= n_arr, 1.0, bound), dtype=np.float64)


def min_evidence_for(epsilon: float, delta: float, errors: int = 0) -> int:
    """Fewest audited items with ``errors`` errors whose upper bound is ≤ ``ε`` at ``δ``.

    With no error it is ``ceil(ln δ / ln(1 - ε))``: 149 for ε = 0.02, δ = 0.05.
    """
    _check_levels(epsilon, delta)
    if errors < 0:
        raise Invalid(f"errors must be ≥ 0, got {errors}")
    if errors == 0:
        return math.ceil(math.log(delta) / math.log1p(-epsilon) - 1e-12)
    high = errors + 1
    while clopper_pearson_upper(errors, high, delta) > epsilon:
        high *= 2
    n = np.arange(high // 2, high + 1)
    return int(n[np.argmax(clopper_pearson_upper(errors, n, delta) <= epsilon)])


def certify(
    confidences: ArrayLike,
    correct: ArrayLike,
    epsilon: float,
    delta: float,
    thresholds: ArrayLike | None = None,
    min_evidence: int | None = None,
    start_at: float | None = None,
) -> Certificate:
    """Lowest threshold certified to keep the auto-accept error ≤ ``ε`` with probability ≥ 1 - ``δ``.

    ``confidences`` and ``correct`` describe a uniform random audit sample of auto-acceptable
    predictions. ``thresholds`` is the candidate grid (default: the distinct audit confidences);
    ``min_evidence`` raises the number of audited items a threshold needs before it is tested.
    ``start_at`` (a threshold certified before, for this model or the one it replaced) starts the
    scan at the highest grid threshold at or below it instead, if that one has the fewest items
    that could pass with no error: the sequence is fixed by what was certified before, never by
    this model's correctness, so one slip above the old threshold cannot take it away.
    Too little evidence is not an error: the certificate then has ``threshold`` None and says why.
    """
    _check_levels(epsilon, delta)
    conf, ok = _audit(confidences, correct)
    floor = min_evidence_for(epsilon, delta)
    need = max(floor, min_evidence or 0)
    grid = _grid(conf, thresholds)
    n, k = _counts(conf, ok, grid)
    levels = f"ε={epsilon:g} at δ={delta:g}"
    tested = n >= need
    if start_at is not None and ((grid <= start_at) & (n >= floor)).any():
        tested = (grid <= start_at) & (n >= floor)
    if not tested.any():
        clean = " (all correct)" if need == floor else ""
        return Certificate(
            threshold=None,
            epsilon=epsilon,
            delta=delta,
            n_evidence=0,
            n_errors=0,
            upper_bound=1.0,
            n_audited=conf.size,
            reason=f"nothing certified: {conf.size} audited items, need at least {need}{clean} at or "
            f"above a threshold for {levels}; audit more items",
        )
    start = int(np.argmax(tested))
    bounds = clopper_pearson_upper(k[start:], n[start:], delta)
    passed = bounds <= epsilon
    stop = int(np.argmin(passed)) if not passed.all() else passed.size
    i = start + max(stop - 1, 0)  # the lowest certified threshold, or the first that failed
    found = stop > 0
    if found:
        reason = (
            f"certified t={grid[i]:.4g}: {k[i]} errors in {n[i]} audited items at or above it, "
            f"upper bound {bounds[i - start]:.4f} ≤ {levels}"
        )
    else:
        reason = (
            f"nothing certified: at t={grid[i]:.4g}, the highest threshold with at least {need} "
            f"audited items, {k[i]} of {n[i]} are errors; upper bound {bounds[0]:.4f} > {levels}"
        )
    return Certificate(
        threshold=float(grid[i]) if found else None,
        epsilon=epsilon,
        delta=delta,
        n_evidence=int(n[i]),
        n_errors=int(k[i]),
        upper_bound=float(bounds[i - start]),
        n_audited=conf.size,
        reason=reason,
    )


def certify_per_class(
    confidences: ArrayLike,
    correct: ArrayLike,
    predicted: Sequence[str] | ArrayLike,
    epsilon: float,
    delta: float,
    thresholds: ArrayLike | None = None,
    min_evidence: int | None = None,
) -> dict[str, Certificate]:
    """One certificate per predicted label, each at ``δ / (number of labels)`` (Bonferroni).

    All labels' guarantees then hold together with probability ≥ 1 - ``δ``, so the auto-accept
    error of every label, and of their union, is ≤ ``ε``. Labels absent from the audit get no
    certificate (route them to review).
    """
    _check_levels(epsilon, delta)
    labels = np.asarray(predicted).astype(str)
    conf, ok = _audit(confidences, correct)
    if labels.shape != conf.shape:
        raise Invalid(f"predicted has {labels.size} entries but confidences {conf.size}; give one per item")
    classes = np.unique(labels)
    split = delta / max(classes.size, 1)
    return {
        str(c): certify(conf[labels == c], ok[labels == c], epsilon, split, thresholds, min_evidence)
        for c in classes
    }


def empirical_threshold(
    confidences: ArrayLike, correct: ArrayLike, epsilon: float, thresholds: ArrayLike | None = None
) -> float | None:
    """The naive rule, for comparison: lowest threshold whose audit error rate is ≤ ``ε``.

    No guarantee: it ignores the sampling error of the audit. None when no threshold qualifies.
    """
    _check_levels(epsilon)
    conf, ok = _audit(confidences, correct)
    grid = _grid(conf, thresholds)
    n, k = _counts(conf, ok, grid)
    good = (n > 0) & (k <= epsilon * n)
    return float(grid[good].min()) if good.any() else None


def _check_levels(epsilon: float, delta: float | None = None) -> None:
    for name, value in (("epsilon", epsilon), ("delta", delta)):
        if value is not None and not 0.0 < value < 1.0:
            raise Invalid(f"{name} must be strictly between 0 and 1, got {value}")


def _audit(confidences: ArrayLike, correct: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    conf = np.asarray(confidences, dtype=np.float64).ravel()
    raw = np.asarray(correct).ravel()
    if conf.size != raw.size:
        raise Invalid(
            f"confidences has {conf.size} entries but correct has {raw.size}; give one per audited item"
        )
    if np.isnan(conf).any() or ((conf < 0.0) | (conf > 1.0)).any():
        raise Invalid("confidences must be numbers in [0, 1] with no NaN; drop or fix the bad rows")
    if raw.dtype != np.bool_ and not np.isin(raw, (0, 1)).all():
        raise Invalid("correct must be booleans (or 0/1), one per audited item")
    return conf, raw.astype(bool)


def _counts(
    conf: NDArray[np.float64], ok: NDArray[np.bool_], grid: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Audited items with confidence ≥ each threshold, and errors among them (sort once)."""
    order = np.argsort(-conf, kind="stable")
    errors_cum = np.concatenate([[0], np.cumsum(~ok[order])])
    n = np.searchsorted(-conf[order], -grid, side="right")
    return n.astype(np.int64), errors_cum[n].astype(np.int64)


def _grid(conf: NDArray[np.float64], thresholds: ArrayLike | None) -> NDArray[np.float64]:
    """Candidate thresholds, highest first."""
    if thresholds is None:
        return np.unique(conf)[::-1]
    grid = np.asarray(thresholds, dtype=np.float64).ravel()
    if np.isnan(grid).any() or ((grid < 0.0) | (grid > 1.0)).any():
        raise Invalid("thresholds must be numbers in [0, 1] with no NaN")
    return np.unique(grid)[::-1]
