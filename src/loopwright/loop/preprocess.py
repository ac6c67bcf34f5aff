"""Preprocessing: the project's declared steps, each a pure function payload → payload, applied
on ingest before the checks; the steps that ran, with their parameters, go into the item's
metadata (``preprocess``) so its lineage shows them."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from loopwright.config import (
    DropEmpty,
    Modality,
    NormalizeImage,
    NormalizeText,
    PreprocessStep,
    ProjectConfig,
    ResizeImage,
)


class Dropped(Exception):
    """A step refused the record: ``reason`` says why (``empty: …``, ``corrupt: …``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fields(config: ProjectConfig, given: list[str] | None) -> list[str]:
    if given is not None:
        return given
    if config.modality is Modality.TABULAR and config.features is not None:
        return list(config.features)
    return [config.input_key]


def normalize_text(payload: dict[str, Any], step: NormalizeText, config: ProjectConfig) -> dict[str, Any]:
    out = dict(payload)
    for name in _fields(config, step.fields):
        value = out.get(name)
        if not isinstance(value, str):
            continue
        value = unicodedata.normalize(step.form, value)
        if step.collapse_whitespace:
            value = " ".join(value.split())
        out[name] = value.lower() if step.lowercase else value
    return out


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return isinstance(value, float) and value != value  # NaN


def drop_empty(payload: dict[str, Any], step: DropEmpty, config: ProjectConfig) -> dict[str, Any]:
    if empty := [f for f in _fields(config, step.fields) if _empty(payload.get(f))]:
        raise Dropped(f"empty: field(s) {empty} missing or blank")
    return payload


def _pixels(value: Any, shape: tuple[int, int] | None) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise Dropped("corrupt: pixels are not numbers") from None
    if a.ndim == 1:
        side = round(a.size**0.5)
        h, w = shape if shape is not None else (side, side)
        if h * w != a.size or a.size == 0:
            raise Dropped(f"corrupt: {a.size} pixels do not fill a {h}x{w} image")
        a = a.reshape(h, w)
    if a.ndim != 2 or a.size == 0 or not np.isfinite(a).all():
        raise Dropped("corrupt: pixels must be a finite 2-D grid (or a flat square)")
    return a


def resize_image(payload: dict[str, Any], step: ResizeImage, config: ProjectConfig) -> dict[str, Any]:
    from PIL import Image  # the import extra

    key = config.input_key
    if key not in payload:
        raise Dropped(f"corrupt: no field {key!r}")
    a = _pixels(payload[key], step.source_shape)
    image = Image.fromarray(a.astype(np.float32), mode="F")
    resized = np.asarray(image.resize((step.width, step.height), Image.Resampling.BILINEAR), dtype=np.float64)
    values = [round(float(v), 6) for v in resized.reshape(-1)] if step.flatten else resized.tolist()
    return {**payload, key: values}


def normalize_image(payload: dict[str, Any], step: NormalizeImage, config: ProjectConfig) -> dict[str, Any]:
    key = config.input_key
    if key not in payload:
        raise Dropped(f"corrupt: no field {key!r}")
    try:
        a = np.asarray(payload[key], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise Dropped("corrupt: pixels are not numbers") from None
    if not np.isfinite(a).all():
        raise Dropped("corrupt: pixels must be finite")
    return {**payload, key: np.clip(a / step.scale, 0.0, 1.0).tolist()}


_STEPS: Mapping[str, Callable[[dict[str, Any], Any, ProjectConfig], dict[str, Any]]] = {
    "normalize_text": normalize_text,
    "drop_empty": drop_empty,
    "resize_image": resize_image,
    "normalize_image": normalize_image,
}


def describe(step: PreprocessStep) -> dict[str, Any]:
    """The step as lineage records it: its name and every parameter."""
    return step.model_dump(mode="json")


def apply(config: ProjectConfig, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` through the project's steps in order; raises :class:`Dropped`."""
    out = dict(payload)
    for step in config.preprocess:
        out = _STEPS[step.step](out, step, config)
    return out


def record(config: ProjectConfig, rec: Mapping[str, Any]) -> Mapping[str, Any]:
    """``rec`` with its payload preprocessed (unchanged without steps or without a payload
    object, which the checks then refuse); raises :class:`Dropped`."""
    payload = rec.get("payload")
    if not config.preprocess or not isinstance(payload, Mapping):
        return rec
    return {**rec, "payload": apply(config, payload)}


def lineage(config: ProjectConfig) -> dict[str, Any]:
    """What an item's metadata records of its preprocessing: every step with its parameters."""
    return {"preprocess": [describe(s) for s in config.preprocess]} if config.preprocess else {}
