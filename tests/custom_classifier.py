"""Custom model classes for tests/test_custom_models.py: importable (tests/ is on sys.path), so a
project that trusts them by name loads them in any process."""

from __future__ import annotations

from typing import Any

import numpy as np


class NearestCentre:
    """Probabilities from the distance to each class centre: a model class skops does not know."""

    def __init__(self, sharpness: float = 1.0) -> None:
        self.sharpness = sharpness

    def fit(self, X: Any, y: Any) -> NearestCentre:
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        self.classes_ = np.unique(y)
        self.centres_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, X: Any) -> Any:
        d = ((np.asarray(X, dtype=np.float64)[:, None, :] - self.centres_[None]) ** 2).sum(axis=2)
        logits = -self.sharpness * d
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class Contrarian(NearestCentre):
    """The nearest centre's model, but it answers the next class over: always wrong."""

    def predict_proba(self, X: Any) -> Any:
        return np.roll(super().predict_proba(X), 1, axis=1)
