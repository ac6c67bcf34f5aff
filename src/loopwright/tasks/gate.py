"""The multi-label gate: challenger vs champion on micro and macro F1 with a paired bootstrap.

Items are resampled with replacement (the same draw for both models, so the comparison is
paired). The one-sided p-value against "the challenger is not worse" is the share of draws in
which the challenger's F1 is *not* below the champion's by more than ``margin`` (a draw exactly
at ``-margin`` counts half): when that share falls under ``alpha``, the challenger is worse in
nearly every resample and the gate fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.errors import Invalid
from loopwright.tasks.multilabel import f1_scores


@dataclass(frozen=True, slots=True)
class SetGateResult:
    passed: bool
    metric: str  # "micro_f1" or "macro_f1": the one the decision used
    n_eval: int
    challenger: dict[str, float]  # micro_f1, macro_f1
    champion: dict[str, float] | None
    delta: float  # challenger minus champion on ``metric``
    p_worse: float | None  # paired-bootstrap p-value that the challenger is worse
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    metric: Callable[[NDArray[Any], NDArray[Any]], float],
    y_true: NDArray[Any],
    challenger: NDArray[Any],
    champion: NDArray[Any],
    n_boot: int = 1000,
    margin: float = 0.0,
    random_state: int = 0,
) -> float:
    """One-sided bootstrap p-value of "``challenger`` is not worse than ``champion`` - ``margin``":
    small when the challenger loses in nearly every paired resample."""
    n = len(y_true)
    if n == 0 or n_boot < 1:
        raise Invalid("a paired bootstrap needs items and n_boot ≥ 1")
    rng = np.random.default_rng(random_state)
    not_worse = 0.0
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        diff = metric(y_true[rows], challenger[rows]) - metric(y_true[rows], champion[rows])
        not_worse += 1.0 if diff > -margin else 0.5 if diff == -margin else 0.0
    return not_worse / n_boot


def set_gate(
    Y_true: ArrayLike,
    Y_challenger: ArrayLike,
    Y_champion: ArrayLike | None,
    metric: Literal["micro_f1", "macro_f1"] = "micro_f1",
    alpha: float = 0.05,
    min_eval_items: int = 10,
    n_boot: int = 1000,
    random_state: int = 0,
) -> SetGateResult:
    """Pass unless the challenger is significantly worse on ``metric`` (or too few items)."""
    T, C = np.asarray(Y_true).astype(bool), np.asarray(Y_challenger).astype(bool)
    if T.shape != C.shape:
        raise Invalid(f"challenger predictions have shape {C.shape}, the truth {T.shape}")
    pick = 0 if metric == "micro_f1" else 1
    score = lambda t, p: f1_scores(t, p)[pick]  # noqa: E731
    mine = dict(zip(("micro_f1", "macro_f1"), f1_scores(T, C), strict=True))
    if len(T) < min_eval_items:
        reason = f"{len(T)} evaluation items, need {min_eval_items}"
        return SetGateResult(False, metric, len(T), mine, None, 0.0, None, reason)
    if Y_champion is None:
        return SetGateResult(True, metric, len(T), mine, None, 0.0, None, "first model: no champion")
    H = np.asarray(Y_champion).astype(bool)
    theirs = dict(zip(("micro_f1", "macro_f1"), f1_scores(T, H), strict=True))
    p = paired_bootstrap(score, T, C, H, n_boot, random_state=random_state)
    delta = mine[metric] - theirs[metric]
    passed = p >= alpha
    verdict = "not significantly worse" if passed else "significantly worse"
    reason = f"{metric} {mine[metric]:.4f} vs {theirs[metric]:.4f} (Δ {delta:+.4f}); {verdict}, p={p:.3f}"
    return SetGateResult(passed, metric, len(T), mine, theirs, delta, p, reason)
