"""Column mapping: one source row (a dict of column → value) → one ingest record dict."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from loopwright.config import Modality, ProjectConfig


@dataclass(frozen=True, slots=True)
class Row:
    """One source row: its place in the file, and its record or why it has none."""

    ref: str  # "line 12", "row 7", "row group 3, row 40"
    record: dict[str, Any] | None
    problem: str | None = None
    raw: str | None = None  # the row as read, when it could not be parsed


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which columns hold what. Payload fields follow the project (its features, or its input
    field); ``media_cols`` hold image paths or URLs kept as references in metadata ``media``."""

    id_col: str = "external_id"
    metadata_cols: tuple[str, ...] = ()
    media_cols: tuple[str, ...] = ()
    prediction_cols: tuple[tuple[str, str], ...] = ()  # (label, column): carried probabilities
    prediction_model: str | None = None  # name@version of the model that made them
    embedding_col: str | None = None
    payload_cols: tuple[str, ...] = field(default=())  # set by for_project

    @classmethod
    def for_project(cls, config: ProjectConfig, **given: Any) -> ColumnMap:
        """The mapping for ``config`` (payload columns from its modality) with ``given`` options."""
        payload = tuple(config.features) if config.features is not None else (config.input_key,)
        return cls(payload_cols=payload, **given)

    def columns(self) -> list[str]:
        """Every column the mapping reads (a reader may read only these)."""
        names = [self.id_col, *self.payload_cols, *self.metadata_cols, *self.media_cols]
        names += [c for _, c in self.prediction_cols]
        if self.embedding_col:
            names.append(self.embedding_col)
        return list(dict.fromkeys(names))


def to_record(
    values: dict[str, Any], cmap: ColumnMap, config: ProjectConfig, text_typed: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """The record for one row, or why there is none (then only its id, when it has one).
    ``text_typed``: every value is a string (CSV), so numbers and lists are parsed here."""
    ext = values.get(cmap.id_col)
    if ext is None or ext == "":
        return None, f"no id in column {cmap.id_col!r}"
    record, problem = _mapped(values, cmap, config, text_typed)
    return ({"external_id": ext} if record is None else record), problem


def _mapped(
    values: dict[str, Any], cmap: ColumnMap, config: ProjectConfig, text_typed: bool
) -> tuple[dict[str, Any] | None, str | None]:
    ext = values[cmap.id_col]
    payload: dict[str, Any] = {}
    for col in cmap.payload_cols:
        if col not in values:
            return None, f"no column {col!r}"
        value = values[col]
        if config.modality is Modality.TABULAR and config.features is not None:
            value = _number(value, text_typed)
            if value is None:
                return None, _not_a_number(col, values[col])
        elif config.modality is Modality.IMAGE and text_typed and isinstance(value, str) and value[:1] == "[":
            value, problem = _json(value, col)  # pixels as JSON; any other text is an image reference
            if problem:
                return None, problem
        payload[col] = value
    record: dict[str, Any] = {"external_id": ext if isinstance(ext, int) else str(ext), "payload": payload}
    metadata = {c: values.get(c) for c in cmap.metadata_cols}
    media = {}
    for c in cmap.media_cols:
        ref = values.get(c)
        if ref in (None, ""):
            continue
        if not isinstance(ref, str):
            return None, f"column {c!r}: a media reference must be a path or URL, not {type(ref).__name__}"
        media[c] = ref  # a reference: never fetched or copied
    if media:
        metadata["media"] = media
    if metadata:
        record["metadata"] = metadata
    if cmap.prediction_cols:
        probabilities = {}
        for label, col in cmap.prediction_cols:
            p = _number(values.get(col), text_typed)
            if p is None:
                return None, f"column {col!r}: {values.get(col)!r} is not a probability"
            probabilities[label] = p
        record["prediction"] = {"model": cmap.prediction_model, "probabilities": probabilities}
    if cmap.embedding_col and values.get(cmap.embedding_col) not in (None, ""):
        vector = values[cmap.embedding_col]
        if isinstance(vector, str):
            vector, problem = _json(vector, cmap.embedding_col)
            if problem:
                return None, problem
        record["embedding"] = list(vector) if isinstance(vector, tuple) else vector
    return record, None


def _number(value: Any, text_typed: bool) -> float | int | None:
    if text_typed and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _not_a_number(col: str, value: Any) -> str:
    if isinstance(value, str) and "\n" in value:  # a quote left open swallowed the next lines
        lines = value.count("\n") + 1
        return f"column {col!r}: a quoted value runs over {lines} lines (a broken quote?): {value!r}"
    return f"column {col!r}: {value!r} is not a number"


def _json(text: str, col: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except ValueError:
        return None, f"column {col!r}: not valid JSON"
