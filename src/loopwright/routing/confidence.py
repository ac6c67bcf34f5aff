"""Confidence scores over a probability matrix (rows: items, columns: classes). Higher = surer."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _proba(proba: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be a 2-D array with ≥ 2 columns, got shape {p.shape}")
    return p


def max_probability(proba: ArrayLike) -> NDArray[np.float64]:
    """Probability of the predicted class."""
    return _proba(proba).max(axis=1)


def margin(proba: ArrayLike) -> NDArray[np.float64]:
    """Difference between the two most probable classes."""
    top2 = np.partition(_proba(proba), -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def entropy(proba: ArrayLike) -> NDArray[np.float64]:
    """Shannon entropy in nats (higher = less sure)."""
    p = _proba(proba)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)
