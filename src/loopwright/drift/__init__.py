"""Drift detection: data drift between windows, model-output drift, a multivariate domain classifier,
a label-free accuracy estimate and concept drift on the audited error stream."""

from loopwright.drift.classifier import domain_classifier_auc
from loopwright.drift.concept import METHODS as CHANGE_DETECTORS
from loopwright.drift.concept import ChangeDetector, detect_changes
from loopwright.drift.correction import adjust_pvalues
from loopwright.drift.data import DataDriftReport, FeatureDrift, data_drift
from loopwright.drift.output import prediction_drift
from loopwright.drift.performance import (
    AccuracyEstimate,
    AuditComparison,
    compare_with_audit,
    estimate_accuracy,
    estimate_accuracy_by_window,
)

__all__ = [
    "CHANGE_DETECTORS",
    "AccuracyEstimate",
    "AuditComparison",
    "ChangeDetector",
    "DataDriftReport",
    "FeatureDrift",
    "adjust_pvalues",
    "compare_with_audit",
    "data_drift",
    "detect_changes",
    "domain_classifier_auc",
    "estimate_accuracy",
    "estimate_accuracy_by_window",
    "prediction_drift",
]
