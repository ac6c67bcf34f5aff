"""The embedded job adapter: a ``jobs`` table and workers that claim from it.

Claims are one transaction each: ``BEGIN IMMEDIATE`` on SQLite (the engine begins every
transaction so), a transaction-scoped advisory lock on PostgreSQL. A claimed job holds a lease
that its worker's heartbeat extends; a job whose lease ran out (its worker was killed) is
queued again, or failed once ``max_attempts`` are spent. Jobs sharing a ``lock`` (one retrain
or snapshot per project) are never claimed while another of them runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from loopwright.errors import Conflict, NotFound
from loopwright.loop import jobs as use_case
from loopwright.loop.loop import Workspace
from loopwright.loop.ports import Job
from loopwright.store.sql.tables import jobs as t

log = logging.getLogger(__name__)
_CLAIM_LOCK = 0x6C77_6A62  # pg advisory lock key: claims take turns
MAX_LOG_LINES = 200
DEFAULT_LEASE_S = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        project=m["project"],
        kind=m["kind"],
        params=dict(m["params"] or {}),
        status=m["status"],
        progress=float(m["progress"]),
        logs=list(m["logs"] or []),
        result=m["result"],
        error=m["error"],
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        actor=m["actor"],
        trigger=m["trigger"],
        worker=m["worker"],
        cancel_requested=bool(m["cancel_requested"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100_000}"


class SqlJobs:
    """The :class:`~loopwright.loop.ports.Jobs` port on the store's own database, plus what
    workers need (claim, heartbeat, finish, fail)."""

    def __init__(self, engine: Engine, max_attempts: int = 3, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.lease_s = lease_s

    # -- the port ------------------------------------------------------------------------------

    def enqueue(
        self,
        project: str,
        kind: str,
        params: Mapping[str, Any] | None = None,
        actor: str = "system",
        trigger: str | None = None,
    ) -> Job:
        params = dict(params or {})
        use_case.check_kind(kind, params)
        with self.engine.begin() as conn:
            twin = (t.c.project == project) & (t.c.kind == kind) & (t.c.status == "queued")
            queued = self._first(conn, twin) if use_case.dedupes(kind) else None
            if queued is not None:
                return queued
            values = {
                "project": project,
                "kind": kind,
                "params": params,
                "status": "queued",
                "lock": use_case.lock_key(project, kind),
                "progress": 0.0,
                "logs": [],
                "attempts": 0,
                "max_attempts": self.max_attempts,
                "actor": actor,
                "trigger": trigger,
                "cancel_requested": False,
                "created_at": _now(),
            }
            job_id = conn.execute(insert(t).values(**values).returning(t.c.id)).scalar_one()
            return self._get(conn, job_id)

    def get(self, job_id: int) -> Job:
        with self.engine.connect() as conn:
            return self._get(conn, job_id)

    def list(self, project: str | None = None, status: str | None = None, limit: int = 100) -> list[Job]:
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if project is not None:
            query = query.where(t.c.project == project)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def active(self, project: str, kind: str) -> Job | None:
        with self.engine.connect() as conn:
            where = (t.c.project == project) & (t.c.kind == kind) & t.c.status.in_(("queued", "running"))
            return self._first(conn, where)

    def cancel(self, job_id: int) -> Job:
        """A queued job is cancelled at once; a running one at its next progress report."""
        with self.engine.begin() as conn:
            job = self._get(conn, job_id)
            if job.done:
                raise Conflict(f"job {job_id} is {job.status} already and cannot be cancelled")
            if job.status == "queued":
                self._set(
                    conn, job_id, status="cancelled", finished_at=_now(), line="cancelled before it ran"
                )
            else:
                self._set(conn, job_id, cancel_requested=True, line="cancel requested")
            return self._get(conn, job_id)

    # -- workers -------------------------------------------------------------------------------

    def claim(self, worker: str) -> Job | None:
        """The oldest queued job whose lock is free, now running under ``worker``'s lease; jobs
        whose lease ran out are first queued again (or failed when out of attempts)."""
        now = _now()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            self._expire(conn, now)
            busy = select(t.c.lock).where((t.c.status == "running") & t.c.lock.is_not(None))
            query = (
                select(t.c.id)
                .where((t.c.status == "queued") & (t.c.lock.is_(None) | t.c.lock.not_in(busy)))
                .order_by(t.c.id)
                .limit(1)
            )
            job_id = conn.execute(query).scalar()
            if job_id is None:
                return None
            conn.execute(
                update(t)
                .where(t.c.id == job_id)
                .values(
                    status="running",
                    attempts=t.c.attempts + 1,
                    worker=worker,
                    started_at=now,
                    lease_until=now + timedelta(seconds=self.lease_s),
                )
            )
            self._set(conn, job_id, line=f"claimed by {worker}")
            return self._get(conn, job_id)

    def heartbeat(
        self, job_id: int, worker: str, fraction: float | None = None, line: str | None = None
    ) -> Job:
        """Extend the lease (and record progress); the job as it stands."""
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"lease_until": _now() + timedelta(seconds=self.lease_s)}
            if fraction is not None:
                values["progress"] = max(0.0, min(1.0, fraction))
            mine = (t.c.id == job_id) & (t.c.worker == worker) & (t.c.status == "running")
            conn.execute(update(t).where(mine).values(**values))
            if line is not None:
                self._set(conn, job_id, line=line)
            return self._get(conn, job_id)

    def finish(self, job_id: int, worker: str, result: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            self._end(conn, job_id, worker, status="succeeded", result=result, progress=1.0, error=None)

    def fail(self, job_id: int, worker: str, error: str, retry: bool) -> None:
        """Failed for good, or queued again while attempts remain (``retry``)."""
        with self.engine.begin() as conn:
            job = self._get(conn, job_id)
            if job.worker != worker or job.status != "running":
                return  # taken over after its lease ran out: the new worker decides
            if retry and job.attempts < job.max_attempts:
                again = {"status": "queued", "worker": None, "lease_until": None}
                self._set(conn, job_id, error=error, line=f"attempt {job.attempts} failed: {error}", **again)
            else:
                self._end(conn, job_id, worker, status="failed", error=error)

    def cancelled(self, job_id: int, worker: str) -> None:
        with self.engine.begin() as conn:
            self._end(conn, job_id, worker, status="cancelled")

    # -- a job engine that runs the jobs itself (procrastinate) ---------------------------------

    def start(self, job_id: int, worker: str) -> Job | None:
        """Mark a queued job running under ``worker``; None when it was cancelled or is done."""
        with self.engine.begin() as conn:
            job = self._get(conn, job_id)
            if job.status != "queued":
                return None
            values = {
                "status": "running",
                "attempts": job.attempts + 1,
                "worker": worker,
                "started_at": _now(),
            }
            self._set(conn, job_id, line=f"started by {worker}", **values)
            return self._get(conn, job_id)

    def lost(self, job_id: int) -> bool:
        """Its worker stopped heartbeating: queued again (True) or failed when out of attempts."""
        with self.engine.begin() as conn:
            job = self._get(conn, job_id)
            if job.status != "running":
                return job.status == "queued"
            line = f"worker {job.worker} lost (no heartbeat) during attempt {job.attempts}"
            if job.attempts >= job.max_attempts:
                error = f"{line}; no attempts left"
                self._set(conn, job_id, status="failed", error=error, finished_at=_now(), line=error)
                return False
            self._set(conn, job_id, status="queued", worker=None, line=f"{line}; queued again")
            return True

    def set_engine_id(self, job_id: int, engine_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == job_id).values(engine_id=engine_id))

    def engine_id(self, job_id: int) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(t.c.engine_id).where(t.c.id == job_id)).scalar()
            return None if value is None else int(value)

    # -- helpers -------------------------------------------------------------------------------

    def _expire(self, conn: Connection, now: datetime) -> None:
        lost = conn.execute(select(t).where((t.c.status == "running") & (t.c.lease_until < now))).all()
        for row in lost:
            job = _job(row)
            line = f"worker {job.worker} lost (lease expired) during attempt {job.attempts}"
            if job.attempts >= job.max_attempts:
                error = f"{line}; no attempts left"
                self._set(conn, job.id, status="failed", error=error, finished_at=now, line=error)
            else:
                self._set(
                    conn, job.id, status="queued", worker=None, lease_until=None, line=f"{line}; queued again"
                )

    def _end(self, conn: Connection, job_id: int, worker: str, **values: Any) -> None:
        mine = (t.c.id == job_id) & (t.c.worker == worker) & (t.c.status == "running")
        status = values["status"]
        conn.execute(update(t).where(mine).values(finished_at=_now(), lease_until=None, **values))
        self._set(conn, job_id, line=status)

    def _set(self, conn: Connection, job_id: int, line: str | None = None, **values: Any) -> None:
        if line is not None:
            logs = conn.execute(select(t.c.logs).where(t.c.id == job_id)).scalar() or []
            stamp = _now().strftime("%H:%M:%S")
            values["logs"] = [*logs, f"{stamp} {line}"][-MAX_LOG_LINES:]
        if values:
            conn.execute(update(t).where(t.c.id == job_id).values(**values))

    def _get(self, conn: Connection, job_id: int) -> Job:
        row = conn.execute(select(t).where(t.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        return _job(row)

    def _first(self, conn: Connection, where: Any) -> Job | None:
        row = conn.execute(select(t).where(where).order_by(t.c.id).limit(1)).first()
        return None if row is None else _job(row)

    def count(self, status: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(t.c.status == status)).scalar_one())


class _Reporter:
    def __init__(self, jobs: SqlJobs, job: Job, worker: str) -> None:
        self.jobs, self.job_id, self.worker = jobs, job.id, worker

    def progress(self, fraction: float, line: str | None = None) -> None:
        job = self.jobs.heartbeat(self.job_id, self.worker, fraction, line)
        if job.worker != self.worker or job.status != "running":
            raise use_case.Cancelled(f"job {self.job_id} was taken over after its lease ran out")
        if job.cancel_requested:
            raise use_case.Cancelled(f"job {self.job_id} was cancelled")


def pool_scorer() -> Any:
    """What scores a ``select`` job's pool: Dask, or one process (:mod:`loopwright.integrations.
    dask_select`; Dask and pyarrow are imported only when a pool is scored)."""
    from loopwright.integrations.dask_select import DaskPools

    return DaskPools()


def run_claimed(ws: Workspace, jobs: SqlJobs, job: Job, worker: str) -> None:
    """Run one claimed job to its end, its lease kept alive by a heartbeat thread."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(jobs.lease_s / 3):
            try:
                jobs.heartbeat(job.id, worker)
            except Exception:  # the database blinked: the next beat tries again
                log.warning("heartbeat of job %s failed", job.id, exc_info=True)

    beater = threading.Thread(target=beat, name=f"loopwright-job-{job.id}-heartbeat", daemon=True)
    beater.start()
    try:
        result = use_case.run(ws, job, _Reporter(jobs, job, worker), pools=pool_scorer())
    except use_case.Cancelled:
        jobs.cancelled(job.id, worker)
    except Exception as exc:
        log.warning("job %s (%s of %s) failed: %s", job.id, job.kind, job.project, exc)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        jobs.fail(job.id, worker, message, retry=not use_case.permanent(exc))
    else:
        jobs.finish(job.id, worker, result)
    finally:
        stop.set()
        beater.join()


class JobWorker:
    """``concurrency`` threads claiming and running jobs until :meth:`stop` (or, with
    :meth:`run`, until interrupted)."""

    def __init__(
        self, ws: Workspace, jobs: SqlJobs, concurrency: int = 1, poll_s: float = 1.0, name: str | None = None
    ) -> None:
        self.ws, self.jobs, self.concurrency, self.poll_s = ws, jobs, concurrency, poll_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self, slot: int = 0) -> Job | None:
        """Claim and run one job; the job as it ended, or None when none was waiting."""
        worker = f"{self.name}/{slot}"
        job = self.jobs.claim(worker)
        if job is None:
            return None
        run_claimed(self.ws, self.jobs, job, worker)
        return self.jobs.get(job.id)

    def _loop(self, slot: int) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once(slot)
            except Exception:
                log.exception("job worker %s/%s", self.name, slot)
                ran = None
            if ran is None:
                self._stop.wait(self.poll_s)

    def start(self) -> None:
        for slot in range(self.concurrency):
            thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"loopwright-jobs-{slot}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; a job still running keeps its lease until it ends or the lease expires."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def run(self) -> None:
        self.start()
        try:
            while any(th.is_alive() for th in self._threads):
                self._stop.wait(0.5)
        except KeyboardInterrupt:
            self.stop()


class Automation:
    """A timer thread evaluating every project's triggers each ``interval_s`` seconds."""

    def __init__(self, ws: Workspace, jobs: Any, interval_s: float) -> None:
        self.ws, self.jobs, self.interval_s = ws, jobs, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        from loopwright.loop import automation

        while not self._stop.wait(self.interval_s):
            try:
                automation.evaluate(self.ws, self.jobs)
            except Exception:
                log.exception("automation pass failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="loopwright-automation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def jobs_for(ws: Workspace, lease_s: float = DEFAULT_LEASE_S) -> Any:
    """The job adapter for the workspace's database: procrastinate on PostgreSQL when it is
    installed (the ``jobs`` extra), else the jobs table with in-process workers."""
    from loopwright.store.sql.uow import SqlStore

    if not isinstance(ws.store, SqlStore):
        raise TypeError("background jobs need a SQL store")
    engine = ws.store.engine
    if engine.dialect.name == "postgresql":
        try:
            from loopwright.integrations.procrastinate_jobs import ProcrastinateJobs
        except ImportError:  # procrastinate not installed: the jobs table works on PostgreSQL too
            pass
        else:
            return ProcrastinateJobs(engine, heartbeat_s=max(0.5, lease_s / 5), stalled_after=lease_s)
    return SqlJobs(engine, lease_s=lease_s)
