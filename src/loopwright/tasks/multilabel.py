"""Multi-label: an answer is a set of the project's labels, stored as sorted JSON text.

Consensus and agreement work per label, on the binary decision "does label l apply?": a
plurality per label (``majority``) or a binary Dawid-Skene per label (:class:`LabelwiseDawidSkene`);
agreement is Fleiss' κ and nominal Krippendorff's alpha per label, plus Krippendorff's alpha over whole
sets with the MASI distance (Passonneau 2006). Predictions are per-label probabilities (one
column per label, not summing to 1). Routing uses one set-level rule: an item is as confident
as its least confident label decision (:func:`set_confidence`), and its answer is correct only
if the whole set is — so a certificate on that confidence bounds the error of auto-accepted
*sets*. Export is multi-hot: one 0/1 column per label.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.consensus import DawidSkene
from loopwright.consensus.agreement import fleiss_kappa, krippendorff_alpha, rating_counts
from loopwright.consensus.answers import encode
from loopwright.errors import Invalid
from loopwright.tasks.base import Vote, unknown_label


def canonical(labels: Iterable[str]) -> str:
    """The stored text of a label set: ``json.dumps(sorted(set(labels)), separators=(",", ":"))``."""
    return json.dumps(sorted(set(labels)), separators=(",", ":"))


def decode(answer: str) -> list[str]:
    """The labels of a stored (canonical) set."""
    return list(json.loads(answer))


def multi_hot(answers: Sequence[str], labels: Sequence[str]) -> NDArray[np.int8]:
    """``Y[i, j] = 1`` when answer ``i`` holds ``labels[j]``."""
    index = {label: j for j, label in enumerate(labels)}
    Y = np.zeros((len(answers), len(labels)), dtype=np.int8)
    for i, answer in enumerate(answers):
        for label in decode(answer):
            Y[i, index[label]] = 1
    return Y


def from_multi_hot(Y: ArrayLike, labels: Sequence[str]) -> list[str]:
    """Canonical sets of the rows of a 0/1 (or boolean) matrix."""
    rows = np.asarray(Y).astype(bool)
    return [canonical(np.asarray(labels)[row].tolist()) for row in rows]


class MultiLabel:
    """A set of labels per item (possibly empty: none applies)."""

    name = "multilabel"

    def parse(self, value: Any, labels: Sequence[str]) -> str:
        """Accepts a list of labels or its JSON text; duplicates collapse, order does not matter."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise Invalid(
                    f'label: a label set must be a JSON array of labels like ["a","b"], not {value[:80]!r}'
                ) from None
        if not isinstance(value, list | tuple | set | frozenset) or not all(
            isinstance(v, str) for v in value
        ):
            raise Invalid(f"label: a label set must be a list of label names, not {type(value).__name__}")
        if unknown := sorted(set(value) - set(labels)):
            raise unknown_label("label", unknown if len(unknown) > 1 else unknown[0], labels)
        return canonical(value)

    def vote(self, answers: Sequence[str], labels: Sequence[str]) -> Vote:
        """Per label: present when more than half the answers hold it; an even split is a tie."""
        if not answers:
            raise Invalid("a vote needs at least one answer")
        Y = multi_hot(answers, labels)
        yes = Y.sum(axis=0)
        n = len(answers)
        present = 2 * yes > n
        tie = bool((2 * yes == n).any())
        agreement = float(np.maximum(yes, n - yes).mean() / n) if len(labels) else 1.0
        return Vote(canonical(np.asarray(labels)[present].tolist()), agreement, tie)

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        held = set(decode(answer))
        return {"labels": sorted(held), **{label: int(label in held) for label in labels}}


def set_confidence(proba: ArrayLike) -> NDArray[np.float64]:
    """Per item, the confidence of its least certain label decision: ``min_l max(p_l, 1 - p_l)``."""
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2:
        raise Invalid(f"per-label probabilities must be a 2-d array (items x labels), not {P.ndim}-d")
    if P.shape[1] == 0:
        return np.ones(P.shape[0])
    return np.maximum(P, 1.0 - P).min(axis=1)


def predict_sets(proba: ArrayLike, labels: Sequence[str], threshold: float = 0.5) -> list[str]:
    """Canonical sets holding every label with probability ≥ ``threshold``."""
    return from_multi_hot(np.asarray(proba) >= threshold, labels)


def decide(task: str, labels: Sequence[str], proba: ArrayLike) -> tuple[list[str], NDArray[np.float64]]:
    """Each row's answer and confidence: for ``multilabel`` the set of labels with p ≥ 0.5 and
    :func:`set_confidence`; otherwise the most probable label (first on ties) and its probability."""
    P = np.asarray(proba, dtype=np.float64).reshape(-1, len(labels))
    if task == "multilabel":
        return predict_sets(P, labels), set_confidence(P)
    return [labels[j] for j in P.argmax(axis=1)], P.max(axis=1, initial=0.0)


def top(
    task: str, labels: Sequence[str], rows: Sequence[Mapping[str, float] | None]
) -> tuple[list[str | None], list[float | None]]:
    """:func:`decide` over stored prediction rows (probabilities by label); None, None for a
    row without a prediction."""
    found = [i for i, row in enumerate(rows) if row is not None]
    answers: list[str | None] = [None] * len(rows)
    confidences: list[float | None] = [None] * len(rows)
    if found:
        P = [[float(row[label]) for label in labels] for row in rows if row is not None]
        decided, conf = decide(task, labels, P)
        for k, i in enumerate(found):
            answers[i], confidences[i] = decided[k], float(conf[k])
    return answers, confidences


