"""Models that live elsewhere: predictions that arrive with records, versions registered by a
pipeline, their uploaded predictions on the frozen evaluation split, and the gate that judges them.

A model names itself ``<name>@<tag>`` (``fraud-net@2026-12-01``, ``resnet@v7``). A name seen on
an ingested prediction for the first time becomes a registered version at once (event
``model.registered`` with ``source: "first_sight"``), so an inference job is never refused, and
the champion if the project has none (it is the model in production). A pipeline may register a
version ahead, with its artifact URI and the dataset version it was trained on; it becomes
champion only through the gate (or a promotion by hand). A certified threshold covers only the
champion's predictions: a batch carrying another version's goes to review.

Probabilities are checked strictly: every project label present and no other, each finite and
≥ 0, summing to 1 within ``SUM_TOLERANCE · n_labels``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loopwright.domain import DatasetVersion, ModelStatus, ModelVersion, Split
from loopwright.errors import Conflict, Invalid
from loopwright.learning import GateResult, gate
from loopwright.loop import datasets, registry, retrain
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import EXTERNAL, scores_of
from loopwright.routing import expected_calibration_error

SUM_TOLERANCE = 1e-6  # per label: probabilities must sum to 1 within 1e-6 · n_labels
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}"
_TAG = r"[A-Za-z0-9][A-Za-z0-9_.\-+]{0,199}"
MODEL_REF = re.compile(rf"^({_NAME})@({_TAG})$")
MISSING_SHOWN = 20  # external ids listed in a "missing eval items" error


def parse_ref(text: Any) -> tuple[str, str] | None:
    """``(name, tag)`` of ``"<name>@<tag>"``, or None when it is not one."""
    found = MODEL_REF.match(text) if isinstance(text, str) else None
    return None if found is None else (found.group(1), found.group(2))


def check_probabilities(labels: Sequence[str], value: Any) -> tuple[dict[str, float] | None, str | None]:
    """The probabilities in ``labels`` order, or why they are not usable."""
    if not isinstance(value, Mapping):
        return None, "probabilities must be an object {label: p}"
    if unknown := sorted(str(k) for k in value if k not in labels):
        return None, f"unknown label(s) {unknown}; the project's labels are {list(labels)}"
    if missing := [label for label in labels if label not in value]:
        return None, f"missing label(s) {missing}: give a probability for every label"
    out: dict[str, float] = {}
    for label in labels:
        p = value[label]
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p) or p < 0:
            return None, f"probability of {label!r} must be a finite number ≥ 0, not {p!r}"
        out[label] = float(p)
    total, tol = math.fsum(out.values()), SUM_TOLERANCE * len(labels)
    if abs(total - 1.0) > tol:
        return None, f"probabilities sum to {total!r}, not 1 (tolerance {tol:g})"
    return out, None


def check_prediction(
    labels: Sequence[str], value: Any
) -> tuple[tuple[str, str, dict[str, float]] | None, str]:
    """``(name, tag, probabilities)`` of a record's ``prediction``, or why it is rejected."""
    if not isinstance(value, Mapping):
        return None, "must be an object {model: '<name>@<version>', probabilities: {label: p}}"
    if extra := sorted(set(value) - {"model", "probabilities"}):
        return None, f"unknown field(s) {extra}; a prediction has model and probabilities"
    ref = parse_ref(value.get("model"))
    if ref is None:
        return (
            None,
            f"model must be '<name>@<version>' (letters, digits, _ . -), not {value.get('model')!r}",
        )
    probabilities, problem = check_probabilities(labels, value.get("probabilities"))
    if probabilities is None:
        return None, str(problem)
    return (ref[0], ref[1], probabilities), ""


def check_embedding(value: Any, dim: int | None) -> tuple[list[float] | None, str]:
    """The embedding as floats, or why it is rejected (``dim``: the project's length, if fixed)."""
    if not isinstance(value, list) or not value:
        return None, "must be a non-empty list of numbers"
    if any(isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) for x in value):
        return None, "must hold finite numbers only"
    if dim is not None and len(value) != dim:
        return None, f"has length {len(value)}; this project's embeddings have length {dim}"
    return [float(x) for x in value], ""


def version_for(ctx: Context, uow: UnitOfWork, name: str, tag: str, actor: str) -> ModelVersion:
    """The registered version ``name@tag``, registered now (first sight) if it is new."""
    found = uow.models.by_ref(ctx.project.id, name, tag)
    if found is not None:
        return found
    version = uow.models.register(
        ctx.project.id, name, tag, None, None, None, {"external": True, "source": "first_sight"}
    )
    ctx.event(
        uow, actor, "model.registered", ("model_version", version.version),
        model=version.ref, source="first_sight", artifact_uri=None, dataset_version=None,
    )  # fmt: skip
    if uow.models.champion(ctx.project.id) is None:  # the model in production is the champion
        version = retrain.promote_in(ctx, uow, version, actor)
    return version


