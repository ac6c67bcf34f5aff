"""``loopwright jobs list|show|cancel`` and ``loopwright automation pause|resume``: background
jobs and a project's automation, read and changed in the database (workers run the jobs)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopwright.cli.options import DbOption, JsonOption, ProjectOption

if TYPE_CHECKING:
    from loopwright.loop.ports import Job, Jobs

jobs_app = typer.Typer(help="Background jobs: list, show, cancel.", no_args_is_help=True)
automation_app = typer.Typer(help="Pause or resume a project's automation.", no_args_is_help=True)
JobId = Annotated[int, typer.Argument(help="The job's id.", min=1)]


def open_jobs(db: str | None) -> Jobs:
    """The job adapter of the database at ``db`` (procrastinate on PostgreSQL when installed)."""
    from loopwright.api import connect
    from loopwright.store.sql.jobs import jobs_for

    return jobs_for(connect(db))


def _json(job: Job) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(job)
    for key in ("created_at", "started_at", "finished_at"):
        data[key] = None if data[key] is None else data[key].isoformat()
    return data


def print_job(job: Job) -> None:
    print(json.dumps(_json(job), indent=2))


@jobs_app.command("list")
def list_jobs(
    db: DbOption = None,
    project: ProjectOption = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Jobs, newest first."""
    from rich.console import Console
    from rich.table import Table

    found = open_jobs(db).list(project, status, limit)
    if as_json:
        print(json.dumps([_json(j) for j in found], indent=2))
        return
    table = Table("id", "project", "kind", "status", "progress", "attempts", "trigger", "created")
    for j in found:
        table.add_row(
            str(j.id), j.project, j.kind, j.status, f"{j.progress:.0%}", f"{j.attempts}/{j.max_attempts}",
            j.trigger or "-", j.created_at.isoformat(timespec="seconds"),
        )  # fmt: skip
    Console().print(table)


@jobs_app.command("show")
def show(job_id: JobId, db: DbOption = None) -> None:
    """One job with its logs, result and error, as JSON."""
    print_job(open_jobs(db).get(job_id))


@jobs_app.command("cancel")
def cancel(job_id: JobId, db: DbOption = None) -> None:
    """Cancel a queued job, or ask a running one to stop (a finished job: an error)."""
    print_job(open_jobs(db).cancel(job_id))


def _set(db: str | None, project: str | None, paused: bool) -> None:
    from loopwright.cli.options import open_loop
    from loopwright.loop import automation

    loop = open_loop(db, project)
    automation.set_paused(loop, paused, "cli")
    print(json.dumps({"project": loop.project.name, "paused": paused}))


@automation_app.command("pause")
def pause(db: DbOption = None, project: ProjectOption = None) -> None:
    """Stop the project's triggers from starting jobs (an automation.paused event)."""
    _set(db, project, True)


@automation_app.command("resume")
def resume(db: DbOption = None, project: ProjectOption = None) -> None:
    """Let the project's triggers start jobs again (an automation.resumed event)."""
    _set(db, project, False)
