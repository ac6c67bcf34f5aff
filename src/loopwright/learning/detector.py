"""A light box detector that trains on CPU in seconds: a sliding-window classifier with NMS.

Every window of each size in ``windows`` (square, in pixels) at ``stride`` is resized to
``cell`` x ``cell`` and classified among the labels plus background by a logistic regression on
its standardised pixels. Windows whose best label is not background and whose probability is at
least ``min_score`` become candidate boxes; non-maximum suppression (class-agnostic, at
``nms_iou``) keeps the most confident of each overlapping group. The score is that probability,
which routing reads. Training crops come from the labelled boxes (positives) and from random
windows that overlap no box by more than IoU 0.2 or overlap one by 0.2-0.5 (background: a window
half on an object is not a detection). Grey images as 2-D arrays; an RGB
array is averaged to grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.errors import Invalid
from loopwright.shapes import Box, iou_matrix

BACKGROUND = "__background__"


def grey(image: NDArray[np.floating] | NDArray[np.integer]) -> NDArray[np.float64]:
    a = np.asarray(image, dtype=np.float64)
    return a.mean(axis=2) if a.ndim == 3 else a


def _crop(image: NDArray[np.float64], box: Box, cell: int) -> NDArray[np.float64]:
    """The box's pixels resampled to cell x cell (nearest sample at cell centres)."""
    ys = np.clip((box.y + (np.arange(cell) + 0.5) * box.h / cell).astype(int), 0, image.shape[0] - 1)
    xs = np.clip((box.x + (np.arange(cell) + 0.5) * box.w / cell).astype(int), 0, image.shape[1] - 1)
    return image[np.ix_(ys, xs)].ravel()


def _crops(image: NDArray[np.float64], windows: Sequence[Box], cell: int) -> NDArray[np.float64]:
    """:func:`_crop` of many whole-pixel windows inside the image at once (one row each)."""
    out = np.empty((len(windows), cell * cell))
    if not windows:
        return out
    corners = np.array([(w.x, w.y, w.w, w.h) for w in windows], dtype=np.int64)
    for side in np.unique(corners[:, 2]):
        rows = np.flatnonzero(corners[:, 2] == side)
        step = ((np.arange(cell) + 0.5) * side / cell).astype(np.int64)
        ys = corners[rows, 1][:, None] + step
        xs = corners[rows, 0][:, None] + step
        out[rows] = image[ys[:, :, None], xs[:, None, :]].reshape(len(rows), -1)
    return out


def nms(boxes: Sequence[Box], iou: float) -> list[Box]:
    """Greedy non-maximum suppression by falling score."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -(b.score or 0.0)):
        if not kept or iou_matrix([box], kept).max() < iou:
            kept.append(box)
    return kept


class SlidingWindowDetector:
    def __init__(
        self,
        windows: Sequence[int] = (16,),
        stride: int = 2,
        cell: int = 8,
        background_per_image: int = 24,
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        C: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.windows = windows
        self.stride = stride
        self.cell = cell
        self.background_per_image = background_per_image
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.C = C
        self.random_state = random_state

    def _windows(self, shape: tuple[int, ...]) -> list[Box]:
        h, w = shape[:2]
        return [
            Box(float(x), float(y), float(s), float(s), BACKGROUND)
            for s in self.windows
            for y in range(0, h - s + 1, self.stride)
            for x in range(0, w - s + 1, self.stride)
        ]

    def fit(self, images: Sequence[NDArray[Any]], boxes: Sequence[Sequence[Box]]) -> SlidingWindowDetector:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(self.random_state)
        X, y = [], []
        for image, truth in zip(images, boxes, strict=True):
            g = grey(image)
            for box in truth:
                X.append(_crop(g, box, self.cell))
                y.append(box.label)
            candidates = self._windows(g.shape)
            overlap = _max_iou(candidates, truth)
            far = [c for c, o in zip(candidates, overlap, strict=True) if o < 0.2]
            near = [c for c, o in zip(candidates, overlap, strict=True) if 0.2 <= o < 0.5]
            for pool in (far, near):  # empty canvas, and windows half on an object: both background
                picked = rng.choice(len(pool), size=min(self.background_per_image, len(pool)), replace=False)
                X.extend(_crops(g, [pool[k] for k in picked], self.cell))
                y.extend([BACKGROUND] * len(picked))
        if len(set(y) - {BACKGROUND}) < 1 or BACKGROUND not in y:
            raise Invalid("the detector needs at least one labelled box and some background to learn from")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
        self.model_.fit(np.array(X), y)
        self.classes_ = np.asarray(self.model_.classes_)
        return self

    def predict(self, images: Sequence[NDArray[Any]]) -> list[list[Box]]:
        out: list[list[Box]] = []
        for image in images:
            g = grey(image)
            windows = self._windows(g.shape)
            if not windows:
                out.append([])
                continue
            proba = self.model_.predict_proba(_crops(g, windows, self.cell))
            best = proba.argmax(axis=1)
            found = [
                Box(w.x, w.y, w.w, w.h, str(self.classes_[k]), round(float(p[k]), 6))
                for w, p, k in zip(windows, proba, best, strict=True)
                if self.classes_[k] != BACKGROUND and p[k] >= self.min_score
            ]
            out.append(nms(found, self.nms_iou))
        return out


def _max_iou(candidates: Sequence[Box], truth: Sequence[Box]) -> NDArray[np.float64]:
    return iou_matrix(candidates, truth).max(axis=1) if truth else np.zeros(len(candidates))
