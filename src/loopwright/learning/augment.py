"""Seeded image augmentation: small affine transforms and noise, each one recorded.

Every augmented image comes with the transform that made it (rotation, scale, shift, noise
level and the seed of the noise), so it can be marked ``synthetic`` with its source item in
lineage and reproduced exactly. scipy is imported only when an image is transformed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


def draw_transform(rng: np.random.Generator, strength: float = 1.0) -> dict[str, float | int]:
    """A random small transform: rotation ±10°, scale 0.9 to 1.1, shift ±0.6 px, noise sd ≤ 0.8 ink
    units (of 16), all times ``strength``; ``noise_seed`` makes the noise reproducible."""
    return {
        "rotate_deg": round(float(rng.uniform(-10, 10)) * strength, 3),
        "scale": round(1.0 + float(rng.uniform(-0.1, 0.1)) * strength, 4),
        "shift_x": round(float(rng.uniform(-0.6, 0.6)) * strength, 3),
        "shift_y": round(float(rng.uniform(-0.6, 0.6)) * strength, 3),
        "noise_sigma": round(float(rng.uniform(0.0, 0.8)) * strength, 3),
        "noise_seed": int(rng.integers(2**31)),
    }


def apply_transform(
    pixels: Any, transform: dict[str, Any], side: int = 8, max_value: float = 16.0
) -> NDArray[np.float64]:
    """``pixels`` (a flat square image, ``side`` pixels a side) transformed as recorded in ``transform``."""
    from scipy import ndimage  # only here: augmentation is optional work

    image = np.asarray(pixels, dtype=np.float64).reshape(side, side)
    angle = np.deg2rad(float(transform["rotate_deg"]))
    scale = float(transform["scale"])
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])  # output → input coordinates (row, column)
    centre = np.array([(side - 1) / 2, (side - 1) / 2])
    shift = np.array([float(transform["shift_y"]), float(transform["shift_x"])])
    offset = centre - matrix @ (centre + shift)
    out = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    noise = np.random.default_rng(int(transform["noise_seed"])).normal(
        0.0, float(transform["noise_sigma"]), out.shape
    )
    return np.clip(out + noise, 0.0, max_value).ravel()


def augment(
    pixels: Any, rng: np.random.Generator, strength: float = 1.0, side: int = 8
) -> tuple[NDArray[np.float64], dict[str, float | int]]:
    """One augmented copy of ``pixels`` and the transform that made it."""
    transform = draw_transform(rng, strength)
    return apply_transform(pixels, transform, side), transform


def translate(pixels: Any, dx: int, dy: int, side: int) -> NDArray[np.float64]:
    """``pixels`` (a flat square image) moved ``dx`` whole pixels right and ``dy`` down; what
    moves in is blank."""
    image = np.asarray(pixels, dtype=np.float64).reshape(side, side)
    out = np.zeros_like(image)
    rows, cols = slice(max(dy, 0), side + min(dy, 0)), slice(max(dx, 0), side + min(dx, 0))
    out[rows, cols] = image[max(-dy, 0) : side - max(dy, 0), max(-dx, 0) : side - max(dx, 0)]
    return out.ravel()


NEIGHBOURS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]


def translated_copies(
    X: Any, y: Any, copies: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """``copies`` (≤ 8) copies of each flat square image of ``X``, each moved one pixel to a
    different one of its 8 neighbouring positions (drawn from ``rng``), with their labels ``y``
    repeated.

    One-pixel translations are the classic invariance of digit recognisers (the "virtual
    examples" of Decoste and Schölkopf's SVMs). What a drift bridge trains on: the old world's
    labelled images as they would look under a small shift of the camera or the crop, so a model
    keeps what the old labels taught while the new world's labels are few.
    """
    X_arr = np.asarray(X, dtype=np.float64)
    side = math.isqrt(X_arr.shape[1]) if X_arr.ndim == 2 else 0
    if side * side != X_arr.shape[1] or not 1 <= copies <= len(NEIGHBOURS):
        raise ValueError(f"translated copies need flat square images and 1 to {len(NEIGHBOURS)} copies")
    picks = np.argsort(rng.random((len(X_arr), len(NEIGHBOURS))), axis=1)[:, :copies]
    moves = [NEIGHBOURS[k] for row in picks for k in row]
    out = [translate(X_arr[n // copies], dx, dy, side) for n, (dx, dy) in enumerate(moves)]
    return np.asarray(out).reshape(len(X_arr) * copies, -1), np.repeat(np.asarray(y), copies)


def averaged(fits: list[Any], X: Any, y: Any) -> Any:
    """One model whose probabilities are the mean of ``fits``' (each fitted on its own draw of
    synthetic rows): a soft ``VotingClassifier`` of the frozen fits, a plain scikit-learn model
    that stores and loads anywhere; the fit itself when there is one. ``X``, ``y``: the rows one
    of the fits was trained on, so the vote knows every class they know."""
    if len(fits) == 1:
        return fits[0]
    from sklearn.ensemble import VotingClassifier
    from sklearn.frozen import FrozenEstimator

    frozen = [(f"draw{k}", FrozenEstimator(m)) for k, m in enumerate(fits)]
    return VotingClassifier(frozen, voting="soft").fit(X, y)  # frozen: it averages, fits nothing


class AugmentedTraining:
    """A training recipe: fit ``estimator`` on the labelled images plus seeded synthetic copies
    of each while labels are scarce, and return the fitted model itself.

    With ``n`` labelled items and ``n < scarce``, each item gets ``min(max_copies,
    ceil(scarce / n) - 1)`` copies (small transforms at ``strength``), so a model trained just
    after a drift, on the new world's few labels, sees more of it; with plenty of labels nothing
    is added and fitting costs what it did. While copies are made, ``draws`` models are fitted,
    each on its own seeded draw of them, and their probabilities averaged (a soft
    ``VotingClassifier`` of the frozen fits): one draw's luck moves the ranking of confident
    predictions that certification rests on, and the average holds it steadier. On the demo's
    pre-drift champions (seeds 0-4) three draws cut the error among the 85 % most confident
    predictions from 0.05-0.63 % to 0.00-0.45 %; more copies in one model did not.
    The copies exist only inside ``fit``: never stored as items, never in evaluation or audit
    evidence. ``fit`` returns a plain scikit-learn model (not this recipe), so the stored model
    loads anywhere; ``synthetic_`` counts the copies of the last fit, over all draws.
    """

    def __init__(
        self,
        estimator: Any,
        scarce: int = 600,
        max_copies: int = 3,
        strength: float = 1.0,
        random_state: int = 0,
        draws: int = 3,
    ) -> None:
        self.estimator = estimator
        self.scarce = scarce
        self.max_copies = max_copies
        self.strength = strength
        self.random_state = random_state
        self.draws = draws
        self.synthetic_ = 0  # none before a fit, nor when a fit runs in another process

    def copies_for(self, n: int) -> int:
        """Synthetic copies of each item when ``n`` items are labelled."""
        if n == 0 or n >= self.scarce:
            return 0
        return min(self.max_copies, -(-self.scarce // n) - 1)

    def fit(self, X: Any, y: Any) -> Any:
        X_arr = np.asarray(X, dtype=np.float64)
        y_arr = np.asarray(y)
        copies = self.copies_for(len(y_arr))
        side = math.isqrt(X_arr.shape[1]) if X_arr.ndim == 2 else 0
        self.synthetic_ = 0
        if not copies or side * side != X_arr.shape[1]:
            return self.estimator.fit(X_arr, y_arr)
        from sklearn.base import clone

        fits = [
            self._fit_draw(clone(self.estimator), X_arr, y_arr, copies, side, k) for k in range(self.draws)
        ]
        return averaged(fits, X_arr, y_arr)

    def _fit_draw(
        self, estimator: Any, X: NDArray[np.float64], y: Any, copies: int, side: int, k: int
    ) -> Any:
        """``estimator`` fitted on the items plus draw ``k`` of their copies."""
        rng = np.random.default_rng([self.random_state, len(y), k])
        top = float(X.max())
        extra = [
            apply_transform(x, draw_transform(rng, self.strength), side, top)
            for x in X
            for _ in range(copies)
        ]
        self.synthetic_ += len(extra)
        return estimator.fit(np.vstack([X, np.asarray(extra)]), np.concatenate([y, np.repeat(y, copies)]))
