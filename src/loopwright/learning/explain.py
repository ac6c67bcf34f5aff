"""Why the model predicted what it did for one item: the features or tokens that pushed it.

Linear models (a pipeline whose last step has ``coef_``, after a scaler or TF-IDF): the
contribution of feature ``j`` to class ``c`` is ``coef_[c, j] * x'_j`` with ``x'`` the item as the
earlier steps transform it. Any other model: occlusion — replace one feature with its background
value (the scaler's training mean when the pipeline has one, else 0), or drop one token from a
text, and measure how much the predicted class's probability falls.

Text contributions carry the character ``spans`` of their token(s) in the original text, so a
page can highlight them; image ones carry their pixel ``index`` and the full ``heat`` map.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.config import Modality, ProjectConfig
from loopwright.learning.estimators import featurize

TOKEN = r"(?u)\b\w\w+\b"  # scikit-learn's default token pattern


@dataclass(frozen=True, slots=True)
class Contribution:
    feature: str  # field name, "pixel (row, col)", or the token / n-gram
    weight: float  # > 0 pushed towards the predicted label, < 0 away from it
    index: int | None = None  # column of a tabular or image feature
    spans: tuple[tuple[int, int], ...] = ()  # text: where the token occurs (start, end)


@dataclass(frozen=True, slots=True)
class Explanation:
    label: str  # the predicted label being explained
    confidence: float
    method: str  # "linear" or "occlusion"
    top: tuple[Contribution, ...]  # the k largest by |weight|, largest first
    heat: tuple[float, ...] | None = None  # image: one weight per pixel, row-major


def explain(model: Any, config: ProjectConfig, payload: dict[str, Any], k: int = 10) -> Explanation:
    """The top-``k`` contributions to the predicted label of one item (see the module doc)."""
    x = featurize(config, [payload])
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)[0]
    c = int(proba.argmax())
    # a label set's model has one probability column per project label (its classes_ are indices)
    label = config.labels[c] if config.task == "multilabel" else str(np.asarray(model.classes_)[c])
    text = config.modality is Modality.TEXT
    linear = _linear_parts(model)
    if linear is not None:
        transform, coef = linear
        xt = transform(x)
        if text:
            contributions = _text_linear(model, str(payload[config.input_key]), xt, coef, c)
        else:
            row = np.asarray(xt, dtype=np.float64).ravel()
            contributions = _dense(config, _class_coef(coef, c) * row)
        method = "linear"
    elif text:
        contributions = _text_occlusion(model, str(payload[config.input_key]), proba[c], c)
        method = "occlusion"
    else:
        contributions = _dense(config, _occlusion(model, np.asarray(x, dtype=np.float64)[0], proba[c], c))
        method = "occlusion"
    top = sorted((w for w in contributions if w.weight != 0.0), key=lambda w: -abs(w.weight))[:k]
    heat = None
    if config.modality is Modality.IMAGE:
        heat = tuple(w.weight for w in sorted(contributions, key=lambda w: w.index or 0))
    return Explanation(label, float(proba[c]), method, tuple(top), heat)


def _steps(model: Any) -> list[Any]:
    steps = getattr(model, "steps", None)
    return [s for _, s in steps] if steps else [model]


def _linear_parts(model: Any) -> tuple[Any, NDArray[np.float64]] | None:
    """(transform of the steps before the last, the last step's coef_) for a linear model."""
    steps = _steps(model)
    coef = getattr(steps[-1], "coef_", None)
    if coef is None or not all(hasattr(s, "transform") for s in steps[:-1]):
        return None

    def transform(x: Any) -> Any:
        for step in steps[:-1]:
            x = step.transform(x)
        return x

    return transform, np.atleast_2d(np.asarray(coef, dtype=np.float64))


def _class_coef(coef: NDArray[np.float64], c: int) -> NDArray[np.float64]:
    """Coefficients for class ``c``; a binary model's single row favours class 1."""
    if coef.shape[0] == 1:
        return coef[0] if c == 1 else -coef[0]
    return coef[c]


def _names(config: ProjectConfig, n: int) -> list[str]:
    if config.modality is Modality.IMAGE:
        side = math.isqrt(n)
        if side * side == n:
            return [f"pixel ({j // side}, {j % side})" for j in range(n)]
        return [f"pixel {j}" for j in range(n)]
    if config.features is not None:
        return list(config.features)
    return [f"{config.input_key}[{j}]" for j in range(n)]


def _dense(config: ProjectConfig, weights: NDArray[np.float64]) -> list[Contribution]:
    names = _names(config, len(weights))
    return [Contribution(names[j], float(w), j) for j, w in enumerate(weights)]


def _occlusion(model: Any, x: NDArray[np.float64], p: float, c: int) -> NDArray[np.float64]:
    """p(c | x) minus p(c | x with feature j set to its background), for every j at once."""
    background = getattr(_steps(model)[0], "mean_", None)
    base = np.zeros_like(x) if background is None else np.asarray(background, dtype=np.float64)
    occluded = np.repeat(x[None, :], len(x), axis=0)
    occluded[np.arange(len(x)), np.arange(len(x))] = base
    return p - np.asarray(model.predict_proba(occluded), dtype=np.float64)[:, c]


def _tokens(text: str, pattern: str = TOKEN) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in re.finditer(pattern, text)]


def _text_linear(model: Any, text: str, xt: Any, coef: NDArray[np.float64], c: int) -> list[Contribution]:
    vectorizer = _steps(model)[0]
    if not (hasattr(xt, "tocsr") and hasattr(vectorizer, "get_feature_names_out")):
        return []
    names, row = vectorizer.get_feature_names_out(), xt.tocsr()
    weights = _class_coef(coef, c)
    pattern = getattr(vectorizer, "token_pattern", None) or TOKEN
    tokens = _tokens(text, pattern)
    out = []
    for j, value in zip(row.indices, row.data, strict=True):
        term = str(names[j])
        out.append(Contribution(term, float(weights[j] * value), int(j), _spans(term, tokens)))
    return out


def _spans(term: str, tokens: list[tuple[str, int, int]]) -> tuple[tuple[int, int], ...]:
    """Where the (space-joined n-gram) ``term`` occurs among ``tokens``."""
    parts = term.split(" ")
    n = len(parts)
    return tuple(
        (tokens[i][1], tokens[i + n - 1][2])
        for i in range(len(tokens) - n + 1)
        if [t[0] for t in tokens[i : i + n]] == parts
    )


def _text_occlusion(model: Any, text: str, p: float, c: int) -> list[Contribution]:
    """Drop every occurrence of one token at a time; the fall of p(c) is its weight."""
    tokens = _tokens(text)
    unique = sorted({t[0] for t in tokens}, key=lambda t: [u[0] for u in tokens].index(t))
    variants = []
    for term in unique:
        kept, at = [], 0
        for token, start, end in tokens:
            if token == term:
                kept.append(text[at:start])
                at = end
        variants.append("".join(kept) + text[at:])
    if not variants:
        return []
    probs = np.asarray(model.predict_proba(variants), dtype=np.float64)[:, c]
    return [
        Contribution(term, float(p - q), None, _spans(term, tokens))
        for term, q in zip(unique, probs, strict=True)
    ]
