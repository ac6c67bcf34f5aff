"""The threshold router: confident predictions pass (with a random audit sample), the rest go to a tier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

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

    A uniform random ``audit_rate`` share of items goes to review with ``audit=True`` whatever
    the confidence, so the audited items at or above any threshold are a uniform sample of all
    predictions there: the unbiased evidence that certifies thresholds. Otherwise
    ``confidence ≥ threshold`` → auto-accept; below it, the first band whose ``min_confidence``
    the prediction reaches picks the tier (audited items go to ``audit_tier`` when set: their
    labels certify thresholds, so they deserve the most reliable review). ``threshold`` is
    ``accept_threshold`` unless given; ``None`` means nothing is certified, so every prediction
    goes to review (reason ``uncertified``). High-stakes predicted labels go to their tier
    whatever the confidence; items with no usable prediction go to ``fallback_tier``.
    """

    def __init__(
        self,
        config: RoutingConfig,
        random_state: int | np.random.Generator | None = None,
        threshold: float | Literal["config"] | None = "config",
    ):
        self.config = config
        self.threshold = config.accept_threshold if threshold == "config" else threshold
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
            audit = bool(draw < cfg.audit_rate)
            if conf is None or label is None:  # an audited item's label is evidence: the audit tier
                tier = (cfg.audit_tier or cfg.fallback_tier) if audit else cfg.fallback_tier
                choices.append(RouteChoice(Route.REVIEW, tier, no_prediction_reason, audit, 0.5))
            elif label in cfg.high_stakes_labels:
                choices.append(RouteChoice(Route.REVIEW, cfg.high_stakes_tier, "high_stakes", audit, 1.0))
            elif audit:
                tier = cfg.audit_tier or self._band(conf)
                choices.append(RouteChoice(Route.REVIEW, tier, "audit", True, 0.5))
            elif self.threshold is not None and conf >= self.threshold:
                choices.append(RouteChoice(Route.AUTO_ACCEPT, None, "confident", False, 0.0))
            else:
                reason = "low_confidence" if self.threshold is not None else "uncertified"
                choices.append(RouteChoice(Route.REVIEW, self._band(conf), reason, False, 1.0 - conf))
        return choices

    def _band(self, confidence: float) -> int:
        return next(b.tier for b in self._bands if confidence >= b.min_confidence)
