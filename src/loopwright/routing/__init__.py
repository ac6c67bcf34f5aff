"""Routing: confidence scores and the router that sends predictions to auto-accept or review."""

from loopwright.routing.calibration import Calibrator, expected_calibration_error
from loopwright.routing.certify import (
    Certificate,
    certify,
    certify_per_class,
    clopper_pearson_upper,
    empirical_threshold,
    min_evidence_for,
)
from loopwright.routing.confidence import entropy, margin, max_probability
from loopwright.routing.cost import AUTO_ACCEPT, CostRoutes, cheapest_routes
from loopwright.routing.router import RouteChoice, ThresholdRouter

__all__ = [
    "AUTO_ACCEPT",
    "Calibrator",
    "Certificate",
    "CostRoutes",
    "RouteChoice",
    "ThresholdRouter",
    "certify",
    "certify_per_class",
    "cheapest_routes",
    "clopper_pearson_upper",
    "empirical_threshold",
    "entropy",
    "expected_calibration_error",
    "margin",
    "max_probability",
    "min_evidence_for",
]
