"""Encode ``(item, worker, label)`` rows as integer indices, the shared input of every aggregator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loopwright.errors import Invalid, NotFitted


@dataclass(frozen=True, slots=True)
class Answers:
    """Sorted unique ``items``, ``workers``, ``classes`` and one index triple per answer row."""

    items: NDArray[np.str_]
    workers: NDArray[np.str_]
    classes: NDArray[np.str_]
    item_idx: NDArray[np.intp]
    worker_idx: NDArray[np.intp]
    label_idx: NDArray[np.intp]


def encode(
    items: Sequence[str],
    workers: Sequence[str],
    labels: Sequence[str],
    classes: Sequence[str] | None = None,
    gold: Mapping[str, str] | None = None,
) -> Answers:
    """Index the rows; ``classes`` default to the sorted labels seen (including gold labels)."""
    if not (len(items) == len(workers) == len(labels)):
        raise Invalid("items, workers and labels must have the same length")
    if len(items) == 0:
        raise Invalid("no answers to aggregate")
    if classes is None:
        classes_ = np.unique(np.asarray([*labels, *(gold or {}).values()], dtype=str))
    else:
        classes_ = np.asarray(list(classes), dtype=str)
    item_u, item_idx = _factorize(items)
    worker_u, worker_idx = _factorize(workers)
    label_idx = _lookup(classes_, labels)
    return Answers(item_u, worker_u, classes_, item_idx, worker_idx, label_idx)


def _factorize(values: Sequence[str]) -> tuple[NDArray[np.str_], NDArray[np.intp]]:
    """Sorted unique values and each value's position among them (a dict is faster than np.unique)."""
    uniques = sorted(dict.fromkeys(values))
    position = {v: i for i, v in enumerate(uniques)}
    index = np.fromiter(map(position.__getitem__, values), dtype=np.intp, count=len(values))
    return np.asarray(uniques, dtype=str), index


def _lookup(classes: NDArray[np.str_], labels: Sequence[str]) -> NDArray[np.intp]:
    index = {c: i for i, c in enumerate(classes.tolist())}
    try:
        return np.fromiter(map(index.__getitem__, labels), dtype=np.intp, count=len(labels))
    except KeyError as exc:
        raise Invalid(f"label {exc.args[0]!r} is not one of the classes") from None


def gold_rows(answers: Answers, gold: Mapping[str, str] | None) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Positions in ``answers.items`` of the gold items and the class index of their true label."""
    if not gold:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    keys = np.asarray(list(gold), dtype=str)
    pos = np.searchsorted(answers.items, keys)
    known = (pos < len(answers.items)) & (answers.items[np.minimum(pos, len(answers.items) - 1)] == keys)
    if not known.all():
        unknown = ", ".join(repr(k) for k in keys[~known][:5].tolist())
        raise Invalid(f"{int((~known).sum())} gold item(s) have no answers: {unknown}")
    return pos, _lookup(answers.classes, list(gold.values()))


def clamp(probas: NDArray[np.float64], rows: NDArray[np.intp], truth: NDArray[np.intp]) -> None:
    """Set the gold rows of ``probas`` to one-hot on their true class, in place."""
    probas[rows] = 0.0
    probas[rows, truth] = 1.0


class Fitted:
    """Base of the aggregators: reading a learned attribute (``name_``) before ``fit`` raises NotFitted."""

    def __getattr__(self, name: str) -> object:
        if name.endswith("_") and not name.startswith("__"):
            raise NotFitted(f"{type(self).__name__} is not fitted yet: call fit() first")
        raise AttributeError(name)
