"""Weighted majority vote: each vote counts the log-odds of its worker's skill."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from loopwright.consensus.answers import Answers, Fitted, clamp, encode, gold_rows
from loopwright.errors import Invalid

_CLIP = 1e-3


class WeightedMajorityVote(Fitted):
    """Votes weighted by ``log((k - 1) p / (1 - p))``, the log-odds of skill ``p`` over ``k`` classes.

    With ``skills`` (worker → accuracy) the weights are fixed; every worker must be listed. Without,
    skills are estimated iteratively as each worker's agreement with the current weighted majority,
    starting from the plain majority, until the labels stop changing (at most ``n_iter`` rounds).
    ``probas_`` is the softmax of the weighted scores (the one-coin posterior under a flat prior).
    Callers may add a model as one more worker (e.g. ``"model"``) with its validation accuracy.
    """

    def __init__(self, skills: Mapping[str, float] | None = None, n_iter: int = 20) -> None:
        self.skills = skills
        self.n_iter = n_iter

    def fit(
        self,
        items: Sequence[str],
        workers: Sequence[str],
        labels: Sequence[str],
        gold: Mapping[str, str] | None = None,
    ) -> WeightedMajorityVote:
        ans = encode(items, workers, labels, gold=gold)
        gold_pos, gold_cls = gold_rows(ans, gold)
        if self.skills is not None:
            missing = sorted(set(ans.workers.tolist()) - set(self.skills))
            if missing:
                raise Invalid(f"no skill given for worker(s): {', '.join(missing[:5])}")
            skill = np.asarray([self.skills[w] for w in ans.workers.tolist()], dtype=float)
            probas = _weighted(ans, skill, gold_pos, gold_cls)
        else:
            probas = _weighted(ans, np.full(len(ans.workers), 0.9), gold_pos, gold_cls)
            for _ in range(self.n_iter):
                skill = _agreement(ans, probas.argmax(axis=1))
                new = _weighted(ans, skill, gold_pos, gold_cls)
                stable = np.array_equal(new.argmax(axis=1), probas.argmax(axis=1))
                probas = new
                if stable:
                    break
        self.items_, self.workers_, self.classes_ = ans.items, ans.workers, ans.classes
        self.probas_: NDArray[np.float64] = probas
        self.labels_ = ans.classes[probas.argmax(axis=1)]
        self.skills_ = dict(zip(ans.workers.tolist(), skill.tolist(), strict=True))
        return self


def _weighted(
    ans: Answers, skill: NDArray[np.float64], gold_pos: NDArray[np.intp], gold_cls: NDArray[np.intp]
) -> NDArray[np.float64]:
    k = len(ans.classes)
    p = np.clip(skill, _CLIP, 1 - _CLIP)
    weight = np.log(max(k - 1, 1) * p / (1 - p))
    scores = np.zeros((len(ans.items), k))
    np.add.at(scores, (ans.item_idx, ans.label_idx), weight[ans.worker_idx])
    from scipy.special import softmax  # on use: keeps start-up light

    probas = softmax(scores, axis=1)
    clamp(probas, gold_pos, gold_cls)
    return np.asarray(probas, dtype=np.float64)


def _agreement(ans: Answers, label_of_item: NDArray[np.intp]) -> NDArray[np.float64]:
    """Share of each worker's answers equal to the item's current label (one pseudo-vote each way)."""
    hit = (label_of_item[ans.item_idx] == ans.label_idx).astype(float)
    agree = np.bincount(ans.worker_idx, weights=hit, minlength=len(ans.workers))
    total = np.bincount(ans.worker_idx, minlength=len(ans.workers))
    return np.asarray((agree + 1.0) / (total + 2.0), dtype=np.float64)
