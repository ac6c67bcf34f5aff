"""Drift monitoring in the loop.

The newest ``drift.window`` items are compared with the window before them: their features
(per-feature tests and a domain classifier) and the champion's predictions on both; the
champion's accuracy on the window is estimated without labels and set against the window's
audit, and ADWIN watches its error rate along the whole audit stream (concept drift). When drift
fires, a diverse sample of the drifted window's unreviewed items goes to review (k-center over
their features, not just the uncertain ones), the routing threshold is re-certified from audits
made since the window began, and retraining becomes due; every check is an event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loopwright.active import kcenter_greedy
from loopwright.active.features import dense
from loopwright.config import Modality
from loopwright.domain import Item, Split
from loopwright.drift import (
    compare_with_audit,
    data_drift,
    detect_changes,
    estimate_accuracy,
    prediction_drift,
)
from loopwright.errors import Conflict
from loopwright.learning import featurize, predict_proba_by_label
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork

DRIFT_PRIORITY = 1.5  # before routed work, after end-user feedback


@dataclass(frozen=True, slots=True)
class DriftCheck:
    drift: bool
    window: tuple[int, int]  # first and last item id of the current window
    data: dict[str, Any] | None  # the data-drift report (None for text: see ``prediction``)
    prediction: dict[str, Any] | None  # the champion's output drift, when it could be tested
    sampled_tasks: int  # review tasks opened from the drifted window
    performance: dict[str, Any] | None = None  # label-free accuracy estimate vs the audit
    concept_changes: tuple[int, ...] = ()  # item ids where the audited error stream changed


def check_drift(ctx: Context, actor: str = "system") -> DriftCheck:
    """Compare the newest window with the one before; act on drift (see the module docstring)."""
    cfg, pid = ctx.config.drift, ctx.project.id
    with ctx.store.unit_of_work() as uow:
        items = uow.items.recent(pid, 2 * cfg.window)
        if len(items) < 2 * cfg.window:
            raise Conflict(
                f"drift needs two windows of {cfg.window} items; the project has {len(items)} "
                "(lower drift.window or ingest more)"
            )
        reference, current = items[: cfg.window], items[cfg.window :]
        X_ref = featurize(ctx.config, [i.payload for i in reference])
        X_cur = featurize(ctx.config, [i.payload for i in current])
        data = None
        if ctx.config.modality is not Modality.TEXT:
            columns = _columns(ctx, X_ref.shape[1])
            data = data_drift(
                X_ref, X_cur, columns, alpha=cfg.alpha, auc_threshold=cfg.auc_threshold,
                seed=ctx.config.retrain.seed,
            ).to_dict()  # fmt: skip
        prediction = _prediction_drift(ctx, uow, reference, current)
        performance = _performance(ctx, uow, current)
        changes = _concept_changes(ctx, uow)
        window = (current[0].id, current[-1].id)
        concept = any(i >= window[0] for i in changes)
        drift = bool((data and data["drift"]) or (prediction and prediction["drift"]) or concept)
        sampled = _sample_for_review(ctx, uow, current, X_cur) if drift else 0
        record(ctx, uow, actor, data, window, sampled, prediction, concept)
        return DriftCheck(drift, window, data, prediction, sampled, performance, tuple(changes))


def _performance(ctx: Context, uow: UnitOfWork, window: list[Item]) -> dict[str, Any] | None:
    """The champion's expected accuracy on the window without labels (mean top probability,
    Poisson-binomial interval), set against the accuracy on the window's audited items."""
    champion = uow.models.champion(ctx.project.id)
    if champion is None:
        return None
    X = featurize(ctx.config, [i.payload for i in window])
    proba = predict_proba_by_label(ctx.model(uow, champion), X, ctx.labels)
    estimate = estimate_accuracy(proba)
    out: dict[str, Any] = {"estimated": asdict(estimate), "audit": None}
    resolved = uow.resolutions.latest_by_item(ctx.project.id)
    audited = set(uow.decisions.audited_items(ctx.project.id))
    rows = [j for j, i in enumerate(window) if i.id in audited and i.id in resolved]
    if rows:
        predicted = np.asarray(ctx.labels)[proba[rows].argmax(axis=1)]
        right = int(np.sum(predicted == [resolved[window[j].id].label for j in rows]))
        out["audit"] = asdict(compare_with_audit(estimate, right, len(rows)))
    return out


