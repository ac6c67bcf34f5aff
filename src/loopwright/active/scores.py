"""Uncertainty scores over a probability matrix (rows: items, columns: classes). Higher = ask first."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.errors import Invalid
from loopwright.routing import confidence


def check_proba(proba: ArrayLike) -> NDArray[np.float64]:
    """A finite 2-D probability matrix with at least two columns, or ``Invalid`` saying what is wrong."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise Invalid(f"probabilities must be one row per item and ≥ 2 class columns, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise Invalid("probabilities contain NaN or infinite values: check the model before selecting")
    return p


def pool_proba(model: Any, X: Any) -> NDArray[np.float64]:
    """``model.predict_proba(X)`` as float64; ``Invalid`` if the model cannot give probabilities.

    Values are checked by the score functions, which every caller applies next."""
    if model is None or not callable(getattr(model, "predict_proba", None)):
        raise Invalid(
            f"{type(model).__name__} has no predict_proba: uncertainty strategies need a probabilistic "
            "model (or use the 'random' or 'kcenter' strategy)"
        )
    return np.asarray(model.predict_proba(X), dtype=np.float64)


def least_confidence(proba: ArrayLike) -> NDArray[np.float64]:
    """1 - probability of the predicted class."""
    return 1.0 - confidence.max_probability(check_proba(proba))


def smallest_margin(proba: ArrayLike) -> NDArray[np.float64]:
    """1 - (difference between the two most probable classes)."""
    return 1.0 - confidence.margin(check_proba(proba))


def entropy(proba: ArrayLike) -> NDArray[np.float64]:
    """Shannon entropy in nats."""
    return confidence.entropy(check_proba(proba))
