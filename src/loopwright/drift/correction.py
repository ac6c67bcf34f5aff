"""Multiple-testing correction of per-feature p-values: Benjamini-Hochberg (default) or Holm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopwright.errors import Invalid

CORRECTIONS = ("bh", "holm", "none")


def adjust_pvalues(p_values: Sequence[float] | np.ndarray, method: str = "bh") -> np.ndarray:
    """Adjusted p-values, in the input order; reject where ``adjusted <= alpha``.

    ``bh``: Benjamini-Hochberg step-up, controls the false-discovery rate among flagged features
    (and, when no feature drifts, the chance of any flag) at alpha under independence or positive
    dependence. ``holm``: step-down Bonferroni, controls the family-wise error under any
    dependence, more conservative. ``none``: the raw p-values.
    """
    if method not in CORRECTIONS:
        raise Invalid(f"unknown correction {method!r}: use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise Invalid("p-values must be a flat list")
    if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
        raise Invalid("p-values must lie in [0, 1] and not be missing")
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "bh":
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    else:
        scaled = ranked * (m - np.arange(m))
        adjusted = np.maximum.accumulate(scaled)
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