class LabelwiseDawidSkene:
    """A binary Dawid-Skene fit per label (:class:`~loopwright.consensus.DawidSkene` on "1"/"0").

    After :meth:`fit`: ``items_``, ``probas_`` (items x labels: posterior that the label applies),
    ``labels_`` (canonical sets, posterior ≥ 0.5) and ``skills_`` (label → worker → accuracy).
    """

    def __init__(self, labels: Sequence[str], n_iter: int = 100, smoothing: float = 0.01) -> None:
        self.labels = labels
        self.n_iter = n_iter
        self.smoothing = smoothing

    def fit(
        self, items: Sequence[str], workers: Sequence[str], answers: Sequence[str]
    ) -> LabelwiseDawidSkene:
        if not (len(items) == len(workers) == len(answers)) or not items:
            raise Invalid("items, workers and answers must be non-empty and of equal length")
        Y = multi_hot(answers, self.labels)
        self.items_ = np.unique(np.asarray(items, dtype=str))
        probas = np.zeros((self.items_.size, len(self.labels)))
        self.skills_: dict[str, dict[str, float]] = {}
        for j, label in enumerate(self.labels):
            said = Y[:, j].astype(str).tolist()
            model = DawidSkene(self.n_iter, smoothing=self.smoothing).fit(items, workers, said)
            rows = np.searchsorted(model.items_, self.items_)
            classes = model.classes_.tolist()
            probas[:, j] = model.probas_[rows, classes.index("1")] if "1" in classes else 0.0
            self.skills_[label] = dict(model.skills_)
        self.probas_ = probas
        self.labels_ = predict_sets(probas, self.labels)
        return self


def masi_distance(a: Iterable[str], b: Iterable[str]) -> float:
    """MASI distance ``1 - J·M`` (Jaccard times monotonicity: 1 equal, 2/3 subset, 1/3 overlap, 0)."""
    x, y = frozenset(a), frozenset(b)
    if x == y:
        return 0.0
    union = len(x | y)
    jaccard = len(x & y) / union
    m = 2 / 3 if x <= y or y <= x else 1 / 3 if x & y else 0.0
    return 1.0 - jaccard * m


def set_alpha(items: Sequence[str], answers: Sequence[str], distance: Any = masi_distance) -> float | None:
    """Krippendorff's alpha over whole label sets with a set ``distance`` (default MASI).

    ``alpha = 1 - D_o / D_e`` over the items with ≥ 2 answers; None when undefined (fewer than two
    such items' answers, or every answer the same set).
    """
    by_item: dict[str, list[frozenset[str]]] = {}
    for item, answer in zip(items, answers, strict=True):
        by_item.setdefault(item, []).append(frozenset(decode(answer)))
    units = [u for u in by_item.values() if len(u) >= 2]
    values = sorted({v for u in units for v in u}, key=sorted)
    if len(values) < 2:
        return None
    index = {v: k for k, v in enumerate(values)}
    D = np.array([[distance(a, b) for b in values] for a in values])
    counts = np.zeros((len(units), len(values)))
    for i, unit in enumerate(units):
        for v in unit:
            counts[i, index[v]] += 1
    m = counts.sum(axis=1)
    n = m.sum()
    # coincidences o[c, k] = Σ_u n_uc (n_uk - [c = k]) / (m_u - 1)
    weighted = counts / (m - 1)[:, None]
    o = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = o.sum(axis=1)
    d_observed = float((o * D).sum()) / n
    d_expected = float((np.outer(n_c, n_c) * D).sum()) / (n * (n - 1))  # d(c, c) = 0
    return None if d_expected == 0 else 1.0 - d_observed / d_expected


def agreement(
    items: Sequence[str], workers: Sequence[str], answers: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Per label Fleiss' κ and nominal alpha on the binary decision; MASI alpha over whole sets."""
    Y = multi_hot(answers, labels)
    per_label: dict[str, dict[str, float | None]] = {}
    for j, label in enumerate(labels):
        counts = rating_counts(encode(items, workers, Y[:, j].astype(str).tolist()))
        per_label[label] = {
            "fleiss_kappa": fleiss_kappa(counts),
            "krippendorff_alpha": krippendorff_alpha(counts),
        }
    return {"per_label": per_label, "masi_alpha": set_alpha(items, answers)}


def f1_scores(Y_true: ArrayLike, Y_pred: ArrayLike) -> tuple[float, float]:
    """(micro F1, macro F1) of 0/1 matrices; a label with no true and no predicted 1 scores 1 in macro."""
    T, P = np.asarray(Y_true).astype(bool), np.asarray(Y_pred).astype(bool)
    tp, fp, fn = (T & P).sum(0), (~T & P).sum(0), (T & ~P).sum(0)
    denom = 2 * tp + fp + fn
    micro = float(2 * tp.sum() / denom.sum()) if denom.sum() else 1.0
    per = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)
    return micro, float(per.mean()) if per.size else 1.0
