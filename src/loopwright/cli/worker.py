"""``loopwright worker``: run background jobs on this machine against a shared database."""

from __future__ import annotations

from typing import Annotated

import typer

from loopwright.cli.options import DbOption


def worker_command(
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs run at once.")] = 1,
    lease: Annotated[
        float,
        typer.Option(min=1.0, help="Seconds a job's lease lasts without a heartbeat (the embedded engine)."),
    ] = 30.0,
    automation_every: Annotated[
        float | None,
        typer.Option(help="Also evaluate every project's triggers this often (seconds); off by default."),
    ] = None,
) -> None:
    """Run jobs until interrupted: procrastinate workers on PostgreSQL (when installed, the
    ``jobs`` extra), else threads claiming from the database's jobs table."""
    import logging

    from loopwright.api import connect
    from loopwright.store.sql.jobs import Automation, JobWorker, SqlJobs, jobs_for

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ws = connect(db)
    jobs = jobs_for(ws, lease_s=lease)
    timer = Automation(ws, jobs, automation_every) if automation_every else None
    if timer is not None:
        timer.start()
    try:
        if isinstance(jobs, SqlJobs):
            JobWorker(ws, jobs, concurrency=concurrency).run()
        else:
            jobs.run_worker(ws, concurrency=concurrency)
    finally:
        if timer is not None:
            timer.stop()
        ws.close()
