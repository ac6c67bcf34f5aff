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
from numpy.typing import NDArray

from loopwright.active import kcenter_greedy
from loopwright.active.features import dense
from loopwright.config import Modality
from loopwright.domain import Item, ModelVersion, Split
from loopwright.drift import (
    compare_with_audit,
    data_drift,
    detect_changes,
    estimate_accuracy,
    prediction_drift,
)
from loopwright.errors import Conflict
from loopwright.learning import featurize, predict_proba_by_label
from loopwright.loop import audit
from loopwright.loop.audit import DRIFT_DETECTED
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import EXTERNAL

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
        (X_ref, X_cur), embedded = _features(ctx, uow, reference, current)
        text = ctx.config.modality is Modality.TEXT and not embedded
        data = None if text else _data_drift(ctx, X_ref, X_cur, embedded)
        prediction = performance = None
        changes: list[int] = []
        if (champion := uow.models.champion(pid)) is not None and champion.kind == EXTERNAL:
            prediction, performance, changes = _stored_outputs(ctx, uow, champion, reference, current)
        elif champion is not None:
            model = ctx.model(uow, champion)
            M_ref, M_cur = X_ref, X_cur
            if embedded:  # the model reads payloads, not embeddings
                M_ref, M_cur = (featurize(ctx.config, [i.payload for i in w]) for w in (reference, current))
            proba_cur = predict_proba_by_label(model, M_cur, ctx.labels)
            prediction = _prediction_drift(ctx, uow, champion, model, M_ref, reference, proba_cur, current)
            performance = _performance(ctx, uow, proba_cur, current)
            changes = _concept_changes(ctx, uow, model)
        window = (current[0].id, current[-1].id)
        concept = any(i >= window[0] for i in changes)
        drift = _fired(data, prediction, concept)
        sampled = _sample_for_review(ctx, uow, current, X_cur) if drift else 0
        record(ctx, uow, actor, data, window, sampled, prediction, concept)
        return DriftCheck(drift, window, data, prediction, sampled, performance, tuple(changes))


def batch_drift(ctx: Context, uow: UnitOfWork, X_new: Any) -> dict[str, Any] | None:
    """A new batch's features (or embeddings) against the ``drift.window`` items before it,
    before routing; None for text without embeddings, or when either side has fewer than 30 rows."""
    return _against(ctx, uow, X_new, None)


def settle(ctx: Context, uow: UnitOfWork, X_new: Any, actor: str) -> bool | None:
    """Confirm or retract the newest data-drift alarm with the next batch (``drift.confirm``).

    The batch is tested against the ``drift.window`` items before the alarm's window, at the
    same level: a changed world still differs from the old one (``drift.confirmed``); after a
    false alarm it does not, and ``drift.retracted`` makes the evidence from before the alarm
    count again (:func:`~loopwright.loop.audit.last_drift`). The alarm's own batch already went to
    review. Alarms raised by the model's outputs or by the audited error (concept drift) are
    not for input features to retract. Returns whether the alarm stands, None when none was
    pending or the batch could not be tested."""
    pid = ctx.project.id
    alarm = uow.events.latest(pid, DRIFT_DETECTED)
    if not ctx.config.drift.confirm or alarm is None:
        return None
    if alarm.data.get("prediction_drift") or alarm.data.get("concept_drift"):
        return None
    for action in (audit.DRIFT_CONFIRMED, audit.DRIFT_RETRACTED):
        settled = uow.events.latest(pid, action)
        if settled is not None and settled.id > alarm.id:
            return None
    start = int(alarm.data["window_start_item_id"])
    report = _against(ctx, uow, X_new, start)
    if report is None:
        return None
    if not report["drift"]:
        uow.certifications.evidence_changed(pid)  # the evidence from before the alarm counts again
    ctx.event(
        uow,
        actor,
        audit.DRIFT_CONFIRMED if report["drift"] else audit.DRIFT_RETRACTED,
        ("project", ctx.project.name),
        alarm_event_id=alarm.id,
        window_start_item_id=start,
        window_end_item_id=alarm.data["window_end_item_id"],
        drifted_features=report["drifted"],
        domain_classifier_auc=report["domain_classifier_auc"],
        p_value=report["p_value"],
    )
    return bool(report["drift"])


def _against(ctx: Context, uow: UnitOfWork, X_new: Any, before_id: int | None) -> dict[str, Any] | None:
    """``X_new`` against the ``drift.window`` items before item ``before_id`` (None: the newest)."""
    if X_new is None or len(X_new) < 30:
        return None
    before = uow.items.recent(ctx.project.id, ctx.config.drift.window, before=before_id)
    if len(before) < 30:
        return None
    vectors = uow.embeddings.get_many([i.id for i in before])
    embedded = isinstance(X_new, np.ndarray) and len(vectors) == len(before)
    if embedded and len(next(iter(vectors.values()))) == X_new.shape[1]:
        return _data_drift(ctx, np.asarray([vectors[i.id] for i in before], dtype=np.float64), X_new, True)
    if ctx.config.modality is Modality.TEXT:
        return None
    X_ref = featurize(ctx.config, [i.payload for i in before])
    if not isinstance(X_new, np.ndarray) or X_ref.shape[1] != X_new.shape[1]:
        return None  # the batch came as embeddings, the window before did not
    return _data_drift(ctx, X_ref, X_new)


