"""Cost-aware routing: send each item where its expected cost is lowest.

Auto-accepting costs ``(1 - max p) * error_cost``; review by a tier costs the tier's price plus
``tier_error * error_cost``. Route 0 is auto-accept, other routes are tier numbers. On a tie the
item goes to review (the lowest-numbered cheapest tier).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.errors import Invalid

AUTO_ACCEPT = 0


@dataclass(frozen=True, slots=True)
class CostRoutes:
    """Per item: ``route`` (0 = auto-accept, else the tier) and its ``expected_cost``."""

    route: NDArray[np.int64]
    expected_cost: NDArray[np.float64]


def cheapest_routes(
    proba: ArrayLike,
    error_cost: float,
    review_costs: Mapping[int, float],
    review_errors: Mapping[int, float] | None = None,
) -> CostRoutes:
    """Lowest expected cost route for each row of class probabilities.

    ``review_costs`` maps tier number (≥ 1) → cost of one review; ``review_errors`` maps tier →
    that tier's expected error rate (default 0).
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or np.isnan(p).any():
        raise Invalid(f"probabilities must be a 2-D array with ≥ 2 columns and no NaN, got shape {p.shape}")
    if error_cost < 0 or any(c < 0 for c in review_costs.values()):
        raise Invalid("costs must be ≥ 0")
    if any(t < 1 for t in review_costs):
        raise Invalid("tier numbers must be ≥ 1 (route 0 is auto-accept)")
    errors = review_errors or {}
    if any(not 0.0 <= e <= 1.0 for e in errors.values()) or set(errors) - set(review_costs):
        raise Invalid("review_errors must map tiers that have a cost to error rates in [0, 1]")
    tiers = sorted(review_costs)
    review = np.array([review_costs[t] + errors.get(t, 0.0) * error_cost for t in tiers])
    auto = (1.0 - p.max(axis=1)) * error_cost
    costs = np.column_stack([np.broadcast_to(review, (p.shape[0], review.size)), auto])
    best = costs.argmin(axis=1)
    routes = np.array([*tiers, AUTO_ACCEPT], dtype=np.int64)[best]
    return CostRoutes(routes, costs[np.arange(p.shape[0]), best])
