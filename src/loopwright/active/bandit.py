"""Learning active learning (Hsu & Lin 2015, batch form): choose among strategies online, from the
labels as they arrive.

Each batch, an EXP3 bandit draws one arm (a strategy) with probabilities ``p``; every batch slot is
filled, with probability ``uniform``, by an item drawn uniformly from the pool, else by the arm's
next pick. Every item's query probability ``q`` is known (any arm's batch could have been drawn),
so the importance-weighted accuracy ``sum(correct / q) / sum(1 / q)`` of a model on a batch it was
not fitted on estimates its accuracy on the pool without a held-out set (Hsu & Lin's IW-ACC). The
reward of the arm that chose batch ``t`` is what that batch bought: the IW-ACC on batch ``t + 1``
of the model fitted with batch ``t`` minus that of the model before it (paired on the same items,
so most of the noise cancels), credited by EXP3 as ``rate x reward / p[arm]``. ``margin`` is the
anchor: the first warm batch uses it and the prior favours it, so another arm must earn its share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.active.diversity import check_batch
from loopwright.active.strategies import Embed, Hybrid, KCenter, Strategy, UncertaintySampling, _ColdStart

ARMS = ("margin", "hybrid", "kcenter")


def _arm(name: str, cold_start: int | None, embed: Embed | None) -> Strategy:
    if name == "margin":
        return UncertaintySampling(cold_start=cold_start, embed=embed)
    if name == "hybrid":
        return Hybrid(cold_start=cold_start, embed=embed)
    return KCenter(embed=embed)


def _key(X: Any, i: int) -> Any:
    row = X[i]
    return row if isinstance(row, str) else np.asarray(row).tobytes()


@dataclass
class Auto(_ColdStart):
    """The default strategy: an EXP3 bandit over ``arms`` rewarded by importance-weighted accuracy.

    State (weights, the queried items and their query probabilities) lives on the instance, so one
    instance serves one pool from start to end; with no history it picks as ``margin`` does.
    """

    name: str = "auto"
    arms: Sequence[str] = ARMS
    uniform: float = 0.1  # share of slots drawn uniformly: what keeps the reward unbiased
    gamma: float = 0.1  # EXP3 exploration
    rate: float = 1.0  # EXP3 learning rate on the accuracy gain
    prior: float = 1.0  # margin's head start in log-weight units
    history: list[str] = field(default_factory=list)  # the arm that chose each warm batch
    rewards: list[tuple[str, float]] = field(default_factory=list)  # (arm credited, reward)
    _log_w: NDArray[np.float64] | None = None
    _asked: dict[Any, float] = field(default_factory=dict)  # last batch: item key → query probability
    _models: list[Any] = field(default_factory=list)  # the models of the last two warm batches
    _chosen: list[tuple[int, float]] = field(default_factory=list)  # (arm, its probability) per batch

    def probabilities(self) -> NDArray[np.float64]:
        """Each arm's chance of choosing the next batch."""
        if self._log_w is None:
            self._log_w = np.zeros(len(self.arms))
            self._log_w[list(self.arms).index("margin")] = self.prior
        w = np.exp(self._log_w - self._log_w.max())
        return (1 - self.gamma) * w / w.sum() + self.gamma / len(self.arms)

    def reward(self, model: Any, X_labelled: Any, y_labelled: Any) -> float | None:
        """``model``'s importance-weighted accuracy on the last batch, now labelled."""
        if not self._asked or model is None or y_labelled is None or X_labelled is None:
            return None
        rows = [i for i in range(len(X_labelled)) if _key(X_labelled, i) in self._asked]
        if not rows:
            return None
        q = np.asarray([self._asked[_key(X_labelled, i)] for i in rows])
        X = [X_labelled[i] for i in rows] if isinstance(X_labelled, list) else X_labelled[rows]
        correct = np.asarray(model.predict(X)) == np.asarray(y_labelled)[rows]
        return float((correct / q).sum() / (1 / q).sum())

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        n = len(X_pool)
        check_batch(batch, n)
        if self.is_cold(model, X_labelled):
            return self.diverse(X_pool, X_labelled, batch, rng)
        p = self.probabilities()
        if len(self._models) == 2:  # the last batch is labelled: score the batch before it
            newer = self.reward(self._models[1], X_labelled, y_labelled)
            older = self.reward(self._models[0], X_labelled, y_labelled)
            if newer is not None and older is not None:
                arm, p_arm = self._chosen[-2]
                self._log_w[arm] += self.rate * (newer - older) / p_arm  # type: ignore[index]
                self.rewards.append((self.arms[arm], round(newer - older, 4)))
                p = self.probabilities()
        picks = {a: _arm(name, self.cold_start, self.embed) for a, name in enumerate(self.arms)}
        first = not self._chosen  # the first warm batch goes to the anchor, margin
        chosen = list(self.arms).index("margin") if first else int(rng.choice(len(self.arms), p=p))
        orders = {
            a: arm.select(model, X_pool, X_labelled, batch, rng, y_labelled) for a, arm in picks.items()
        }
        slots = rng.random(batch) < self.uniform
        out: list[int] = []
        taken: set[int] = set()
        ranked = iter(orders[chosen].tolist())
        for uniform_slot in slots:
            if uniform_slot:
                free = n - len(taken)
                j = int(rng.integers(free))
                pick = int(np.setdiff1d(np.arange(n), list(taken))[j]) if taken else j
            else:
                pick = next((i for i in ranked if i not in taken), -1)
                if pick < 0:
                    pick = int(np.setdiff1d(np.arange(n), list(taken))[0])
            out.append(pick)
            taken.add(pick)
        share = self.uniform * batch / n
        members = {a: set(order.tolist()) for a, order in orders.items()}
        self._asked = {
            _key(X_pool, i): share + (1 - self.uniform) * sum(p[a] for a in members if i in members[a])
            for i in out
        }
        self._models = [*self._models[-1:], model]
        self._chosen.append((chosen, float(p[chosen])))
        self.history.append(self.arms[chosen])
        return np.asarray(out, dtype=np.intp)
