"""Batch selection strategies behind one protocol, and a registry by name.

Every strategy answers ``select(model, X_pool, X_labelled, batch, rng, y_labelled=None)`` with
``batch`` distinct pool indices, most wanted first. Uncertainty strategies (and the hybrid and
query by committee) start *cold*: while the model is ``None`` or fewer than ``cold_start``
items are labelled (default 2 x the model's classes), they pick by k-means++ seeding from the
labelled points instead, since a model fitted on a handful of labels is confidently wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.active import scores
from loopwright.active.committee import committee_proba, fit_committee, mean_kl, vote_entropy
from loopwright.active.diversity import check_batch, kcenter_greedy, kmeans_pp
from loopwright.active.features import dense
from loopwright.active.topk import top_k
from loopwright.errors import Invalid

Embed = Callable[[Any], NDArray[np.float32]]
Score = Callable[[ArrayLike], NDArray[np.float64]]


class Strategy(Protocol):
    """What the active-learning loop needs from a selection strategy."""

    name: str

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]: ...


def _features(
    embed: Embed | None, X_pool: Any, X_labelled: Any
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    if embed is None:
        return dense(X_pool, X_labelled)
    labelled = X_labelled is not None and len(X_labelled) > 0
    return embed(X_pool), embed(X_labelled) if labelled else None


def _n(X: Any) -> int:
    return 0 if X is None else len(X)


@dataclass
class _ColdStart:
    """Shared cold-start rule: diversity (k-means++) until the model has enough labels."""

    cold_start: int | None = None
    embed: Embed | None = None

    def is_cold(self, model: Any, X_labelled: Any) -> bool:
        if model is None:
            return True
        threshold = self.cold_start
        if threshold is None:
            threshold = 2 * len(getattr(model, "classes_", ()))
        return _n(X_labelled) < threshold

    def diverse(self, X_pool: Any, X_labelled: Any, batch: int, rng: np.random.Generator) -> NDArray[np.intp]:
        pool, labelled = _features(self.embed, X_pool, X_labelled)
        return kmeans_pp(pool, batch, rng, labelled)


@dataclass
class RandomSampling:
    """Uniform without replacement: the baseline."""

    name: str = "random"

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        check_batch(batch, _n(X_pool))
        return np.asarray(rng.choice(_n(X_pool), size=batch, replace=False), dtype=np.intp)


@dataclass
class UncertaintySampling(_ColdStart):
    """Top-``batch`` pool items by an uncertainty score of the model's probabilities."""

    name: str = "margin"
    score: Score = scores.smallest_margin

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        check_batch(batch, _n(X_pool))
        if self.is_cold(model, X_labelled):
            return self.diverse(X_pool, X_labelled, batch, rng)
        return top_k(self.score(scores.pool_proba(model, X_pool)), batch)


@dataclass
class QueryByCommittee(_ColdStart):
    """Bootstrap committee of clones of ``model``; top items by disagreement: ``vote``
    entropy (default; measured better on digits than ``kl``, mean KL to the consensus)."""

    name: str = "qbc"
    members: int = 5
    measure: str = "vote"

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        check_batch(batch, _n(X_pool))
        if self.is_cold(model, X_labelled):
            return self.diverse(X_pool, X_labelled, batch, rng)
        if y_labelled is None:
            raise Invalid("query by committee needs y_labelled to fit its members")
        if self.measure not in ("kl", "vote"):
            raise Invalid(f"unknown committee measure {self.measure!r}: use 'kl' or 'vote'")
        members = fit_committee(model, X_labelled, y_labelled, self.members, rng)
        probas = committee_proba(members, X_pool, np.unique(np.asarray(y_labelled)))
        return top_k(mean_kl(probas) if self.measure == "kl" else vote_entropy(probas), batch)


@dataclass
class KCenter:
    """Greedy k-center core-set from the labelled points (``embed`` maps inputs to dense rows)."""

    name: str = "kcenter"
    embed: Embed | None = None

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        check_batch(batch, _n(X_pool))
        pool, labelled = _features(self.embed, X_pool, X_labelled)
        return kcenter_greedy(pool, batch, rng, labelled)


@dataclass
class Hybrid(_ColdStart):
    """The ``candidates`` x batch most uncertain items, then a diverse batch among them by k-center
    greedy started from the labelled points."""

    name: str = "hybrid"
    score: Score = scores.smallest_margin
    candidates: int = 10

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        check_batch(batch, _n(X_pool))
        if self.is_cold(model, X_labelled):
            return self.diverse(X_pool, X_labelled, batch, rng)
        top = top_k(self.score(scores.pool_proba(model, X_pool)), self.candidates * batch)
        subset = [X_pool[i] for i in top] if isinstance(X_pool, list) else X_pool[top]
        pool, labelled = _features(self.embed, subset, X_labelled)
        return top[kcenter_greedy(pool, batch, rng, labelled)]


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": lambda **_: RandomSampling(),
    "least-confidence": lambda **kw: UncertaintySampling(
        name="least-confidence", score=scores.least_confidence, **kw
    ),
    "margin": lambda **kw: UncertaintySampling(name="margin", score=scores.smallest_margin, **kw),
    "entropy": lambda **kw: UncertaintySampling(name="entropy", score=scores.entropy, **kw),
    "qbc": lambda **kw: QueryByCommittee(**kw),
    "kcenter": lambda embed=None, **_: KCenter(embed=embed),
    "hybrid": lambda **kw: Hybrid(**kw),
}


def _auto(**kw: Any) -> Strategy:
    from loopwright.active.bandit import Auto  # the bandit builds on the strategies above

    return Auto(**kw)


STRATEGIES["auto"] = _auto
DEFAULT_STRATEGY = "auto"


def make_strategy(name: str, cold_start: int | None = None, embed: Embed | None = None) -> Strategy:
    """The strategy registered as ``name``, with the shared cold-start threshold and embedding."""
    if name not in STRATEGIES:
        raise Invalid(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](cold_start=cold_start, embed=embed)
