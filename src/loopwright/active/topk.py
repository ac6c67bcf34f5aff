"""The one top-k selector every strategy uses: highest scores first, ties to the lower index."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.errors import Invalid


def top_k(scores: ArrayLike, k: int) -> NDArray[np.intp]:
    """Indices of the ``k`` highest scores, best first; equal scores go to the lower index.

    ``np.partition`` finds the k-th largest value in O(n); only the rows at or above it are sorted.
    """
    s = np.asarray(scores)
    if s.ndim != 1:
        raise Invalid(f"scores must be one number per item, got shape {s.shape}")
    if np.isnan(s).any():
        raise Invalid("scores contain NaN: check the model's probabilities")
    if k < 0:
        raise Invalid(f"cannot select {k} items: ask for 0 or more")
    n = len(s)
    k = min(k, n)
    if k == 0:
        return np.empty(0, dtype=np.intp)
    kth = np.partition(s, n - k)[n - k]
    above = np.flatnonzero(s > kth)
    ties = np.flatnonzero(s == kth)[: k - len(above)]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -s[chosen]))]
