"""Majority vote: per item, and as a crowd-kit-style aggregator over (item, worker, label) rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loopwright.consensus.answers import Fitted, clamp, encode, gold_rows
from loopwright.errors import Invalid


@dataclass(frozen=True, slots=True)
class Consensus:
    label: str
    agreement: float  # share of votes for the winning label
    tie: bool  # another label has as many votes


def majority(labels: Sequence[str]) -> Consensus:
    """Most frequent label; ties go to the label voted first, and are reported."""
    if not labels:
        raise Invalid("majority vote needs at least one label")
    counts = Counter(labels)  # insertion order = first vote first
    (label, top), *rest = counts.most_common()
    tie = any(n == top for _, n in rest)
    return Consensus(label=label, agreement=top / len(labels), tie=tie)


class MajorityVote(Fitted):
    """Aggregate ``(item, worker, label)`` rows; ``labels_`` and ``probas_`` after :meth:`fit`.

    ``probas_`` is the vote share per label (columns keyed by ``classes_``). Ties are broken by
    the smallest label in ``classes_`` order, deterministically. Gold items are clamped to their
    true label; ``skills_`` is each worker's agreement with the result.
    """

    def __init__(self, classes: Sequence[str] | None = None) -> None:
        self.classes = classes

    def fit(
        self,
        items: Sequence[str],
        workers: Sequence[str],
        labels: Sequence[str],
        gold: Mapping[str, str] | None = None,
    ) -> MajorityVote:
        ans = encode(items, workers, labels, classes=self.classes, gold=gold)
        votes = np.zeros((len(ans.items), len(ans.classes)))
        np.add.at(votes, (ans.item_idx, ans.label_idx), 1.0)
        self.probas_: NDArray[np.float64] = votes / votes.sum(axis=1, keepdims=True)
        clamp(self.probas_, *gold_rows(ans, gold))
        best = self.probas_.argmax(axis=1)
        self.items_, self.workers_, self.classes_ = ans.items, ans.workers, ans.classes
        self.labels_ = ans.classes[best]
        hit = (best[ans.item_idx] == ans.label_idx).astype(float)
        share = np.bincount(ans.worker_idx, weights=hit) / np.bincount(ans.worker_idx)
        self.skills_ = dict(zip(ans.workers.tolist(), share.tolist(), strict=True))
        return self
