"""Drift of the model's output: predicted-class shares (χ²) and top-class probability (KS)."""

from __future__ import annotations

from typing import Any

import numpy as np

from loopwright.drift.data import DataDriftReport, data_drift
from loopwright.errors import Invalid


def _proba(x: Any, which: str) -> np.ndarray:
    p = np.asarray(x, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise Invalid(f"the {which} probabilities must be rows x classes (≥ 2 classes), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise Invalid(f"the {which} probabilities hold missing or infinite values")
    return p


def prediction_drift(
    reference_proba: Any,
    current_proba: Any,
    *,
    alpha: float = 0.05,
    correction: str = "bh",
    min_rows: int = 30,
) -> DataDriftReport:
    """Two features, ``predicted_class`` (argmax, χ²) and ``max_probability`` (KS), corrected together."""
    ref = _proba(reference_proba, "reference")
    cur = _proba(current_proba, "current")
    if ref.shape[1] != cur.shape[1]:
        raise Invalid(
            f"the windows have {ref.shape[1]} and {cur.shape[1]} classes; use the same model's classes"
        )

    def features(p: np.ndarray) -> np.ndarray:
        return np.column_stack([p.argmax(axis=1), p.max(axis=1)])

    return data_drift(
        features(ref), features(cur), ["predicted_class", "max_probability"],
        categorical=["predicted_class"], alpha=alpha, correction=correction, max_categories=0,
        min_rows=min_rows, domain_classifier=False,
    )  # fmt: skip
