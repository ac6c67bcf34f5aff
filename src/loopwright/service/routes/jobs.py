"""Background jobs: start one (retrain answers 202 in :mod:`.models`), look at it, cancel it;
and pause or resume a project's automation."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from loopwright import wire
from loopwright.errors import Invalid, NotFound
from loopwright.loop import automation
from loopwright.loop.jobs import MAX_SELECT_BUDGET
from loopwright.loop.ports import Job, Jobs
from loopwright.service.auth import Action, Principal
from loopwright.service.deps import Body, Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, Id

router = APIRouter(tags=["jobs"], responses=ERRORS)


def _jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.jobs
    return jobs


JobsDep = Annotated[Jobs, Depends(_jobs)]


def job_view(job: Job) -> Any:
    return to_json(job)


def accepted(job: Job, response: Response) -> Any:
    """A 202 body for a queued job, with its address in ``Location``."""
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_view(job)


def _visible(jobs: Jobs, job_id: int, who: Principal, action: Action) -> Job:
    """The job if ``who`` may do ``action`` on its project (non-members: as if it did not exist)."""
    job = jobs.get(job_id)
    if not who.is_member(job.project):
        raise NotFound(f"job {job_id} does not exist")
    who.require(job.project, action)
    return job


class JobIn(Body):
    kind: Literal["retrain", "snapshot", "drift_check", "certify", "accept_backlog"] = Field(
        description="what to run"
    )


class SelectIn(Body):
    pool: str = Field(
        min_length=1, max_length=2000, description="Parquet file or folder under LOOPWRIGHT_POOL_ROOTS"
    )
    budget: int = Field(ge=1, le=MAX_SELECT_BUDGET, description="how many rows to select")
    strategy: Literal["margin", "entropy", "least-confidence", "kcenter"] = "margin"
    features: list[str] | None = Field(None, min_length=1, description="feature columns, in model order")
    id_column: str | None = Field(None, description="column naming each row in the answer")
    rows_per_part: int = Field(250_000, ge=1_000, description="rows per partition (whole row groups)")
    seed: int = Field(0, description="seed of k-center's first pick")
    single: bool = Field(False, description="score in the worker's process, not on Dask")
    workers: int = Field(2, ge=1, le=64, description="LocalCluster worker processes (without a scheduler)")


class AutomationIn(Body):
    paused: bool = Field(description="true: the project's triggers start no jobs until resumed")


@router.post("/v1/projects/{name}/jobs", response_model=wire.Job, status_code=202)
def start_job(name: str, body: JobIn, ws: Ws, jobs: JobsDep, who: Caller, response: Response) -> Any:
    """Queue a job for the project (a queued job of the same kind is returned instead)."""
    loop = project(ws, name, who, Action.MANAGE)
    return accepted(jobs.enqueue(loop.project.name, body.kind, {}, who.name), response)


@router.post("/v1/projects/{name}/select", response_model=wire.Job, status_code=202)
def start_selection(
    name: str, body: SelectIn, ws: Ws, jobs: JobsDep, who: Caller, request: Request, response: Response
) -> Any:
    """Queue pool scoring: the rows to label next from a Parquet pool, scored with the champion
    by a worker (on the server's Dask scheduler, ``LOOPWRIGHT_DASK_SCHEDULER``, else a
    LocalCluster); the answer is the job's ``result.rows``. Only pools under the operator's
    ``LOOPWRIGHT_POOL_ROOTS`` may be read (422 otherwise)."""
    loop = project(ws, name, who, Action.MANAGE)
    params = body.model_dump(exclude_none=True)
    params["pool"] = pool_allowed(body.pool, request.app.state.pool_roots)
    scheduler = request.app.state.dask_scheduler
    if scheduler and not body.single:
        params["scheduler"] = scheduler
    return accepted(jobs.enqueue(loop.project.name, "select", params, who.name), response)


def pool_allowed(pool: str, roots: tuple[str, ...]) -> str:
    """``pool`` (a local path made absolute) when it lies under one of ``roots``; Invalid if not:
    a request must not make the server read whatever file it can."""
    if not roots:
        raise Invalid("this server reads no pools: its operator sets LOOPWRIGHT_POOL_ROOTS to allow some")
    if "://" in pool:
        climbs = "/../" in pool or pool.endswith("/..")
        if not climbs and any(pool.startswith(r.rstrip("/") + "/") for r in roots if "://" in r):
            return pool
    else:
        path = os.path.realpath(pool)
        for root in (r for r in roots if "://" not in r):
            base = os.path.realpath(root)
            if os.path.commonpath([path, base]) == base:
                return path
    raise Invalid(f"pool {pool!r} is not under the server's pool roots ({', '.join(roots)})")


@router.get("/v1/projects/{name}/jobs", response_model=wire.JobList)
def list_jobs(
    name: str,
    ws: Ws,
    jobs: JobsDep,
    who: Caller,
    status: Annotated[wire.JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The project's jobs, newest first."""
    loop = project(ws, name, who, Action.READ)
    return {"jobs": [job_view(j) for j in jobs.list(loop.project.name, status, limit)]}


@router.get("/v1/jobs/{job_id}", response_model=wire.Job)
def get_job(job_id: Id, jobs: JobsDep, who: Caller) -> Any:
    """Status, progress, logs, result and error of one job."""
    return job_view(_visible(jobs, job_id, who, Action.READ))


@router.post("/v1/jobs/{job_id}/cancel", response_model=wire.Job)
def cancel_job(job_id: Id, jobs: JobsDep, who: Caller) -> Any:
    """Cancel a queued job, or ask a running one to stop; a finished job answers 409."""
    _visible(jobs, job_id, who, Action.MANAGE)
    return job_view(jobs.cancel(job_id))


@router.post("/v1/projects/{name}/automation", response_model=wire.Automation)
def set_automation(name: str, body: AutomationIn, ws: Ws, who: Caller) -> Any:
    """Pause or resume the project's automation (an ``automation.paused``/``resumed`` event)."""
    loop = project(ws, name, who, Action.MANAGE)
    return {"project": name, "paused": automation.set_paused(loop, body.paused, who.name)}


@router.get("/v1/projects/{name}/automation", response_model=wire.Automation)
def get_automation(name: str, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.READ)
    return {"project": name, "paused": automation.is_paused(loop)}
