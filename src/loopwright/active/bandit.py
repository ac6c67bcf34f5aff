"""The default strategy, ``auto``: margin unless another strategy proves better on this pool.

Choosing among strategies online (Hsu & Lin 2015) pays for its exploration in labels, and with
the budgets of a labelling project (10-20 batches) an accuracy-based reward cannot tell the arms
apart: the earlier EXP3 bandit with 10 % uniform slots for an importance-weighted accuracy was
one batch *behind* plain margin on TREC. So ``auto`` is an explore-then-commit bandit with
``margin`` as the incumbent:

* warm batches alternate margin and a challenger (``hybrid`` by default: margin's most uncertain
  items made diverse by k-center, on the records' embeddings when given) until every challenger
  has had ``trials`` batches; margin plays every other batch;
* the reward of a batch is how much it changed the model: the share of the unlabelled pool
  whose predicted label flips once the batch is learnt (a label-free signal over thousands of
  items, unlike an accuracy on a few labelled ones). It shrinks as the model converges, so a
  challenger's batch is scored against the margin batches either side of it: ``ratio = Δ /
  sqrt(Δ_before x Δ_after)``;
* a challenger takes over only if *every* one of its ratios is at least ``lead`` (it moved the
  model more than margin did each time); otherwise, when the rewards are indistinguishable,
  margin keeps the rest of the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.active.diversity import check_batch
from loopwright.active.strategies import Embed, Hybrid, KCenter, Strategy, UncertaintySampling, _ColdStart
from loopwright.errors import Invalid

ARMS = ("margin", "hybrid")
ANCHOR = "margin"


def _arm(name: str, cold_start: int | None, embed: Embed | None) -> Strategy:
    if name == "margin":
        return UncertaintySampling(cold_start=cold_start, embed=embed)
    if name == "hybrid":
        return Hybrid(cold_start=cold_start, embed=embed)
    if name == "kcenter":
        return KCenter(embed=embed)
    raise Invalid(f"unknown arm {name!r}: use margin, hybrid or kcenter")


def flipped(before: Any, after: Any, X_pool: Any) -> float:
    """Share of ``X_pool`` whose predicted label differs between the two models."""
    return float(np.mean(np.asarray(before.predict(X_pool)) != np.asarray(after.predict(X_pool))))


@dataclass
class Auto(_ColdStart):
    """Explore-then-commit over ``arms`` with ``margin`` the incumbent; model change as reward.

    State lives on the instance, so one instance serves one pool from start to end.
    ``history`` is the arm of each warm batch, ``changes`` each warm batch's reward (``None``
    until the next model exists), ``ratios`` each challenger's scores, ``committed`` the arm
    chosen once exploration ended.
    """

    name: str = "auto"
    arms: Sequence[str] = ARMS
    trials: int = 2  # challenger batches per challenger before committing
    lead: float = 1.25  # a challenger must move the model this many times margin's, every time
    history: list[str] = field(default_factory=list)
    changes: list[float | None] = field(default_factory=list)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    committed: str | None = None
    _last: Any = None  # the model the last warm batch was chosen with
    _scored: set[int] = field(default_factory=set)  # challenger batches already scored

    def __post_init__(self) -> None:
        if ANCHOR not in self.arms:
            raise Invalid(f"the arms must include {ANCHOR!r}, got {list(self.arms)}")
        for name in self.arms:
            _arm(name, None, None)  # an unknown arm fails here
        if self.trials < 1:
            raise Invalid(f"trials must be at least 1, got {self.trials}")

    @property
    def challengers(self) -> list[str]:
        return [a for a in self.arms if a != ANCHOR]

    def _score(self) -> None:
        """Ratios for challenger batches whose two neighbouring margin batches are scored."""
        for k, arm in enumerate(self.history):
            if arm == ANCHOR or k + 1 >= len(self.changes) or k == 0:
                continue
            before, mine, after = self.changes[k - 1], self.changes[k], self.changes[k + 1]
            if before is None or mine is None or after is None or k in self._scored:
                continue
            base = float(np.sqrt(before * after))
            ratio = mine / base if base > 0 else (1.0 if mine == 0 else np.inf)
            self.ratios.setdefault(arm, []).append(round(float(ratio), 4))
            self._scored.add(k)

    def next_arm(self) -> str:
        """The arm for the next warm batch (after the last batch's reward is recorded)."""
        if self.committed is not None:
            return self.committed
        if not self.challengers:
            self.committed = ANCHOR
            return ANCHOR
        k = len(self.history)
        played = {a: self.history.count(a) for a in self.challengers}
        if min(played.values()) < self.trials:
            if k % 2 == 0:  # margin on even batches, so each challenger batch has margin either side
                return ANCHOR
            return min(self.challengers, key=lambda a: (played[a], self.challengers.index(a)))
        self._score()
        if any(len(self.ratios.get(a, [])) < self.trials for a in self.challengers):
            return ANCHOR  # waiting for the last challenger batch's neighbour
        winners = [a for a in self.challengers if min(self.ratios[a]) >= self.lead]
        self.committed = (
            max(winners, key=lambda a: float(np.mean(np.log(self.ratios[a])))) if winners else ANCHOR
        )
        return self.committed

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        check_batch(batch, len(X_pool))
        if self.is_cold(model, X_labelled):
            return self.diverse(X_pool, X_labelled, batch, rng)
        if self._last is not None and self.committed is None:  # the last batch is labelled now
            self.changes[-1] = flipped(self._last, model, X_pool)
        arm = self.next_arm()
        self.history.append(arm)
        self.changes.append(None)
        self._last = model if self.committed is None else None
        return _arm(arm, self.cold_start, self.embed).select(
            model, X_pool, X_labelled, batch, rng, y_labelled
        )
