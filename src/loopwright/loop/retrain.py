"""Retrain a challenger on a dataset version, gate it against the champion, promote or reject."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from loopwright.config import ProjectConfig
from loopwright.domain import DatasetEntry, DatasetVersion, ModelStatus, ModelVersion, Split, content_hash
from loopwright.errors import Conflict, Invalid, TooFewLabels
from loopwright.learning import (
    GateResult,
    as_model,
    default_estimator,
    dump_model,
    featurize,
    predict_proba_by_label,
)
from loopwright.learning.augment import averaged, translated_copies
from loopwright.loop import audit, custom_model
from loopwright.loop.context import Context
from loopwright.loop.judging import predict_labels, verdict
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import StoredScores
from loopwright.loop.scoring import champion_model as champion_model_for
from loopwright.loop.snapshot import snapshot
from loopwright.tasks.gate import SetGateResult, set_gate
from loopwright.tasks.multilabel import multi_hot


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    dataset: DatasetVersion
    model: ModelVersion
    gate: GateResult | SetGateResult  # the set gate (micro-F1, paired bootstrap) for task multilabel
    promoted: bool


RETRAIN_DUE = "model.retrain_due"  # kind external: a pipeline should train a new version
BRIDGE_OLD = 1000  # old labels a drift bridge copies at most (the digits SVM is at 0.98 with these)
BRIDGE_UNTIL = 600  # new labels that end it: as in AugmentedTraining, synthetic help ends there
BRIDGE_DRAWS = 3  # a bridged retrain fits this many draws of the copies and averages them, as
# AugmentedTraining does: one draw's luck moves the new champion's confident predictions


def retrain_due(ctx: Context) -> bool:
    """True when enough labels were resolved since the last training run, or when some label
    arrived since and drift was detected after it or the schedule (``retrain.every_hours``) says
    it is time."""
    return _due(ctx)[0] is not None


def _due(ctx: Context) -> tuple[str | None, int]:
    """Why retraining is due (``labels``, ``drift``, ``schedule``; None: not due) and the
    resolved-label count. A ``model.retrain_due`` event counts as a training run, so a project
    whose model lives elsewhere is told once per trigger."""
    policy = ctx.config.retrain
    with ctx.store.unit_of_work() as uow:
        resolved = uow.resolutions.count(ctx.project.id)
        versions = uow.models.list(ctx.project.id)
        drift = audit.last_drift(uow, ctx.project.id)
        told = uow.events.latest(ctx.project.id, RETRAIN_DUE)
    runs = [(int(v.metrics.get("resolutions_seen", 0)), v.created_at) for v in versions]
    if told is not None:
        runs.append((int(told.data.get("resolutions_seen", 0)), told.at))
    seen = max((n for n, _ in runs), default=0)
    if resolved < policy.min_labels or resolved == seen:
        return None, resolved
    if resolved - seen >= policy.every_n_labels:
        return "labels", resolved
    last = max((at for _, at in runs), default=None)
    if last is not None and drift is not None and drift.at > last:
        return "drift", resolved  # drift was detected after the last training run
    hours = policy.every_hours
    if hours is not None and (last is None or ctx.clock() - last >= timedelta(hours=hours)):
        return "schedule", resolved
    return None, resolved


def signal_due(ctx: Context, actor: str = "system") -> dict[str, Any] | None:
    """For a model that lives elsewhere: when retraining is due, emit ``model.retrain_due``
    (once per trigger) with what a pipeline needs; None when it is not due."""
    reason, resolved = _due(ctx)
    if reason is None:
        return None
    dataset = snapshot(ctx, actor)  # what to train on: its train split, gated on its eval split
    with ctx.store.unit_of_work() as uow:
        champion = uow.models.champion(ctx.project.id)
        data = {
            "trigger": reason,
            "resolutions_seen": resolved,
            "champion": None if champion is None else champion.ref,
            "dataset_version": dataset.id,
        }
        ctx.event(uow, actor, RETRAIN_DUE, ("project", ctx.project.name), **data)
    return data


Trainer = Callable[[ProjectConfig, int], Any]  # (config, seed) → an unfitted scikit-learn estimator


def retrain(
    ctx: Context, actor: str = "system", dataset_id: str | None = None, trainer: Trainer | None = None
) -> RetrainOutcome:
    """Train on the version's train split (seeded), gate on its frozen eval split, record the result.

    ``trainer`` builds the estimator (default: the modality's scikit-learn pipeline); it must
    have ``fit``, ``predict_proba`` and ``classes_``, and be serialisable by skops.
    """
    cfg = ctx.config
    if cfg.model.lives_elsewhere:
        raise Conflict(
            f"this project's model lives elsewhere (model.kind {cfg.model.kind}): loopwright never "
            "trains it; "
            "register a version your pipeline trained and gate it (loopwright models register)"
        )
    dataset = snapshot(ctx, actor) if dataset_id is None else _dataset(ctx, dataset_id)
    train = [e for e in dataset.entries if e.split is Split.TRAIN]
    evals = [e for e in dataset.entries if e.split is Split.EVAL]
    old: list[DatasetEntry] = []  # the old world's training labels, when a drift is bridged
    if cfg.drift.learn_since_drift:
        train, evals, old = _since_drift(ctx, train, evals)
    if len(train) < cfg.retrain.min_labels or len({e.label for e in train}) < 2:
        raise TooFewLabels(
            f"dataset {dataset.id[:12]} has {len(train)} training labels in "
            f"{len({e.label for e in train})} classes; need ≥ {cfg.retrain.min_labels} in ≥ 2 classes"
        )
    with ctx.store.unit_of_work() as uow:
        payloads = {i.id: i.payload for i in uow.items.get_many([e.item_id for e in dataset.entries])}
        resolved = uow.resolutions.count(ctx.project.id)
        champion = uow.models.champion(ctx.project.id)
        eval_ids = [e.item_id for e in evals]
        champion_model = champion_model_for(ctx, uow, champion, eval_ids) if champion else None
    X_train = featurize(cfg, [payloads[e.item_id] for e in train])
    y_train = [e.label for e in train]
    draws: list[tuple[Any, Any]] = []  # the bridge: draws of the old world's labels as copies
    bridge: dict[str, Any] = {}
    if old and cfg.drift.bridge_copies:
        X_old, y_old = featurize(cfg, [payloads[e.item_id] for e in old]), [e.label for e in old]
        rng = np.random.default_rng([cfg.retrain.seed, len(train)])
        draws = [translated_copies(X_old, y_old, cfg.drift.bridge_copies, rng) for _ in range(BRIDGE_DRAWS)]
        bridge = {"bridge_from": len(old), "bridge_synthetic": len(draws[0][1]), "bridge_draws": BRIDGE_DRAWS}
    X_eval = featurize(cfg, [payloads[e.item_id] for e in evals]) if evals else None
    build = trainer or default_estimator
    result: GateResult | SetGateResult
    if cfg.task == "multilabel":
        estimator, result, scores = _fit_sets(ctx, build, X_train, train, X_eval, evals, champion_model)
    else:
        estimator = _fit(cfg, build, X_train, y_train, draws)
        challenger_pred, challenger_conf = predict_labels(ctx, estimator, X_eval) if evals else ([], [])
        result = verdict(ctx, evals, X_eval, challenger_pred, challenger_conf, champion_model)
        scores = {"eval_accuracy": result.challenger_accuracy}
    metrics = {
        "train_size": len(train),
        "eval_size": len(evals),
        **scores,
        "resolutions_seen": resolved,
        **bridge,
    }
    # a custom trainer's model must load in every other process (trusted types), or nothing is written
    blob = dump_model(estimator) if trainer is None else custom_model.artifact(ctx, estimator, persist=True)
    with ctx.store.unit_of_work() as uow:
        version = uow.models.add(
            ctx.project.id,
            ModelStatus.CANDIDATE,
            dataset.id,
            content_hash(cfg.model_dump(mode="json")),
            cfg.retrain.seed,
            metrics,
            blob,
        )
        version = uow.models.set_gate(version.id, {**result.as_dict(), "champion_version": _v(champion)})
        ctx.event(
            uow,
            actor,
            "model.trained",
            ("model_version", version.version),
            dataset_version=dataset.id,
            **metrics,
        )
        ctx.event(uow, actor, "model.gated", ("model_version", version.version), **result.as_dict())
        if result.passed:
            version = _promote(ctx, uow, version, actor, gated=True, gate=result.reason)
        else:
            version = uow.models.set_status(version.id, ModelStatus.REJECTED)
    ctx.models[version.id] = estimator
    return RetrainOutcome(dataset, version, result, result.passed)


def _fit(cfg: ProjectConfig, build: Trainer, X: Any, y: list[str], draws: list[tuple[Any, Any]]) -> Any:
    """The trainer's model on ``X``, ``y``; with a drift bridge, one fit per draw of its copies
    beside them, averaged (:func:`~loopwright.learning.augment.averaged`), in up to
    ``retrain.processes`` worker processes (each fit seeds itself, so where it runs does not
    change the model); the vote knows the classes of the old world too, which ``y`` may lack."""
    if not draws:
        return build(cfg, cfg.retrain.seed).fit(X, y)
    rows = [(np.vstack([X, X_old]), [*y, *y_old]) for X_old, y_old in draws]
    pairs = [(build(cfg, cfg.retrain.seed), row) for row in rows]
    if cfg.retrain.processes > 1:
        from joblib import Parallel, delayed

        try:
            filters = list(warnings.filters)  # a worker warns as this process would
            fits = Parallel(n_jobs=min(cfg.retrain.processes, len(rows)))(
                delayed(_fitted)(estimator, *row, filters) for estimator, row in pairs
            )
            return averaged(fits, *rows[0])
        except pickle.PicklingError:  # a trainer whose estimator cannot leave this process
            pass
    return averaged([_fitted(estimator, *row) for estimator, row in pairs], *rows[0])


def _fitted(estimator: Any, X: Any, y: Any, filters: Sequence[Any] = ()) -> Any:
    """``estimator`` fitted under the warning ``filters`` of the process that asked (in order)."""
    with warnings.catch_warnings():
        for action, message, category, module, line in reversed(filters):  # a regex or its text
            text, where = (getattr(m, "pattern", m) or "" for m in (message, module))
            warnings.filterwarnings(action, text, category, where, line)
        return estimator.fit(X, y)


def _fit_sets(
    ctx: Context,
    build: Trainer,
    X_train: Any,
    train: list[DatasetEntry],
    X_eval: Any,
    evals: list[DatasetEntry],
    champion: Any,
) -> tuple[Any, SetGateResult, dict[str, float]]:
    """``task: multilabel``: fit on the multi-hot matrix of the resolved sets, then the set gate
    (micro-F1, paired bootstrap) against the champion's sets on the same eval items. A champion
    that cannot predict any more is no comparison: the challenger is judged as a first model."""
    cfg, labels = ctx.config, ctx.labels
    estimator = build(cfg, cfg.retrain.seed).fit(X_train, multi_hot([e.label for e in train], labels))
    Y_eval = multi_hot([e.label for e in evals], labels)
    mine = _sets(ctx, estimator, X_eval) if evals else np.zeros_like(Y_eval, dtype=bool)
    theirs = None
    if champion is not None and evals:
        try:
            theirs = _sets(ctx, champion, X_eval)
        except Exception:  # judged without a champion, as the single-label gate does
            theirs = None
    g = cfg.gate
    result = set_gate(
        Y_eval, mine, theirs, "micro_f1", g.alpha, g.min_eval_items, random_state=cfg.retrain.seed
    )
    exact = float((mine == Y_eval.astype(bool)).all(axis=1).mean()) if evals else 0.0
    scores = {
        "eval_accuracy": round(exact, 6),  # whole sets right: the error certification bounds
        "eval_micro_f1": round(result.challenger["micro_f1"], 6),
        "eval_macro_f1": round(result.challenger["macro_f1"], 6),
    }
    return estimator, result, scores


def _sets(ctx: Context, model: Any, X: Any) -> Any:
    """A model's predicted sets as a boolean multi-hot matrix (per-label probability ≥ 0.5)."""
    if isinstance(model, StoredScores):  # a champion elsewhere: its stored per-label probabilities
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    else:
        proba = predict_proba_by_label(model, X, ctx.labels)
    return proba >= 0.5


def _since_drift(
    ctx: Context, train: list[DatasetEntry], evals: list[DatasetEntry]
) -> tuple[list[DatasetEntry], list[DatasetEntry], list[DatasetEntry]]:
    """Only the items from the last drifted window on, for training and for the gate, as long
    as there are enough of them (``retrain.min_labels``, ``gate.min_eval_items``); and the old
    world's labels a drift bridge copies (:func:`_bridged`)."""
    with ctx.store.unit_of_work() as uow:
        start = audit.drift_start(uow, ctx.project.id)
    if start is None:
        return train, evals, []
    new_train = [e for e in train if e.item_id >= start]
    new_evals = [e for e in evals if e.item_id >= start]
    old = [e for e in train if e.item_id < start]
    if len(new_train) < ctx.config.retrain.min_labels or len(new_evals) < ctx.config.gate.min_eval_items:
        return train, evals, _bridged(old, new_train)
    old += [e for e in evals if e.item_id < start]  # retired: no gate or certificate scores them now
    return new_train, new_evals, _bridged(old, new_train)


def _bridged(old: list[DatasetEntry], new: list[DatasetEntry]) -> list[DatasetEntry]:
    """The newest :data:`BRIDGE_OLD` of the old world's labels while the new world has fewer of
    its own than them and than :data:`BRIDGE_UNTIL`; else none. Bounds what a bridged retrain
    fits however long the old world lasted, and ends the bridge once labels are not scarce."""
    newest = sorted(old, key=lambda e: e.item_id)[-BRIDGE_OLD:]
    return newest if len(new) < min(len(newest), BRIDGE_UNTIL) else []


def _v(version: ModelVersion | None) -> int | None:
    return version.version if version else None


def _dataset(ctx: Context, dataset_id: str) -> DatasetVersion:
    with ctx.store.unit_of_work() as uow:
        return uow.datasets.get(dataset_id)


def _promote(ctx: Context, uow: UnitOfWork, version: ModelVersion, actor: str, **extra: Any) -> ModelVersion:
    current = uow.models.champion(ctx.project.id)
    if current is not None and current.id != version.id:
        uow.models.set_status(current.id, ModelStatus.RETIRED)
    promoted = uow.models.set_status(version.id, ModelStatus.CHAMPION, promoted_at=ctx.clock())
    ctx.event(
        uow,
        actor,
        "model.promoted",
        ("model_version", version.version),
        previous=_v(current),
        before_id=current.id if current else None,
        after_id=version.id,
        **extra,
    )
    return promoted


def promote(ctx: Context, version: int, actor: str = "system") -> ModelVersion:
    """Make ``version`` the champion by hand. Rejected versions cannot be promoted."""
    with ctx.store.unit_of_work() as uow:
        return promote_in(ctx, uow, uow.models.get(ctx.project.id, version), actor)


def promote_in(ctx: Context, uow: UnitOfWork, model: ModelVersion, actor: str) -> ModelVersion:
    """``model`` as champion inside ``uow``: Conflict if its gate rejected it, as is if it is
    the champion already."""
    if model.status is ModelStatus.REJECTED:
        raise Conflict(f"model version {model.version} was rejected by its gate and cannot be promoted")
    if model.status is ModelStatus.CHAMPION:
        return model
    return _promote(ctx, uow, model, actor)


def use_model(
    ctx: Context, model: Any, actor: str = "system", *, force: bool = False, persist: bool = True
) -> ModelVersion:
    """Register a model of your own (estimator or callable) and promote it if the gate passes.

    The model is stored so that every process opening the project loads it: types of your own
    must be named in ``model.trusted_types`` (:class:`Invalid` at once otherwise, naming them).
    ``persist=False`` keeps it in this process only (other processes cannot serve it).
    ``force=True`` promotes without the gate; ``model.promoted`` records ``gated`` either way.
    A failed gate is a result: the version comes back ``rejected``.
    """
    wrapped = as_model(model, ctx.labels)
    classes = [str(c) for c in np.asarray(wrapped.classes_).tolist()]
    if unknown := sorted(set(classes) - set(ctx.labels)):
        raise Invalid(f"the model's classes_ include labels outside the project: {unknown}")
    artifact = custom_model.artifact(ctx, wrapped, persist)
    judged = None if force else custom_model.judge(ctx, wrapped, actor)
    with ctx.store.unit_of_work() as uow:
        version = uow.models.add(
            ctx.project.id,
            ModelStatus.CANDIDATE,
            None,
            "external",
            0,
            {"external": True, "persisted": bool(artifact)},
            artifact,
        )
        ctx.models[version.id] = wrapped
        if judged is None:
            return _promote(ctx, uow, version, actor, gated=False, persisted=bool(artifact))
        result, champion = judged
        version = uow.models.set_gate(version.id, {**result.as_dict(), "champion_version": _v(champion)})
        ctx.event(uow, actor, "model.gated", ("model_version", version.version), **result.as_dict())
        if not result.passed:
            return uow.models.set_status(version.id, ModelStatus.REJECTED)
        return _promote(ctx, uow, version, actor, gated=True, gate=result.reason, persisted=bool(artifact))
