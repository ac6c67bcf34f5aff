""" "Did you mean": a project file's validation errors, each with the nearest known key or value."""

from __future__ import annotations

import difflib
import re
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel


def describe(root: type[BaseModel], error: Any) -> tuple[str, str]:
    """One Pydantic error as ``(dotted field, message)``, with a suggestion where one fits."""
    loc = tuple(error["loc"])
    field = ".".join(str(p) for p in loc) or "(root)"
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden" and loc:
        known = sorted(_fields(root, loc[:-1]))
        return field, f"unknown key {loc[-1]!r}{_nearest(str(loc[-1]), known, 'keys here')}"
    if kind in ("enum", "literal_error") and isinstance(error.get("input"), str):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return field, f"{error['input']!r} is not one of {options}{_nearest(error['input'], options)}"
    if kind == "union_tag_invalid":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag", ""))
        return field, f"{tag!r} is not one of {options}{_nearest(tag, options)}"
    return field, str(error["msg"])


def _nearest(word: str, options: list[str], listing: str | None = None) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; {listing}: {', '.join(options)}" if listing and options else ""


def _fields(root: type[BaseModel], path: tuple[Any, ...]) -> set[str]:
    """The keys allowed at ``path`` below ``root`` (empty when the path cannot be followed)."""
    models: list[type[BaseModel]] = [root]
    for part in path:
        if isinstance(part, int):
            continue
        tagged = [m for m in models if _tag(m) == part]
        if tagged:  # a discriminated union names the chosen member in the path
            models = tagged
            continue
        found = [m.model_fields[part].annotation for m in models if part in m.model_fields]
        models = [m for ann in found for m in _models_in(ann)]
        if not models:
            return set()
    return {name for m in models for name in m.model_fields}


def _tag(model: type[BaseModel]) -> str | None:
    step = model.model_fields.get("step")
    args = get_args(step.annotation) if step is not None else ()
    return str(args[0]) if len(args) == 1 else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation holds (through lists, optionals, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (list, tuple, dict, Union, types.UnionType) or (origin is not None and get_args(annotation)):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []
