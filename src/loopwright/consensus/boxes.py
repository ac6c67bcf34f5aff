"""Bounding boxes from several annotators: IoU matching, skill-weighted box fusion, agreement.

Boxes are axis-aligned, in pixels, ``(x, y, w, h)`` from the image's top-left corner. Several
annotators' boxes on one image are grouped by optimal (Hungarian) matching on IoU: each
annotator's boxes are matched one-to-one to the groups found so far, a pair counting only at
IoU ≥ ``iou_threshold``; an unmatched box starts a group of its own. A group is fused into one box
whose corners are the skill-weighted mean of its members' (weighted box fusion), whose label is the
skill-weighted vote, and whose ``support`` is the share of the annotators' total skill behind it;
a group with support below ``min_support`` is marked unconfirmed (found by too few annotators).
Matching ignores labels, so two annotators who draw the same box with different labels disagree on
the label of one object rather than each finding an object the other missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from loopwright.errors import Invalid
from loopwright.shapes import Box, iou_matrix


def match(a: Sequence[Box], b: Sequence[Box], iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """The one-to-one pairs ``(i, j, iou)`` maximising total IoU, keeping pairs at ≥ the threshold."""
    iou = iou_matrix(a, b)
    if iou.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment  # on use: keeps start-up light

    rows, cols = linear_sum_assignment(-iou)
    return [
        (int(i), int(j), float(iou[i, j]))
        for i, j in zip(rows, cols, strict=True)
        if iou[i, j] >= iou_threshold
    ]


@dataclass(frozen=True, slots=True)
class FusedBox:
    """One object as the annotators saw it together."""

    box: Box
    support: float  # share of the annotators' total skill behind this box
    annotators: tuple[str, ...]
    label_votes: dict[str, float]  # skill behind each label
    confirmed: bool


def fuse(
    boxes: Mapping[str, Sequence[Box]],
    skills: Mapping[str, float] | None = None,
    iou_threshold: float = 0.5,
    min_support: float = 0.5,
) -> list[FusedBox]:
    """Fuse every annotator's boxes on one image (``boxes``: annotator → their boxes).

    ``skills`` weight each annotator (1.0 when absent). Annotators are taken in name order, so the
    result does not depend on the order they answered in.
    """
    weight = {a: float((skills or {}).get(a, 1.0)) for a in boxes}
    total = sum(weight.values())
    if total <= 0:
        raise Invalid("annotator skills must have a positive sum")
    groups: list[list[tuple[str, Box]]] = []
    for annotator in sorted(boxes):
        mine = list(boxes[annotator])
        centres = [_fused_box(g, weight) for g in groups]
        taken = match(mine, centres, iou_threshold)
        matched = {i for i, _, _ in taken}
        for i, j, _ in taken:
            groups[j].append((annotator, mine[i]))
        groups.extend([(annotator, box)] for i, box in enumerate(mine) if i not in matched)
    fused = []
    for group in groups:
        support = sum(weight[a] for a, _ in group) / total
        fused.append(
            FusedBox(
                box=_fused_box(group, weight),
                support=round(support, 6),
                annotators=tuple(a for a, _ in group),
                label_votes=_votes(group, weight),
                confirmed=support >= min_support,
            )
        )
    return sorted(fused, key=lambda f: (f.box.y, f.box.x))


def _fused_box(group: Sequence[tuple[str, Box]], weight: Mapping[str, float]) -> Box:
    w = np.array([weight[a] for a, _ in group])
    corners = np.array([box.corners for _, box in group])
    x0, y0, x1, y1 = (w @ corners) / w.sum()
    votes = _votes(group, weight)
    label = min(votes, key=lambda lab: (-votes[lab], lab))  # ties: the first label by name
    return Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0), label)


def _votes(group: Sequence[tuple[str, Box]], weight: Mapping[str, float]) -> dict[str, float]:
    votes: dict[str, float] = {}
    for annotator, box in group:
        votes[box.label] = votes.get(box.label, 0.0) + weight[annotator]
    return votes


def pair_agreement(a: Sequence[Box], b: Sequence[Box], iou_threshold: float = 0.5) -> dict[str, float | None]:
    """Two annotators on one image: mean IoU of matched boxes and matched-F1 (label must agree)."""
    pairs = match(a, b, iou_threshold)
    same = [p for p in pairs if a[p[0]].label == b[p[1]].label]
    n = len(a) + len(b)
    return {
        "mean_iou": float(np.mean([p[2] for p in pairs])) if pairs else None,
        "matched_f1": 2 * len(same) / n if n else None,
    }


def agreement_report(
    images: Mapping[str, Mapping[str, Sequence[Box]]], iou_threshold: float = 0.5
) -> list[dict[str, Any]]:
    """Per annotator pair over the images both annotated: mean IoU of matched boxes and matched-F1.

    ``images``: image id → annotator → boxes. F1 pools matches over the shared images."""
    pooled: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    for by_annotator in images.values():
        for x, y in combinations(sorted(by_annotator), 2):
            a, b = by_annotator[x], by_annotator[y]
            pairs = match(a, b, iou_threshold)
            pooled.setdefault((x, y), []).extend(p[2] for p in pairs)
            c = counts.setdefault((x, y), [0, 0, 0])
            c[0] += sum(a[i].label == b[j].label for i, j, _ in pairs)
            c[1] += len(a) + len(b)
            c[2] += 1
    return [
        {
            "annotators": [x, y],
            "images": counts[(x, y)][2],
            "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
            "matched_f1": round(2 * counts[(x, y)][0] / counts[(x, y)][1], 4) if counts[(x, y)][1] else None,
        }
        for (x, y), ious in sorted(pooled.items())
    ]
