"""A paired bootstrap over units (images, documents): is the challenger's metric lower?

:func:`shape_gate` is the structured gates' verdict on it (entity F1 for spans,
:func:`loopwright.tasks.spans.gate`; mAP at an IoU for boxes, :func:`loopwright.tasks.boxes.gate`),
champion and challenger scored on the same resampled items each time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loopwright.errors import Invalid


@dataclass(frozen=True, slots=True)
class PairedBootstrap:
    """Both models' metric on all units, the difference and its resampled distribution."""

    champion: float
    challenger: float
    difference: float  # challenger - champion
    p_worse: float  # one-sided p-value of "the challenger is worse than the champion"
    interval: tuple[float, float]  # 95 % percentile interval of the difference


def paired_bootstrap(
    n_units: int,
    metric: Callable[[Sequence[int]], tuple[float, float]],
    n_resamples: int = 1000,
    random_state: int = 0,
) -> PairedBootstrap:
    """Resample the units with replacement; ``metric(indices)`` gives (champion, challenger) on them.

    ``p_worse`` is the share of resampled differences at or below zero after centring the
    distribution on zero (the percentile-shift test): small when the challenger is reliably worse.
    Units are paired: both models are scored on the same resampled units each time.
    """
    if n_units < 2:
        raise Invalid("a paired bootstrap needs at least 2 units (images or documents)")
    if n_resamples < 100:
        raise Invalid("n_resamples must be at least 100")
    rng = np.random.default_rng(random_state)
    champion, challenger = metric(range(n_units))
    observed = challenger - champion
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):
        a, b = metric(rng.integers(0, n_units, n_units).tolist())
        diffs[r] = b - a
    centred = diffs - diffs.mean()
    p_worse = float((np.sum(centred <= observed) + 1) / (n_resamples + 1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return PairedBootstrap(champion, challenger, observed, p_worse, (float(low), float(high)))


@dataclass(frozen=True, slots=True)
class ShapeGateResult:
    """A structured gate's verdict (spans: entity F1; boxes: mAP at an IoU); a result, not an error."""

    passed: bool
    metric: str
    n_eval: int
    challenger: float
    champion: float | None
    delta: float  # challenger - champion
    p_worse: float | None
    interval: tuple[float, float] | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape_gate(
    metric_name: str,
    metric: Callable[[Sequence[Any], Sequence[Any]], float],
    truth: Sequence[Any],
    challenger: Sequence[Any],
    champion: Sequence[Any] | None,
    alpha: float = 0.05,
    min_eval_items: int = 10,
    n_resamples: int = 1000,
    random_state: int = 0,
) -> ShapeGateResult:
    """Pass unless the challenger is significantly worse (:func:`paired_bootstrap` over items,
    ``p_worse < alpha``) or too few items; the first model passes on enough items.

    ``metric(predicted, truth)`` scores a list of items' answers (one list of spans or boxes each)."""
    n = len(truth)
    if len(challenger) != n or (champion is not None and len(champion) != n):
        raise Invalid(f"the gate needs one prediction per evaluation item ({n})")
    mine = metric(challenger, truth)
    if n < min_eval_items:
        return ShapeGateResult(
            False, metric_name, n, mine, None, 0.0, None, None, f"{n} evaluation items, need {min_eval_items}"
        )
    if champion is None:
        return ShapeGateResult(True, metric_name, n, mine, None, 0.0, None, None, "first model: no champion")
    champ = champion

    def both(rows: Sequence[int]) -> tuple[float, float]:
        t = [truth[i] for i in rows]
        return metric([champ[i] for i in rows], t), metric([challenger[i] for i in rows], t)

    test = paired_bootstrap(n, both, n_resamples, random_state)
    passed = test.p_worse >= alpha
    verdict = "not significantly worse" if passed else "significantly worse"
    reason = (
        f"{metric_name} {test.challenger:.4f} vs {test.champion:.4f} (Δ {test.difference:+.4f}); "
        f"{verdict}, p={test.p_worse:.3f}"
    )
    return ShapeGateResult(
        passed,
        metric_name,
        n,
        test.challenger,
        test.champion,
        test.difference,
        test.p_worse,
        test.interval,
        reason,
    )
