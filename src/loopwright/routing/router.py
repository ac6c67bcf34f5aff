"""The threshold router: confident predictions pass (with a random audit sample), the rest go to a tier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loopwright.config import RoutingConfig
from loopwright.domain import Route


@dataclass(frozen=True, slots=True)
class RouteChoice:
    route: Route
    tier: int | None
    reason: str
    audit: bool
    priority: float  # higher = review sooner


class ThresholdRouter:
    """Route by confidence band.

    ``confidence ≥ accept_threshold`` → auto-accept, except a uniform random ``audit_rate`` share
    that goes to review with reason ``audit``. Below the threshold, the first band whose
    ``min_confidence`` the prediction reaches picks the tier. High-stakes predicted labels go to
    their tier whatever the confidence. Items with no usable prediction go to ``fallback_tier``.
    """

    def __init__(self, config: RoutingConfig, random_state: int | np.random.Generator | None = None):
        self.config = config
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        self._bands = sorted(config.bands, key=lambda b: -b.min_confidence)

    def route(
        self,
        labels: Sequence[str | None],
        confidences: Sequence[float | None],
        no_prediction_reason: str = "no_model",
        draws: Sequence[float] | None = None,
    ) -> list[RouteChoice]:
        """One choice per item; ``None`` confidence means no usable prediction.

        ``draws`` are uniform numbers in [0, 1) deciding the audit sample; drawn from
        ``random_state`` when not given.
        """
        if len(labels) != len(confidences):
            raise ValueError("labels and confidences must have the same length")
        cfg = self.config
        uniform = self._rng.random(len(labels)) if draws is None else np.asarray(draws)
        choices = []
        for label, conf, draw in zip(labels, confidences, uniform, strict=True):
            if conf is None or label is None:
                choices.append(RouteChoice(Route.REVIEW, cfg.fallback_tier, no_prediction_reason, False, 0.5))
            elif label in cfg.high_stakes_labels:
                choices.append(RouteChoice(Route.REVIEW, cfg.high_stakes_tier, "high_stakes", False, 1.0))
            elif conf >= cfg.accept_threshold:
                if draw < cfg.audit_rate:
                    choices.append(RouteChoice(Route.REVIEW, cfg.fallback_tier, "audit", True, 0.5))
                else:
                    choices.append(RouteChoice(Route.AUTO_ACCEPT, None, "confident", False, 0.0))
            else:
                band = next(b for b in self._bands if conf >= b.min_confidence)
                choices.append(RouteChoice(Route.REVIEW, band.tier, "low_confidence", False, 1.0 - conf))
        return choices
