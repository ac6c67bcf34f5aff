"""The PostgreSQL job adapter: procrastinate queues, locks and runs the jobs.

Why procrastinate: it needs nothing but the PostgreSQL we already run (no broker, unlike
dramatiq with Redis/RabbitMQ), it has per-job ``lock`` (one retrain per project at a time) and
``queueing_lock`` (no second queued retrain), retry strategies, cancellation with abort, worker
heartbeats and a stalled-jobs API, it uses psycopg 3 like our store, and it is well kept
(3.x, 2026). pgqueuer is also PostgreSQL-only but has no per-key locks, so we would re-build them.

The job record the API shows (status, progress, logs, result, error) stays in our ``jobs``
table, the same shape as the embedded adapter; procrastinate's own tables hold its queue. Its
schema is applied on first use, in the store's PostgreSQL schema (the URL's ``search_path``).
A worker killed with SIGKILL stops heartbeating; the other workers find its job stalled after
``stalled_after`` seconds and queue it again (or fail it when its attempts are spent).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text

from loopwright.loop import jobs as use_case
from loopwright.loop.loop import Workspace
from loopwright.loop.ports import Job
from loopwright.store.sql.jobs import SqlJobs, pool_scorer

log = logging.getLogger(__name__)
TASK = "loopwright.run_job"
_SCHEMA_LOCK = 0x6C77_7072  # pg advisory lock: one process applies procrastinate's schema


class ProcrastinateJobs:
    """The :class:`~loopwright.loop.ports.Jobs` port on procrastinate."""

    def __init__(
        self, engine: Engine, max_attempts: int = 3, heartbeat_s: float = 2.0, stalled_after: float = 10.0
    ) -> None:
        self.records = SqlJobs(engine, max_attempts=max_attempts)
        self.engine = engine
        self.heartbeat_s, self.stalled_after = heartbeat_s, stalled_after
        self._app: Any = None
        self._lock = threading.Lock()

    # -- the port ------------------------------------------------------------------------------

    def enqueue(
        self,
        project: str,
        kind: str,
        params: Mapping[str, Any] | None = None,
        actor: str = "system",
        trigger: str | None = None,
    ) -> Job:
        import procrastinate.exceptions

        job = self.records.enqueue(project, kind, params, actor, trigger)
        if self.records.engine_id(job.id) is not None:  # a queued twin: procrastinate has it
            return job
        lock = use_case.lock_key(project, kind)
        queueing_lock = f"{kind}:{project}" if use_case.dedupes(kind) else None
        task = self.app().configure_task(name=TASK, lock=lock, queueing_lock=queueing_lock)
        try:
            engine_id = task.defer(job_id=job.id)
        except procrastinate.exceptions.AlreadyEnqueued:  # another process queued it meanwhile
            self.records.cancel(job.id)
            return self.records.active(project, kind) or self.records.get(job.id)
        self.records.set_engine_id(job.id, engine_id)
        return self.records.get(job.id)

    def get(self, job_id: int) -> Job:
        return self.records.get(job_id)

    def list(self, project: str | None = None, status: str | None = None, limit: int = 100) -> list[Job]:
        return self.records.list(project, status, limit)

    def active(self, project: str, kind: str) -> Job | None:
        return self.records.active(project, kind)

    def cancel(self, job_id: int) -> Job:
        job = self.records.cancel(job_id)
        engine_id = self.records.engine_id(job_id)
        if engine_id is not None:
            self.app().job_manager.cancel_job_by_id(engine_id, abort=True)
        return job

    # -- procrastinate -------------------------------------------------------------------------

    def app(self) -> Any:
        """The procrastinate app, opened for synchronous use, its schema applied if missing."""
        with self._lock:
            if self._app is None:
                app = self._build()
                app.open()
                self._ensure_schema(app)
                self._app = app
            return self._app

    def _build(self) -> Any:
        import procrastinate

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    def _ensure_schema(self, app: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
                conn.execute(text(app.schema_manager.get_schema()))

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None

    def run_worker(self, ws: Workspace, concurrency: int = 1) -> None:
        """Run a procrastinate worker (and a stalled-job sweeper) until interrupted."""
        self.app()  # the schema, applied once
        asyncio.run(self._work(ws, concurrency))

    async def _work(self, ws: Workspace, concurrency: int) -> None:
        app = self._build()
        self._register(app, ws)
        async with app.open_async():
            sweeper = asyncio.create_task(self._sweep(app))
            try:
                await app.run_worker_async(
                    concurrency=concurrency,
                    update_heartbeat_interval=self.heartbeat_s,
                    stalled_worker_timeout=self.stalled_after,
                    install_signal_handlers=True,
                )
            finally:
                sweeper.cancel()

    def _register(self, app: Any, ws: Workspace) -> None:
        import procrastinate

        records = self.records

        # our record counts attempts (stalled runs too) and decides; procrastinate retries on _Retry
        retry = procrastinate.RetryStrategy(max_attempts=100, wait=1, retry_exceptions={_Retry})

        @app.task(name=TASK, pass_context=True, retry=retry)
        def run_job(context: Any, job_id: int) -> None:
            worker = (
                f"procrastinate:{socket.gethostname()}:{os.getpid()}:{context.worker_name}:{context.job.id}"
            )
            job = records.start(job_id, worker)
            if job is None:
                return  # cancelled, or done already
            reporter = _Reporter(records, job_id, worker, context)
            try:
                result = use_case.run(ws, job, reporter, pools=pool_scorer())
            except use_case.Cancelled:
                records.cancelled(job_id, worker)
            except Exception as exc:
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                log.warning("job %s failed: %s", job_id, message)
                retry = not use_case.permanent(exc) and job.attempts < job.max_attempts
                records.fail(job_id, worker, message, retry=retry)
                if retry:  # procrastinate's retry strategy runs it again; the record says queued
                    raise _Retry(message) from exc
                raise  # failed for good, in both records
            else:
                records.finish(job_id, worker, result)

    async def _sweep(self, app: Any) -> None:
        """Every few seconds: jobs whose worker stopped heartbeating are queued again."""
        from procrastinate.jobs import Status

        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
                for stuck in stalled:
                    job_id = int(stuck.task_kwargs["job_id"])
                    again = await asyncio.to_thread(self.records.lost, job_id)
                    if again:
                        await app.job_manager.retry_job(stuck)
                    else:
                        await app.job_manager.finish_job(stuck, status=Status.FAILED, delete_job=False)
            except Exception:
                log.exception("stalled-job sweep failed")


class _Retry(Exception):
    """A crashed attempt with attempts left: procrastinate runs the job again."""


class _Reporter:
    def __init__(self, records: SqlJobs, job_id: int, worker: str, context: Any) -> None:
        self.records, self.job_id, self.worker, self.context = records, job_id, worker, context

    def progress(self, fraction: float, line: str | None = None) -> None:
        job = self.records.heartbeat(self.job_id, self.worker, fraction, line)
        if job.cancel_requested or self.context.should_abort():
            raise use_case.Cancelled(f"job {self.job_id} was cancelled")
