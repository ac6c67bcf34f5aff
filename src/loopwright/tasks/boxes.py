"""Boxes: an answer is a list of labelled boxes on an image, stored as canonical JSON text.

The geometry and its consensus live in :mod:`loopwright.consensus.boxes`; this module holds the
stored form, its check and vote, and the exports (COCO JSON, YOLO text). Bounds against the
image are checked where the item is known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from loopwright.consensus.boxes import fuse, match
from loopwright.errors import Invalid
from loopwright.learning.bootstrap import ShapeGateResult, shape_gate
from loopwright.learning.detection import mean_average_precision
from loopwright.shapes import Box, parse_box
from loopwright.tasks.base import Vote, json_list

PROPOSALS = "proposals"  # payload key of the model's proposed boxes: [{x, y, w, h, label, score}]


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


def image_size(payload: Mapping[str, Any], metadata: Mapping[str, Any], field: str) -> tuple[int, int]:
    """``(width, height)`` of a box item: what ingest read of its image file, else its pixel array."""
    image = metadata.get("image")
    if isinstance(image, Mapping) and "width" in image and "height" in image:
        return int(image["width"]), int(image["height"])
    pixels = payload.get(field)
    if isinstance(pixels, list) and pixels and isinstance(pixels[0], list):
        return len(pixels[0]), len(pixels)
    raise Invalid(f"label: the item's image size is unknown (no image read from payload field {field!r})")


def check_item(
    answer: str, payload: Mapping[str, Any], metadata: Mapping[str, Any], field: str, labels: Sequence[str]
) -> None:
    """Invalid naming the box when one of the answer's boxes leaves the item's image."""
    size = image_size(payload, metadata, field)
    for k, row in enumerate(json.loads(answer)):
        parse_box(row, labels, size, where=f"label[{k}]")


def proposals(
    payload: Mapping[str, Any], metadata: Mapping[str, Any], field: str, labels: Sequence[str]
) -> list[Box]:
    """The model's proposed boxes an item carries (checked against its image), scores kept."""
    raw = payload.get(PROPOSALS)
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        raise Invalid(f"{PROPOSALS}: must be a list of {{x, y, w, h, label, score}} objects")
    size = image_size(payload, metadata, field)
    return [parse_box(r, labels, size, where=f"{PROPOSALS}[{k}]") for k, r in enumerate(raw)]


def correct(predicted: Sequence[Box], truth: Sequence[Box], iou_threshold: float = 0.5) -> bool:
    """The routing error rule: an accepted answer is right only when its boxes and the truth's
    match one to one (Hungarian, IoU ≥ ``iou_threshold``) with the same labels and none left over."""
    if len(predicted) != len(truth):
        return False
    pairs = match(predicted, truth, iou_threshold)
    return len(pairs) == len(truth) and all(predicted[i].label == truth[j].label for i, j, _ in pairs)


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


def export_files(
    rows: Sequence[Mapping[str, Any]],
    metadata: Mapping[int, Mapping[str, Any]],
    field: str,
    fmt: str,
    labels: Sequence[str],
) -> dict[str, bytes]:
    """A dataset version's rows as ``coco`` (one ``annotations.json``) or ``yolo`` (``classes.txt``
    and one ``<image stem>.txt`` per image, empty for an image without boxes). An image's file name
    is its reference's base name, or ``<external id>.png`` for an item holding pixels."""
    images: list[dict[str, Any]] = []
    for row in rows:
        ref = row["payload"].get(field)
        name = PurePath(ref).name if isinstance(ref, str) else f"{row['external_id']}.png"
        width, height = image_size(row["payload"], metadata[row["item_id"]], field)
        images.append({"file_name": name, "width": width, "height": height, "boxes": decode(row["label"])})
    if fmt == "coco":
        return {"annotations.json": json.dumps(to_coco(images, labels), indent=1).encode("utf-8")}
    files = {"classes.txt": "".join(f"{label}\n" for label in labels).encode("utf-8")}
    for image in images:
        stem = PurePath(image["file_name"]).stem + ".txt"
        if stem in files:
            raise Invalid(f"yolo export: two images would write {stem}; give the files distinct names")
        files[stem] = to_yolo(image["boxes"], image["width"], image["height"], labels).encode("utf-8")
    return files


def gate(
    truth: Sequence[Sequence[Box]],
    challenger: Sequence[Sequence[Box]],
    champion: Sequence[Sequence[Box]] | None,
    labels: Sequence[str],
    iou_threshold: float = 0.5,
    **options: Any,
) -> ShapeGateResult:
    """mAP at ``iou_threshold`` (VOC all-point AP per label) over images, paired bootstrap."""

    def score(predicted: Sequence[Sequence[Box]], true: Sequence[Sequence[Box]]) -> float:
        return mean_average_precision(predicted, true, labels, iou_threshold)

    return shape_gate(f"map@{iou_threshold:g}", score, truth, challenger, champion, **options)


class Boxes:
    """Labelled boxes on an image item (none is a valid answer: nothing to find).

    The vote fuses the answers' boxes (:func:`~loopwright.consensus.boxes.fuse`, equal weights)
    and keeps those at least half the answers found; agreement is the mean, over every box anyone
    drew, of the share of answers behind its winning label (its support when all agree on the
    label); a box found by exactly half, or a kept box whose label votes split evenly, is a tie."""

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
        n = len(answers)
        agreement = sum(max(f.label_votes.values()) / n for f in fused) / len(fused) if fused else 1.0
        split = [sorted(f.label_votes.values())[-2:] for f in fused if f.confirmed and len(f.label_votes) > 1]
        tie = any(abs(f.support - 0.5) < 1e-9 for f in fused) or any(a == b for a, b in split)
        return Vote(canonical(kept), round(agreement, 6), tie)

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        return {"boxes": json.loads(answer)}
