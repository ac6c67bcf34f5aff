"""Two-sample tests and distances for one feature: KS, Wasserstein and PSI for numbers, χ², JS and PSI
for categories. The numeric ones work on sorted, finite arrays so one sort serves all three."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite
EXACT_KS_MAX_PAIRS = 1_000_000  # n·m up to this: scipy's exact KS p-value; above: the asymptotic one


def _right_rank(x: np.ndarray) -> np.ndarray:
    """For sorted ``x``: how many elements are ≤ x[i] (ties share the count of the last one)."""
    n = x.size
    last = np.empty(n, dtype=bool)
    last[:-1] = x[1:] != x[:-1]
    last[-1] = True
    pos = np.where(last, np.arange(1, n + 1), n + 1)
    return np.minimum.accumulate(pos[::-1])[::-1]


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D of sorted finite samples: sup |F_a - F_b| at every sample point."""
    n, m = a.size, b.size
    d_a = np.abs(_right_rank(a) / n - np.searchsorted(b, a, side="right") / m).max()
    d_b = np.abs(np.searchsorted(a, b, side="right") / n - _right_rank(b) / m).max()
    return float(max(d_a, d_b))


def ks_pvalue(d: float, a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value: exact (scipy) for small samples, else the asymptotic one scipy's ``asymp`` gives."""
    from scipy import stats  # on use: keeps start-up light

    n, m = a.size, b.size
    if n * m <= EXACT_KS_MAX_PAIRS:
        return float(stats.ks_2samp(a, b, method="exact").pvalue)
    return float(np.clip(stats.kstwo.sf(d, round(n * m / (n + m))), 0.0, 1.0))


@lru_cache(maxsize=16)
def _quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Breakpoints of both empirical quantile functions on (0, 1]; as integers over n·m."""
    points = np.union1d(np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n)
    width = np.diff(points, prepend=0) / (n * m)
    return width, (points + m - 1) // m - 1, (points + n - 1) // n - 1


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance W1 of sorted samples: ∫ |Q_a(u) - Q_b(u)| du over the merged quantile grid."""
    if a.size == b.size:
        return float(np.abs(a - b).mean())
    width, ia, ib = _quantile_grid(a.size, b.size)
    return float((width * np.abs(a[ia] - b[ib])).sum())


def psi_from_shares(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index Σ (q - p)·ln(q / p) with shares floored at ``PSI_FLOOR``."""
    p = np.maximum(p, PSI_FLOOR)
    q = np.maximum(q, PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def numeric_psi(a: np.ndarray, b: np.ndarray, bins: int = 10) -> float:
    """PSI over ``bins`` reference-quantile bins of sorted samples (0 for identical windows)."""
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1]))
    count_a = np.diff(np.searchsorted(a, edges, side="right"), prepend=0, append=a.size)
    count_b = np.diff(np.searchsorted(b, edges, side="right"), prepend=0, append=b.size)
    return psi_from_shares(count_a / a.size, count_b / b.size)


def category_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The categories seen in either window and their counts in each."""
    values, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    count_a = np.bincount(inverse[: a.size], minlength=values.size)
    count_b = np.bincount(inverse[a.size :], minlength=values.size)
    return values, count_a, count_b


def chi2_test(count_a: np.ndarray, count_b: np.ndarray) -> tuple[float, float]:
    """Pearson χ² test of homogeneity on the 2 x k table of category counts (no continuity correction)."""
    from scipy import stats  # on use: keeps start-up light

    result = stats.chi2_contingency(np.vstack([count_a, count_b]), correction=False)
    return float(result.statistic), float(result.pvalue)


def js_distance(count_a: np.ndarray, count_b: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the category shares."""
    from scipy.spatial.distance import jensenshannon  # on use: keeps start-up light

    return float(jensenshannon(count_a / count_a.sum(), count_b / count_b.sum(), base=2))
