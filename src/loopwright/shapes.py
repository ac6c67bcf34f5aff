"""Structured answers' shapes: labelled boxes on an image and labelled spans of a text.

Value objects with their checks and geometry, shared by consensus (several annotators' shapes
made one), learning (the tagger and detector, detection metrics) and the task types.
Boxes are axis-aligned, in pixels, ``(x, y, w, h)`` from the image's top-left corner; a span is a
half-open character range ``[start, end)``; tokens are words and single punctuation marks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.errors import Invalid


@dataclass(frozen=True, slots=True)
class Box:
    """One labelled box; ``score`` is a detector's confidence (None for a human's box)."""

    x: float
    y: float
    w: float
    h: float
    label: str
    score: float | None = None

    @property
    def corners(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)


def parse_box(
    raw: Mapping[str, Any],
    labels: Sequence[str],
    size: tuple[int, int] | None = None,
    where: str = "box",
) -> Box:
    """A box from JSON, checked against the label set and, given its ``(width, height)``, the image.

    Errors name the field."""
    try:
        x, y, w, h = (float(raw[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        raise Invalid(f"{where}: needs numbers x, y, w, h (pixels from the top-left corner)") from None
    label = raw.get("label")
    if label not in labels:
        raise Invalid(f"{where}.label: {label!r} is not one of the project's labels {list(labels)}")
    if not all(np.isfinite((x, y, w, h))):
        raise Invalid(f"{where}: x, y, w, h must be finite")
    if w <= 0 or h <= 0:
        raise Invalid(f"{where}: zero or negative area (w={w:g}, h={h:g})")
    if x < 0 or y < 0:
        raise Invalid(f"{where}: ({x:g}, {y:g}) lies left of or above the image")
    if size is not None and (x + w > size[0] or y + h > size[1]):
        raise Invalid(f"{where}: ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {size[0]}x{size[1]} image")
    score = raw.get("score")
    return Box(x, y, w, h, str(label), None if score is None else float(score))


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` with every box in ``b``."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    ca = np.array([box.corners for box in a])[:, None, :]
    cb = np.array([box.corners for box in b])[None, :, :]
    iw = np.clip(np.minimum(ca[..., 2], cb[..., 2]) - np.maximum(ca[..., 0], cb[..., 0]), 0, None)
    ih = np.clip(np.minimum(ca[..., 3], cb[..., 3]) - np.maximum(ca[..., 1], cb[..., 1]), 0, None)
    inter = iw * ih
    area_a = (ca[..., 2] - ca[..., 0]) * (ca[..., 3] - ca[..., 1])
    area_b = (cb[..., 2] - cb[..., 0]) * (cb[..., 3] - cb[..., 1])
    return np.asarray(inter / (area_a + area_b - inter), dtype=np.float64)


def least_confident(scores: Sequence[float]) -> float:
    """An item's confidence from its model's scored decisions: that of the least certain one,
    ``min max(s, 1 - s)`` (a proposal scored s, or a candidate left out because s < 0.5); 1.0
    when the model weighed nothing (routing's certificate then measures how often that is wrong)."""
    return min((max(float(s), 1.0 - float(s)) for s in scores), default=1.0)


_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True, order=True)
class Span:
    start: int
    end: int
    label: str
    score: float | None = None  # a tagger's confidence (None for a human's span)


def tokens(text: str) -> list[tuple[int, int]]:
    """Character ranges of the text's tokens (words and single punctuation marks)."""
    return [m.span() for m in _TOKEN.finditer(text)]


def parse_spans(
    raw: Any,
    labels: Sequence[str],
    text: str | None = None,
    allow_overlap: bool = False,
    where: str = "spans",
) -> list[Span]:
    """Spans from JSON, checked against the label set and, given it, the text; sorted.

    Errors name the field."""
    if not isinstance(raw, list | tuple) or not all(isinstance(r, Mapping) for r in raw):
        raise Invalid(f"{where}: must be a list of {{start, end, label}} objects")
    limit = len(text) if text is not None else None
    spans = []
    for k, r in enumerate(raw):
        at = f"{where}[{k}]"
        try:
            start, end = int(r["start"]), int(r["end"])
        except (KeyError, TypeError, ValueError):
            raise Invalid(f"{at}: needs integer start and end (character offsets)") from None
        if r.get("label") not in labels:
            raise Invalid(f"{at}.label: {r.get('label')!r} is not one of the project's labels {list(labels)}")
        if start < 0 or end <= start:
            raise Invalid(f"{at}: [{start}, {end}) is empty or starts before the text")
        if limit is not None and end > limit:
            raise Invalid(f"{at}: [{start}, {end}) lies outside the text (0..{limit})")
        score = r.get("score")
        spans.append(Span(start, end, str(r["label"]), None if score is None else float(score)))
    spans.sort()
    if not allow_overlap:
        for a, b in pairwise(spans):
            if b.start < a.end:
                raise Invalid(
                    f"{where}: [{a.start}, {a.end}) and [{b.start}, {b.end}) overlap; this task forbids it"
                )
    return spans


def bio_tags(text: str, spans: Sequence[Span]) -> list[str]:
    """One tag per token: ``B-label`` opens a span, ``I-label`` continues it, ``O`` is outside."""
    tags = ["O"] * len(toks := tokens(text))
    for span in sorted(spans):
        inside = [i for i, (s, e) in enumerate(toks) if s < span.end and e > span.start]
        for n, i in enumerate(inside):
            if tags[i] == "O":
                tags[i] = ("B-" if n == 0 else "I-") + span.label
    return tags


def spans_from_tags(text: str, tags: Sequence[str]) -> list[Span]:
    """The spans a tag sequence spells (an ``I-x`` after a different tag opens a span too)."""
    toks = tokens(text)
    spans: list[Span] = []
    open_: tuple[int, int, str] | None = None
    for (s, e), tag in zip(toks, tags, strict=True):
        kind, _, label = tag.partition("-")
        if open_ and kind == "I" and label == open_[2]:
            open_ = (open_[0], e, label)
            continue
        if open_:
            spans.append(Span(*open_))
            open_ = None
        if kind in ("B", "I"):
            open_ = (s, e, label)
    if open_:
        spans.append(Span(*open_))
    return spans
