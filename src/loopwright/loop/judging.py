"""The gate's verdict on a challenger's evaluation predictions against the champion: shared by
retraining and ``use_model``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loopwright.domain import DatasetEntry
from loopwright.learning import GateResult, ProbabilisticModel, gate, predict_proba_by_label
from loopwright.loop.context import Context
from loopwright.routing import expected_calibration_error


def predict_labels(ctx: Context, model: ProbabilisticModel, X: Any) -> tuple[list[str], list[float]]:
    """Predicted labels and their confidences."""
    proba = predict_proba_by_label(model, X, ctx.labels)
    return [ctx.labels[j] for j in proba.argmax(axis=1)], proba.max(axis=1).tolist()


def _ece(confidences: list[float], predicted: list[str], truth: list[str]) -> float:
    correct = np.asarray(predicted) == np.asarray(truth)
    return round(expected_calibration_error(confidences, correct), 6)


def verdict(
    ctx: Context,
    evals: Sequence[DatasetEntry],
    X: Any,
    pred: list[str],
    conf: list[float],
    champion_model: ProbabilisticModel | None,
) -> GateResult:
    """The project's gate on ``pred`` against the champion's predictions on the same ``evals``
    (against the majority-class baseline when there is no champion or it cannot predict)."""
    cfg = ctx.config
    y = [e.label for e in evals]
    old_pred, ece = None, None
    if champion_model is not None and evals:
        try:
            old_pred, old_conf = predict_labels(ctx, champion_model, X)
        except Exception:  # a champion that cannot predict any more is judged on the baseline
            old_pred = None
        else:
            ece = (_ece(conf, pred, y), _ece(old_conf, old_pred, y))
    return gate(
        y,
        pred,
        old_pred,
        cfg.gate.rule,
        cfg.gate.alpha,
        cfg.gate.min_eval_items,
        slices={"class": y, "source": [e.source for e in evals]},
        ece=ece,
        max_ece_increase=cfg.gate.max_ece_increase,
    )
