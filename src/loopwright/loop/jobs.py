"""What each background job runs: the same ``Loop`` use cases the API and the CLI call.

A job adapter (:class:`~loopwright.loop.ports.Jobs`) claims a job and calls :func:`run` with a
:class:`Reporter`; the use case's own writes are atomic (each is one transaction: a retrain's
model version, artifact and events commit together, after training), so a worker killed
mid-job leaves no half-written dataset or model and the job can simply run again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

from loopwright.errors import Conflict, Invalid, LoopwrightError, NotFound
from loopwright.loop import retrain as _retrain
from loopwright.loop.loop import Loop, Workspace
from loopwright.loop.ports import JOB_KINDS, Job


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
        raise Invalid("an export job needs params format (jsonl, csv, parquet, dvc) and path")


def lock_key(project: str, kind: str) -> str:
    """Jobs sharing a key never run at once: one retrain (or snapshot) per project at a time."""
    family = "train" if kind in ("retrain", "snapshot") else kind
    return f"{family}:{project}"


def permanent(exc: BaseException) -> bool:
    """A domain error (bad state, bad input, gone project) fails the job at once: running it
    again would give the same answer. Anything else (a crash) is retried while attempts remain."""
    return isinstance(exc, LoopwrightError)


def run(ws: Workspace, job: Job, report: Reporter) -> dict[str, Any]:
    """Run ``job`` and return its result (JSON-ready)."""
    try:
        loop = ws.project(job.project)
    except NotFound:
        raise NotFound(f"project {job.project!r} no longer exists (deleted or erased)") from None
    report.progress(0.05, f"{job.kind} of {job.project} started (attempt {job.attempts})")
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


def _export_job(loop: Loop, job: Job, report: Reporter) -> dict[str, Any]:
    p = job.params
    written = loop.export_dataset(str(p.get("ref", "latest")), str(p["format"]), Path(str(p["path"])))
    return {"path": str(written)}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


_RUNNERS = {
    "retrain": _retrain_job,
    "snapshot": _snapshot_job,
    "drift_check": _drift_job,
    "certify": _certify_job,
    "export": _export_job,
}
