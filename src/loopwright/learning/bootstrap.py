"""A paired bootstrap over units (images, documents): is the challenger's metric lower?"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
