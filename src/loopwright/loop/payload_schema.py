"""A project's payload schema, checked per record at ingest: the fields the model reads, their
types, and for images one pixel count (fixed by a ``resize_image`` step, else by the first item
stored), so a digit with 3 pixels instead of 64 is refused instead of queued as ``model_error``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loopwright.config import Modality, ProjectConfig, ResizeImage
from loopwright.errors import Invalid
from loopwright.learning.estimators import check_payload
from loopwright.loop.context import Context
from loopwright.tasks.conversation import check_conversation

MAX_TEXT_CHARS = 1_000_000  # a text payload longer than this is a mistake, not a document


class PayloadSchema:
    """Checks one payload at a time; the first image seen fixes the pixel count when nothing did."""

    def __init__(self, config: ProjectConfig, pixels: int | None) -> None:
        self.config = config
        self.pixels = pixels

    def problem(self, payload: Any) -> str | None:
        """Why ``payload`` does not fit the schema, or None."""
        if self.config.task in ("rubric", "preference"):  # conversation items (loopwright.tasks)
            try:
                check_conversation(payload, pairwise=self.config.task == "preference")
            except Invalid as exc:
                return exc.message
        found = check_payload(self.config, payload)
        if found is not None or not isinstance(payload, Mapping):
            return found
        key = self.config.input_key
        if self.config.modality is Modality.TEXT:
            size = len(payload[key])
            if not payload[key].strip():
                return f"field {key!r} is empty"
            return (
                None
                if size <= MAX_TEXT_CHARS
                else f"field {key!r} has {size} characters (at most {MAX_TEXT_CHARS})"
            )
        if self.config.modality is Modality.IMAGE and isinstance(payload[key], str):
            return None  # an image by reference: any size (loop.media reads and checks it)
        if self.config.modality is Modality.IMAGE:
            return self._pixels(key, np.asarray(payload[key], dtype=np.float64))
        return None

    def _pixels(self, key: str, values: np.ndarray[Any, Any]) -> str | None:
        if values.ndim not in (1, 2, 3):
            return f"field {key!r} must be a flat list or a grid of rows (height x width, or x channels)"
        if self.pixels is None:
            self.pixels = int(values.size)
            return None
        if values.size != self.pixels:
            return f"field {key!r} has {values.size} values; this project's images have {self.pixels}"
        return None


def schema_for(ctx: Context) -> PayloadSchema:
    """The project's schema: the pixel count from its resize step or its newest stored item."""
    return PayloadSchema(ctx.config, _pixels(ctx) if ctx.config.modality is Modality.IMAGE else None)


def _pixels(ctx: Context) -> int | None:
    resize = [s for s in ctx.config.preprocess if isinstance(s, ResizeImage)]
    if resize and resize[-1].flatten:
        return resize[-1].height * resize[-1].width
    with ctx.store.unit_of_work() as uow:
        newest = uow.items.recent(ctx.project.id, 1)
    for item in newest:
        try:
            return int(np.asarray(item.payload.get(ctx.config.input_key), dtype=np.float64).size)
        except (TypeError, ValueError):
            return None
    return None