def register(
    ctx: Context,
    name: str,
    tag: str,
    artifact_uri: str | None = None,
    dataset_version: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    endpoint: str | None = None,
    actor: str = "system",
) -> ModelVersion:
    """Register ``name@tag`` ahead of its predictions: a candidate the gate can judge."""
    if parse_ref(f"{name}@{tag}") is None:
        raise Invalid(f"model {name}@{tag} is not '<name>@<version>' (letters, digits, _ . -)")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise Invalid("metadata must be an object")
    with ctx.store.unit_of_work() as uow:
        dataset = None if dataset_version is None else datasets.resolve(uow, ctx.project.id, dataset_version)
        metrics = {
            "external": True,
            "source": "registered",
            "metadata": dict(metadata or {}),
            "resolutions_seen": uow.resolutions.count(ctx.project.id),
        }
        version = uow.models.register(
            ctx.project.id,
            name,
            tag,
            None if dataset is None else dataset.id,
            artifact_uri,
            endpoint,
            metrics,
        )
        ctx.event(
            uow, actor, "model.registered", ("model_version", version.version), model=version.ref,
            source="registered", artifact_uri=artifact_uri, dataset_version=version.dataset_version_id,
        )  # fmt: skip
        return version


def resolve(uow: UnitOfWork, project_id: int, ref: int | str) -> ModelVersion:
    """A version by ``name@tag``, number (``3``, ``v3``) or alias (``champion``, ``previous``)."""
    return registry.resolve(uow, project_id, ref)


def _eval_dataset(uow: UnitOfWork, ctx: Context, version: ModelVersion) -> DatasetVersion:
    """The dataset whose frozen eval split judges ``version``: the one it was trained on."""
    if version.dataset_version_id is not None:
        return uow.datasets.get(version.dataset_version_id)
    return datasets.resolve(uow, ctx.project.id, "latest")


def upload_predictions(
    ctx: Context, ref: int | str, rows: Mapping[str, Any], actor: str = "system"
) -> dict[str, Any]:
    """Store a registered version's probabilities ``{external_id: {label: p}}``; they must cover
    every item of the eval split of the dataset it was trained on. All or nothing."""
    if not isinstance(rows, Mapping) or not rows:
        raise Invalid("predictions must be a non-empty object {external_id: {label: p}}")
    with ctx.store.unit_of_work() as uow:
        version = resolve(uow, ctx.project.id, ref)
        if version.kind != EXTERNAL:
            raise Conflict(f"model {version.ref} was trained here: loopwright scores it itself")
        errors: list[tuple[str, str]] = []
        clean: dict[str, dict[str, float]] = {}
        for ext, value in rows.items():
            probabilities, problem = check_probabilities(ctx.labels, value)
            if probabilities is None:
                errors.append((f"predictions.{ext}", str(problem)))
            else:
                clean[str(ext)] = probabilities
        items = uow.items.by_external_ids(ctx.project.id, list(clean))
        errors += [(f"predictions.{e}", "no item has this external_id") for e in clean if e not in items]
        if errors:
            raise Invalid(f"{len(errors)} prediction(s) rejected; nothing was stored", errors)
        dataset = _eval_dataset(uow, ctx, version)
        evals = [e.item_id for e in dataset.entries if e.split is Split.EVAL]
        uploaded = {items[e].id for e in clean}
        if missing := [i for i in evals if i not in uploaded]:
            names = [i.external_id for i in uow.items.get_many(missing[:MISSING_SHOWN])]
            more = "" if len(missing) <= MISSING_SHOWN else f" and {len(missing) - MISSING_SHOWN} more"
            raise Invalid(
                f"the upload misses {len(missing)} of the {len(evals)} evaluation items of dataset "
                f"{dataset.id[:12]}: {', '.join(names)}{more}; nothing was stored"
            )
        n = uow.model_predictions.replace(version.id, {items[e].id: p for e, p in clean.items()})
        ctx.event(
            uow, actor, "model.predictions_uploaded", ("model_version", version.version),
            model=version.ref, n=n, n_eval=len(evals), dataset_version=dataset.id,
        )  # fmt: skip
    return {"model": version.ref, "version": version.version, "stored": n, "eval_items": len(evals)}


@dataclass(frozen=True, slots=True)
class GateOutcome:
    model: ModelVersion
    gate: GateResult
    promoted: bool
    manifests: tuple[Path, ...] = ()  # deployment manifests written after a promotion


