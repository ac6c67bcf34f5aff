"""Calibrate confidences on audited data: isotonic regression, and the expected calibration error."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.errors import Invalid, NotFitted

if TYPE_CHECKING:
    from sklearn.isotonic import IsotonicRegression


class Calibrator:
    """Map raw confidences to the observed accuracy with isotonic regression (monotone).

    With fewer than ``min_points`` audited items (or only one outcome) ``transform`` is the
    identity: too little data to correct anything.
    """

    def __init__(self, min_points: int = 20) -> None:
        self.min_points = min_points
        self._iso: IsotonicRegression | None = None
        self._fitted = False

    @property
    def is_identity(self) -> bool:
        """Whether the fit fell back to the identity."""
        return self._iso is None

    def fit(self, confidences: ArrayLike, correct: ArrayLike) -> Calibrator:
        """Fit on audited items: each item's confidence and whether the model was right."""
        conf, ok = _pairs(confidences, correct)
        self._iso = None
        if conf.size >= self.min_points and 0 < ok.sum() < ok.size:
            from sklearn.isotonic import IsotonicRegression  # on use: keeps start-up light

            self._iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(conf, ok)
        self._fitted = True
        return self

    def transform(self, confidences: ArrayLike) -> NDArray[np.float64]:
        """Calibrated confidences, same shape as the input."""
        if not self._fitted:
            raise NotFitted("Calibrator.transform called before fit; fit it on audited items first")
        conf = _confidences(confidences)
        if self._iso is None:
            return conf.copy()
        return np.asarray(self._iso.predict(conf.ravel()), dtype=np.float64).reshape(conf.shape)


def expected_calibration_error(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    """Σ over equal-width bins of (share of items) * |accuracy - mean confidence|; 0 when empty."""
    if n_bins < 1:
        raise Invalid(f"n_bins must be ≥ 1, got {n_bins}")
    conf, ok = _pairs(confidences, correct)
    if conf.size == 0:
        return 0.0
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(bins, weights=ok - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / conf.size)


def _confidences(confidences: ArrayLike) -> NDArray[np.float64]:
    conf = np.asarray(confidences, dtype=np.float64)
    if np.isnan(conf).any() or ((conf < 0.0) | (conf > 1.0)).any():
        raise Invalid("confidences must be numbers in [0, 1] with no NaN; drop or fix the bad rows")
    return conf


def _pairs(confidences: ArrayLike, correct: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    conf = _confidences(confidences).ravel()
    ok = np.asarray(correct, dtype=np.float64).ravel()
    if conf.size != ok.size:
        raise Invalid(f"confidences has {conf.size} entries but correct has {ok.size}; give one per item")
    return conf, ok