def _features(ctx: Context, uow: UnitOfWork, *windows: list[Item]) -> tuple[list[Any], bool]:
    """Each window as embeddings when every item carried one, else as featurised payloads."""
    ids = [i.id for w in windows for i in w]
    vectors = uow.embeddings.get_many(ids)
    if ids and len(vectors) == len(ids):
        return [np.asarray([vectors[i.id] for i in w], dtype=np.float64) for w in windows], True
    return [featurize(ctx.config, [i.payload for i in w]) for w in windows], False


def _stored_outputs(
    ctx: Context, uow: UnitOfWork, champion: ModelVersion, reference: list[Item], current: list[Item]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[int]]:
    """Output drift, label-free accuracy and concept changes of a champion that lives elsewhere,
    from the predictions it sent with the items (it cannot be re-run here)."""
    ref = uow.predictions.by_model(champion.id, [i.id for i in reference])
    cur = uow.predictions.by_model(champion.id, [i.id for i in current])

    def matrix(found: dict[int, dict[str, float]]) -> NDArray[np.float64]:
        return np.asarray([[p[label] for label in ctx.labels] for p in found.values()], dtype=np.float64)

    prediction = performance = None
    if min(len(ref), len(cur)) >= 30:
        prediction = prediction_drift(matrix(ref), matrix(cur), alpha=ctx.config.drift.alpha).to_dict()
    if cur:
        performance = _performance(ctx, uow, matrix(cur), [i for i in current if i.id in cur])
    labels = audit.audited_labels(uow, ctx.project.id)
    changes: list[int] = []
    if len(labels) >= 30:
        ids, _, correct = audit.score_version(ctx, uow, champion, labels)
        if len(ids) >= 30:
            changes = [ids[k] for k in detect_changes((~correct).astype(float), "adwin")]
    return prediction, performance, changes


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
    fired = _fired(data, prediction, concept)
    if fired:
        uow.certifications.evidence_changed(ctx.project.id)  # only audits after the alarm count now
    ctx.event(
        uow,
        actor,
        DRIFT_DETECTED if fired else "drift.checked",
        ("project", ctx.project.name),
        window_start_item_id=window[0],
        window_end_item_id=window[1],
        drifted_features=[] if data is None else data["drifted"],
        domain_classifier_auc=None if data is None else data["domain_classifier_auc"],
        prediction_drift=None if prediction is None else prediction["drift"],
        concept_drift=concept,
        sampled_tasks=sampled,
    )


def _fired(data: dict[str, Any] | None, prediction: dict[str, Any] | None, concept: bool) -> bool:
    return bool((data and data["drift"]) or (prediction and prediction["drift"]) or concept)


def _data_drift(ctx: Context, X_ref: Any, X_cur: Any, embedded: bool = False) -> dict[str, Any]:
    cfg = ctx.config.drift
    n = X_ref.shape[1]
    columns = [f"embedding[{j}]" for j in range(n)] if embedded else _columns(ctx, n)
    return data_drift(
        X_ref, X_cur, columns, alpha=cfg.alpha,
        auc_threshold=cfg.auc_threshold, seed=ctx.config.retrain.seed,
    ).to_dict()  # fmt: skip


def _columns(ctx: Context, n: int) -> list[str]:
    if ctx.config.features:
        return list(ctx.config.features)
    return [f"{ctx.config.input_key}[{j}]" for j in range(n)]


def _prediction_drift(
    ctx: Context,
    uow: UnitOfWork,
    champion: ModelVersion,
    model: Any,
    X_ref: Any,
    reference: list[Item],
    proba_cur: NDArray[np.float64],
    current: list[Item],
) -> dict[str, Any] | None:
    """The champion's output on both windows, leaving out the items it was trained on."""
    trained: set[int] = set()
    if champion.dataset_version_id is not None:
        dataset = uow.datasets.get(champion.dataset_version_id)
        trained = {e.item_id for e in dataset.entries if e.split is Split.TRAIN}
    ref = [j for j, i in enumerate(reference) if i.id not in trained]
    cur = [j for j, i in enumerate(current) if i.id not in trained]
    if min(len(ref), len(cur)) < 30:
        return None
    X = [X_ref[j] for j in ref] if isinstance(X_ref, list) else X_ref[ref]
    proba_ref = predict_proba_by_label(model, X, ctx.labels)
    return prediction_drift(proba_ref, proba_cur[cur], alpha=ctx.config.drift.alpha).to_dict()


def _performance(
    ctx: Context, uow: UnitOfWork, proba: NDArray[np.float64], window: list[Item]
) -> dict[str, Any]:
    """The champion's expected accuracy on the window without labels (mean top probability,
    Poisson-binomial interval), set against the accuracy on the window's audited items."""
    estimate = estimate_accuracy(proba)
    out: dict[str, Any] = {"estimated": asdict(estimate), "audit": None}
    labels = audit.audited_labels(uow, ctx.project.id, since=window[0].id)
    rows = [j for j, i in enumerate(window) if i.id in labels]
    if rows:
        predicted = np.asarray(ctx.labels)[proba[rows].argmax(axis=1)]
        right = int(np.sum(predicted == [labels[window[j].id] for j in rows]))
        out["audit"] = asdict(compare_with_audit(estimate, right, len(rows)))
    return out


def _concept_changes(ctx: Context, uow: UnitOfWork, model: Any) -> list[int]:
    """Item ids where ADWIN saw the champion's error rate on the audit stream change."""
    labels = audit.audited_labels(uow, ctx.project.id)
    if len(labels) < 30:
        return []
    _, correct = audit.score(ctx, uow, model, labels)
    ids = list(labels)
    return [ids[k] for k in detect_changes((~correct).astype(float), "adwin")]


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
