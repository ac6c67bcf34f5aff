"""What each background job runs: the same ``Loop`` use cases the API and the CLI call.

A job adapter (:class:`~loopwright.loop.ports.Jobs`) claims a job and calls :func:`run` with a
:class:`Reporter`; the use case's own writes are atomic (each is one transaction: a retrain's
model version, artifact and events commit together, after training), so a worker killed
mid-job leaves no half-written dataset or model and the job can simply run again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from loopwright.errors import Conflict, Invalid, LoopwrightError, NotFitted, NotFound
from loopwright.loop import retrain as _retrain
from loopwright.loop.loop import Loop, Workspace
from loopwright.loop.ports import JOB_KINDS, Job, PoolScorer

SELECT_STRATEGIES = ("margin", "entropy", "least-confidence", "kcenter")
# a select job's parameters: name -> (types, required)
SELECT_PARAMS: dict[str, tuple[tuple[type, ...], bool]] = {
    "pool": ((str,), True),
    "budget": ((int,), True),
    "strategy": ((str,), False),
    "features": ((list,), False),
    "id_column": ((str,), False),
    "rows_per_part": ((int,), False),
    "seed": ((int,), False),
    "single": ((bool,), False),
    "workers": ((int,), False),
    "scheduler": ((str,), False),
}
MAX_SELECT_BUDGET = 100_000  # the rows travel back in the job's result


class Cancelled(Conflict):
    """The job was cancelled while it ran; it stops at its next progress report."""

    code = "cancelled"


class Reporter(Protocol):
    def progress(self, fraction: float, line: str | None = None) -> None:
        """Record progress (0..1) and a log line; raise :class:`Cancelled` if asked to stop."""
        ...


def check_kind(kind: str, params: dict[str, Any]) -> None:
    """Invalid for an unknown kind or an export without its parameters (nothing is queued)."""
    if kind not in JOB_KINDS:
        raise Invalid(f"unknown job kind {kind!r}; one of {', '.join(JOB_KINDS)}")
    if kind == "export" and not (params.get("format") and params.get("path")):
        raise Invalid(
            "an export job needs params format (jsonl, csv, parquet, dvc, offsets, conll, coco, yolo) "
            "and path"
        )
    if kind == "select":
        check_select(params)


def check_select(params: Mapping[str, Any]) -> None:
    """Invalid, naming every problem, for a select job's parameters (nothing is queued)."""
    errors: list[tuple[str, str]] = []
    for name in sorted(set(params) - set(SELECT_PARAMS)):
        errors.append((name, f"unknown parameter; known: {', '.join(SELECT_PARAMS)}"))
    for name, (types, required) in SELECT_PARAMS.items():
        value = params.get(name)
        if value is None:
            if required:
                errors.append((name, "required"))
        elif (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            errors.append((name, f"must be {' or '.join(t.__name__ for t in types)}"))
    if errors:
        raise Invalid("a select job needs params pool (Parquet path or URL) and budget", errors)
    if not 1 <= params["budget"] <= MAX_SELECT_BUDGET:
        raise Invalid(f"budget must be 1..{MAX_SELECT_BUDGET}, got {params['budget']}")
    if params.get("strategy", "margin") not in SELECT_STRATEGIES:
        raise Invalid(f"unknown strategy {params['strategy']!r}: one of {', '.join(SELECT_STRATEGIES)}")
    features = params.get("features")
    if features is not None and not (features and all(isinstance(f, str) and f for f in features)):
        raise Invalid("features must be a non-empty list of column names")
    for name in ("rows_per_part", "workers"):
        if params.get(name) is not None and params[name] < 1:
            raise Invalid(f"{name} must be at least 1, got {params[name]}")


def dedupes(kind: str) -> bool:
    """Whether a second job of ``kind`` for a project, queued while one waits, is the same job
    (retrain, snapshot, …) or a job of its own (an export, a selection or gold from the audits,
    with its own params)."""
    return kind not in ("export", "select", "gold_from_audits")


def lock_key(project: str, kind: str) -> str:
    """Jobs sharing a key never run at once: one retrain (or snapshot) per project at a time."""
    family = "train" if kind in ("retrain", "snapshot") else kind
    return f"{family}:{project}"


def permanent(exc: BaseException) -> bool:
    """A domain error (bad state, bad input, gone project) fails the job at once: running it
    again would give the same answer. Anything else (a crash) is retried while attempts remain."""
    return isinstance(exc, LoopwrightError)


def run(ws: Workspace, job: Job, report: Reporter, pools: PoolScorer | None = None) -> dict[str, Any]:
    """Run ``job`` and return its result (JSON-ready); ``pools`` scores a ``select`` job's pool
    (the workers install it, so this layer never imports Dask)."""
    try:
        loop = ws.project(job.project)
    except NotFound:
        raise NotFound(f"project {job.project!r} no longer exists (deleted or erased)") from None
    report.progress(0.05, f"{job.kind} of {job.project} started (attempt {job.attempts})")
    if job.kind == "select":
        result = _select_job(loop, job, report, pools)
    else:
        result = _RUNNERS[job.kind](loop, job, report)
    report.progress(1.0, f"{job.kind} done")
    return result


def _retrain_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    if loop.config.model.lives_elsewhere:  # a pipeline trains it: tell it (model.retrain_due)
        told = _retrain.signal_due(loop._ctx, job.actor)
        return {"signalled": told is not None, "retrain_due": told}
    report.progress(0.1, "snapshot and training")
    out = loop.retrain(job.actor, job.params.get("dataset_id"))
    return {
        "dataset_version": out.dataset.id,
        "model_version": out.model.version,
        "promoted": out.promoted,
        "gate": out.gate.reason,
    }


def _snapshot_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    dataset = loop.snapshot(job.actor)
    return {"dataset_version": dataset.id, "n_items": dataset.n_items}


def _drift_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    check = loop.check_drift(job.actor)
    return {k: v for k, v in dataclasses.asdict(check).items() if _plain(v)}


def _certify_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    cert = loop.certify(job.actor)
    if cert is None:
        return {"certified": False}
    return {"certified": True, "threshold": cert.threshold, "upper_bound": cert.upper_bound}


def _backlog_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    report.progress(0.1, "scoring the untouched backlog with the champion")
    return loop.accept_backlog(job.actor).summary()


def _export_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    p = job.params
    written = loop.export_dataset(str(p.get("ref", "latest")), str(p["format"]), Path(str(p["path"])))
    return {"path": str(written)}


def _gold_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    report.progress(0.1, "scoring the audits with the champion")
    tiers, dry_run = job.params.get("tiers"), bool(job.params.get("dry_run", False))
    made = loop.gold_from_audits(tiers, dry_run, job.actor)
    return {
        "dry_run": dry_run,
        "tiers": list(made.tiers),
        "added": made.added,
        "items": [dataclasses.asdict(c) for c in made.candidates],
    }


def _select_job(loop: Loop, job: Job, report: Reporter, pools: PoolScorer | None) -> dict[str, Any]:
    """Score the pool with the project's champion (k-center: no model) and keep the answer."""
    if pools is None:
        raise Invalid(
            "this worker cannot score pools: install the cluster extra (pip install 'loopwright[cluster]')"
        )
    params = dict(job.params)
    check_select(params)
    params.setdefault("features", list(loop.config.features or []) or None)
    blob, version = None, None
    if params.get("strategy", "margin") != "kcenter":
        blob, version = _champion_artifact(loop)
    reported = [0.0]

    def progress(done: int, total: int) -> None:
        fraction = done / max(total, 1)
        line = None
        if done == total or fraction - reported[0] >= 0.1:  # a log line every tenth, not every part
            reported[0] = fraction
            line = f"{done}/{total} partitions scored"
        report.progress(0.1 + 0.85 * fraction, line)

    report.progress(0.1, f"scoring {params['pool']} ({params.get('strategy', 'margin')})")
    result = pools.select(params, blob, tuple(loop.config.model.trusted_types), progress)
    return {"model_version": version, **result}


def _champion_artifact(loop: Loop) -> tuple[bytes, int]:
    """The champion's stored artifact and version (a select job scores with it)."""
    with loop._ctx.store.unit_of_work() as uow:
        champion = uow.models.champion(loop.project.id)
        if champion is None:
            raise NotFitted(f"project {loop.project.name!r} has no champion model yet to score the pool")
        if champion.kind == "external":
            raise Invalid(
                f"champion {champion.ref} lives elsewhere: score the pool with loopwright select --model"
            )
        blob = uow.models.artifact(champion.id)
    if not blob:
        raise NotFitted(f"champion v{champion.version} has no stored artifact to score the pool with")
    return blob, champion.version


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


_RUNNERS = {
    "retrain": _retrain_job,
    "snapshot": _snapshot_job,
    "drift_check": _drift_job,
    "certify": _certify_job,
    "accept_backlog": _backlog_job,
    "export": _export_job,
    "gold_from_audits": _gold_job,
}