def _concept_changes(ctx: Context, uow: UnitOfWork) -> list[int]:
    """Item ids where ADWIN saw the champion's error rate on the audit stream change."""
    champion = uow.models.champion(ctx.project.id)
    resolved = uow.resolutions.latest_by_item(ctx.project.id)
    ids = [i for i in uow.decisions.audited_items(ctx.project.id) if i in resolved]
    if champion is None or len(ids) < 30:
        return []
    items = uow.items.get_many(ids)
    X = featurize(ctx.config, [i.payload for i in items])
    proba = predict_proba_by_label(ctx.model(uow, champion), X, ctx.labels)
    wrong = np.asarray(ctx.labels)[proba.argmax(axis=1)] != [resolved[i].label for i in ids]
    return [ids[k] for k in detect_changes(wrong.astype(float), "adwin")]


def batch_drift(ctx: Context, uow: UnitOfWork, X_new: Any) -> dict[str, Any] | None:
    """A new batch's features against the ``drift.window`` items before it, before routing;
    None for text, or when either side has fewer than 30 rows."""
    if X_new is None or ctx.config.modality is Modality.TEXT or len(X_new) < 30:
        return None
    before = uow.items.recent(ctx.project.id, ctx.config.drift.window)
    if len(before) < 30:
        return None
    X_ref = featurize(ctx.config, [i.payload for i in before])
    cfg = ctx.config.drift
    return data_drift(
        X_ref, X_new, _columns(ctx, X_ref.shape[1]), alpha=cfg.alpha,
        auc_threshold=cfg.auc_threshold, seed=ctx.config.retrain.seed,
    ).to_dict()  # fmt: skip


def record(
    ctx: Context,
    uow: UnitOfWork,
    actor: str,
    data: dict[str, Any] | None,
    window: tuple[int, int],
    sampled: int,
    prediction: dict[str, Any] | None = None,
    concept: bool = False,
) -> None:
    """A ``drift.detected`` or ``drift.checked`` event for the window of item ids."""
    drift = bool((data and data["drift"]) or (prediction and prediction["drift"]) or concept)
    ctx.event(
        uow,
        actor,
        "drift.detected" if drift else "drift.checked",
        ("project", ctx.project.name),
        window_start_item_id=window[0],
        window_end_item_id=window[1],
        drifted_features=[] if data is None else data["drifted"],
        domain_classifier_auc=None if data is None else data["domain_classifier_auc"],
        prediction_drift=None if prediction is None else prediction["drift"],
        concept_drift=concept,
        sampled_tasks=sampled,
    )


def _columns(ctx: Context, n: int) -> list[str]:
    if ctx.config.features:
        return list(ctx.config.features)
    return [f"{ctx.config.input_key}[{j}]" for j in range(n)]


def _prediction_drift(
    ctx: Context, uow: UnitOfWork, reference: list[Item], current: list[Item]
) -> dict[str, Any] | None:
    """The champion's output on both windows, leaving out the items it was trained on."""
    champion = uow.models.champion(ctx.project.id)
    if champion is None:
        return None
    trained: set[int] = set()
    if champion.dataset_version_id is not None:
        dataset = uow.datasets.get(champion.dataset_version_id)
        trained = {e.item_id for e in dataset.entries if e.split is Split.TRAIN}
    ref = [i for i in reference if i.id not in trained]
    cur = [i for i in current if i.id not in trained]
    model = ctx.model(uow, champion)

    def proba(window: list[Item]) -> Any:
        return predict_proba_by_label(model, featurize(ctx.config, [i.payload for i in window]), ctx.labels)

    if min(len(ref), len(cur)) < 30:
        return None
    return prediction_drift(proba(ref), proba(cur), alpha=ctx.config.drift.alpha).to_dict()


def _sample_for_review(ctx: Context, uow: UnitOfWork, window: list[Item], X: Any) -> int:
    """Open review tasks for a diverse sample of the window's items that nobody reviewed."""
    reviewed = {i.id for i in window if uow.tasks.for_item(i.id)}
    fresh = [j for j, i in enumerate(window) if i.id not in reviewed]
    k = min(ctx.config.drift.review_sample, len(fresh))
    if k == 0:
        return 0
    subset = [X[j] for j in fresh] if isinstance(X, list) else X[fresh]
    points, _ = dense(subset, None)
    rng = np.random.default_rng([ctx.config.retrain.seed, window[-1].id])
    tier = ctx.config.routing.fallback_tier
    for j in kcenter_greedy(points, k, rng).tolist():
        item = window[fresh[j]]
        uow.tasks.add(
            ctx.project.id,
            item.id,
            None,
            tier,
            DRIFT_PRIORITY,
            "drift",
            ctx.config.tier(tier).required_annotations,
        )
    return k