def gate_version(ctx: Context, ref: int | str, actor: str = "system") -> GateOutcome:
    """The paired gate (McNemar, per slice, calibration) of a registered version against the
    champion on the eval split of the dataset it was trained on; promote it if it passes."""
    with ctx.store.unit_of_work() as uow:
        version = resolve(uow, ctx.project.id, ref)
        if version.kind != EXTERNAL:
            raise Conflict(f"model {version.ref} was trained here; its gate ran when it was trained")
        if version.status is not ModelStatus.CANDIDATE:
            raise Conflict(f"model {version.ref} is {version.status.value}: only a candidate is gated")
        dataset = _eval_dataset(uow, ctx, version)
        evals = [e for e in dataset.entries if e.split is Split.EVAL]
        items = uow.items.get_many([e.item_id for e in evals])
        mine = scores_of(ctx, uow, version, items)
        if missing := [i.external_id for i in items if i.id not in mine]:
            raise Invalid(
                f"model {version.ref} has no predictions for {len(missing)} of the {len(evals)} "
                f"evaluation items of dataset {dataset.id[:12]}: upload them first "
                f"(POST …/models/{version.version}/predictions)"
            )
        champion = uow.models.champion(ctx.project.id)
        theirs = {} if champion is None else scores_of(ctx, uow, champion, items)
        paired = [e for e in evals if e.item_id in theirs] if champion is not None else evals
        if champion is not None and not paired:
            champion = None  # it scored none of these items: judged on the baseline
            paired = evals
        result = _gate(ctx, paired, mine, theirs if champion else None)
        evidence = {
            **result.as_dict(),
            "champion_version": None if champion is None else champion.version,
            "dataset_version": dataset.id,
            "unpaired_eval_items": len(evals) - len(paired),
        }
        version = uow.models.set_gate(version.id, evidence)
        ctx.event(
            uow, actor, "model.gated", ("model_version", version.version), model=version.ref, **evidence
        )
        if result.passed:
            version = retrain.promote_in(ctx, uow, version, actor)
        else:
            version = uow.models.set_status(version.id, ModelStatus.REJECTED)
    return GateOutcome(version, result, result.passed)


def _gate(
    ctx: Context,
    evals: Sequence[Any],
    mine: Mapping[int, Mapping[str, float]],
    theirs: Mapping[int, Mapping[str, float]] | None,
) -> GateResult:
    labels = ctx.labels
    y = [e.label for e in evals]

    def top(rows: Mapping[int, Mapping[str, float]]) -> tuple[list[str], list[float]]:
        proba = np.asarray([[rows[e.item_id][label] for label in labels] for e in evals], dtype=np.float64)
        if not len(proba):
            return [], []
        return [labels[j] for j in proba.argmax(axis=1)], proba.max(axis=1).tolist()

    def ece(conf: list[float], pred: list[str]) -> float:
        return round(expected_calibration_error(conf, np.asarray(pred) == np.asarray(y)), 6)

    new_pred, new_conf = top(mine)
    old_pred = ece_pair = None
    if theirs is not None and evals:
        old_pred, old_conf = top(theirs)
        ece_pair = (ece(new_conf, new_pred), ece(old_conf, old_pred))
    cfg = ctx.config.gate
    return gate(
        y, new_pred, old_pred, cfg.rule, cfg.alpha, cfg.min_eval_items,
        slices={"class": y, "source": [e.source for e in evals]},
        ece=ece_pair, max_ece_increase=cfg.max_ece_increase,
    )  # fmt: skip


def eval_split(ctx: Context, ref: str, with_labels: bool = False) -> dict[str, Any]:
    """The frozen evaluation split of dataset ``ref`` for a pipeline: ids and payloads (and the
    eval items' own labels when asked), embeddings where the records carried them."""
    with ctx.store.unit_of_work() as uow:
        dataset = datasets.resolve(uow, ctx.project.id, ref)
        evals = [e for e in dataset.entries if e.split is Split.EVAL]
        items = {i.id: i for i in uow.items.get_many([e.item_id for e in evals])}
        vectors = uow.embeddings.get_many([e.item_id for e in evals])
    rows = []
    for e in evals:
        row: dict[str, Any] = {
            "external_id": items[e.item_id].external_id,
            "payload": items[e.item_id].payload,
        }
        if with_labels:
            row["label"] = e.label
        if e.item_id in vectors:
            row["embedding"] = vectors[e.item_id]
        rows.append(row)
    return {"dataset_version": dataset.id, "labels": with_labels, "items": rows}
