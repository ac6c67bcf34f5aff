"""Boxes: an answer is a list of labelled boxes on an image, stored as canonical JSON text.

The geometry and its consensus live in :mod:`loopwright.consensus.boxes`; this module holds the
stored form, its check and vote, and the exports (COCO JSON, YOLO text). Bounds against the
image are checked where the item is known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from loopwright.consensus.boxes import fuse
from loopwright.errors import Invalid
from loopwright.shapes import Box, parse_box
from loopwright.tasks.base import Vote, json_list


def canonical(boxes: Sequence[Box]) -> str:
    """Stored text: boxes sorted by position, coordinates rounded to 0.01 px."""
    rows = sorted(
        (
            {"x": round(b.x, 2), "y": round(b.y, 2), "w": round(b.w, 2), "h": round(b.h, 2), "label": b.label}
            for b in boxes
        ),
        key=lambda r: (r["y"], r["x"], r["label"]),
    )
    return json.dumps(rows, separators=(",", ":"))


def decode(answer: str) -> list[Box]:
    return [Box(r["x"], r["y"], r["w"], r["h"], r["label"]) for r in json.loads(answer)]


def to_coco(images: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """COCO detection JSON. ``images``: dicts with ``file_name``, ``width``, ``height``, ``boxes``."""
    categories = [{"id": k + 1, "name": label} for k, label in enumerate(labels)]
    ids = {label: k + 1 for k, label in enumerate(labels)}
    out_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, image in enumerate(images, start=1):
        out_images.append(
            {"id": i, "file_name": image["file_name"], "width": image["width"], "height": image["height"]}
        )
        for box in image["boxes"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": ids[box.label],
                    "bbox": [box.x, box.y, box.w, box.h],
                    "area": box.w * box.h,
                    "iscrowd": 0,
                }
            )
    return {"images": out_images, "annotations": annotations, "categories": categories}


def to_yolo(boxes: Sequence[Box], width: int, height: int, labels: Sequence[str]) -> str:
    """One image's YOLO label file: ``class x_centre y_centre w h``, normalised to [0, 1]."""
    ids = {label: k for k, label in enumerate(labels)}
    lines = []
    for b in boxes:
        x, y = (b.x + b.w / 2) / width, (b.y + b.h / 2) / height
        lines.append(f"{ids[b.label]} {x:.6f} {y:.6f} {b.w / width:.6f} {b.h / height:.6f}\n")
    return "".join(lines)


class Boxes:
    """Labelled boxes on an image item (none is a valid answer: nothing to find).

    The vote fuses the answers' boxes (:func:`~loopwright.consensus.boxes.fuse`, equal weights)
    and keeps those at least half the answers found; agreement is the mean support of every box
    anyone drew, and a box found by exactly half is a tie."""

    name = "boxes"

    def parse(self, value: Any, labels: Sequence[str]) -> str:
        value = json_list(value, "boxes")
        if not isinstance(value, list | tuple) or not all(isinstance(r, Mapping) for r in value):
            raise Invalid("label: must be a list of {x, y, w, h, label} objects")
        return canonical([parse_box(r, labels, where=f"label[{k}]") for k, r in enumerate(value)])

    def vote(self, answers: Sequence[str], labels: Sequence[str]) -> Vote:
        if not answers:
            raise Invalid("a vote needs at least one answer")
        fused = fuse({f"a{k}": decode(a) for k, a in enumerate(answers)})
        kept = [f.box for f in fused if f.confirmed]
        agreement = sum(f.support for f in fused) / len(fused) if fused else 1.0
        return Vote(canonical(kept), round(agreement, 6), any(abs(f.support - 0.5) < 1e-9 for f in fused))

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        return {"boxes": json.loads(answer)}
