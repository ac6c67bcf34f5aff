"""Detection quality: average precision per label and mAP at an IoU threshold (VOC all-point)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopwright.shapes import Box, iou_matrix


def average_precision(
    detections: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[Box]],
    label: str,
    iou_threshold: float = 0.5,
) -> float | None:
    """AP of one label over images (``detections[i]`` and ``truths[i]`` belong to image i).

    Detections are taken by falling score; each claims the unclaimed true box of its label with
    the highest IoU ≥ the threshold (a true positive) or is a false positive. AP is the area under
    the precision envelope (all-point interpolation, as PASCAL VOC since 2010 and COCO per
    threshold). None when the label has no true box.
    """
    n_true = sum(b.label == label for image in truths for b in image)
    if n_true == 0:
        return None
    ranked = sorted(
        (
            (d.score if d.score is not None else 1.0, i, d)
            for i, image in enumerate(detections)
            for d in image
            if d.label == label
        ),
        key=lambda t: -t[0],
    )
    claimed: set[tuple[int, int]] = set()
    hits = np.zeros(len(ranked))
    for r, (_, i, det) in enumerate(ranked):
        mine = [(j, t) for j, t in enumerate(truths[i]) if t.label == label and (i, j) not in claimed]
        if not mine:
            continue
        ious = iou_matrix([det], [t for _, t in mine])[0]
        best = int(np.argmax(ious))
        if ious[best] >= iou_threshold:
            claimed.add((i, mine[best][0]))
            hits[r] = 1
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / n_true])
    precision = np.concatenate([[1.0], tp / np.arange(1, len(ranked) + 1)]) if ranked else np.array([1.0])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * envelope[1:]))


def mean_average_precision(
    detections: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[Box]],
    labels: Sequence[str],
    iou_threshold: float = 0.5,
) -> float:
    """Mean of the labels' APs (labels with no true box are left out); 0.0 when none has one."""
    aps = [
        ap for lab in labels if (ap := average_precision(detections, truths, lab, iou_threshold)) is not None
    ]
    return float(np.mean(aps)) if aps else 0.0
