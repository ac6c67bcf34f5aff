"""Routing: confidence scores and the router that sends predictions to auto-accept or review."""

from loopwright.routing.confidence import entropy, margin, max_probability
from loopwright.routing.router import RouteChoice, ThresholdRouter

__all__ = ["RouteChoice", "ThresholdRouter", "entropy", "margin", "max_probability"]
