"""``create_app``: the REST face over :class:`~loopwright.loop.Workspace`.

Handlers are thin: parse (Pydantic) → authorize (:mod:`loopwright.service.auth`) → call one
``Loop`` use case → serialise. Errors map to statuses in one table (:mod:`.errors`).
Nothing happens at import time; ``create_app`` opens the store, the app's shutdown closes it
when it was opened here.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import import_module
from typing import Any

from fastapi import FastAPI

from loopwright.api import connect
from loopwright.learning.image_features import install_reader
from loopwright.loop import Workspace
from loopwright.loop.ports import Jobs
from loopwright.service import errors, metrics, ui
from loopwright.service.auth import Authenticator, SqlAuthenticator
from loopwright.service.egress import EgressPolicy
from loopwright.service.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit, NoNul
from loopwright.service.media_fetch import http_reader
from loopwright.service.reads import ReadsNeverWait
from loopwright.service.routes import ROUTERS
from loopwright.service.sweeper import LeaseSweeper
from loopwright.service.webhooks import Dispatcher
from loopwright.settings import Settings
from loopwright.store.sql import SqlStore
from loopwright.store.sql.jobs import Automation, JobWorker, SqlJobs, jobs_for


def create_app(
    workspace_or_db_url: Workspace | str,
    *,
    authenticator: Authenticator | None = None,
    open_access: bool = False,
    public_metrics: bool = False,
    webhooks: bool = True,
    webhook_allow: Sequence[str] = (),
    webhook_timeout: float = 10.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    title: str = "loopwright",
    jobs: Jobs | None = None,
    job_threads: int = 1,
    automation_every: float | None = None,
    broker_url: str | None = None,
    pool_roots: Sequence[str] = (),
    dask_scheduler: str | None = None,
) -> FastAPI:
    """The REST app on a workspace (or a database URL, opened and migrated here).

    Callers authenticate with ``Authorization: Bearer <token>`` against ``authenticator``
    (default: the users and token hashes in the same SQL store). ``open_access=True`` turns
    authentication off: every caller is the admin ``local`` — for a laptop only.
    ``webhooks=True`` runs a webhook :class:`~loopwright.service.webhooks.Dispatcher` in a
    background thread from startup to shutdown (on a SQL store). Webhooks go to public addresses
    only, plus the host names and CIDR ranges in ``webhook_allow``; each attempt ends after
    ``webhook_timeout`` seconds. A request body over ``max_body_bytes`` gets 413, and GET/HEAD
    requests read without waiting for writers (:mod:`.reads`).

    Background jobs go to ``jobs`` (default on a SQL store: its ``jobs`` table), run by
    ``job_threads`` worker threads in this process (0: by ``loopwright worker`` elsewhere);
    with ``automation_every`` seconds, each project's triggers are evaluated that often.
    ``broker_url`` (``nats://…``) runs a :class:`~loopwright.integrations.broker.NatsPublisher`:
    every event to JetStream (a broker that is down is logged; its events wait in the outbox).
    ``POST …/select`` reads pools only under ``pool_roots`` (paths or URL prefixes); its jobs
    score on ``dask_scheduler`` (``tcp://…``) when given, else on a LocalCluster per job.
    """
    policy = EgressPolicy.parse(webhook_allow)  # a bad entry fails here, not at the first subscription
    webhook_allow = tuple(webhook_allow)
    install_reader(("http", "https"), http_reader(policy))  # images by URL: public addresses only
    owned = isinstance(workspace_or_db_url, str)
    ws = connect(workspace_or_db_url) if isinstance(workspace_or_db_url, str) else workspace_or_db_url
    if open_access:
        authenticator = None
    elif authenticator is None:
        if not isinstance(ws.store, SqlStore):
            raise TypeError("pass an authenticator (or open_access=True) for a store that is not SQL")
        authenticator = SqlAuthenticator(ws.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dispatcher = (
            Dispatcher(ws.store, ws.clock, allow=webhook_allow, timeout=webhook_timeout)
            if webhooks and isinstance(ws.store, SqlStore)
            else None
        )
        app.state.dispatcher = dispatcher
        if dispatcher is not None:
            dispatcher.start()
        publisher = _publisher(ws, broker_url)
        app.state.publisher = publisher
        if publisher is not None:
            publisher.start()
        sweeper = LeaseSweeper(ws.store, ws.clock)  # stale leases expire on a timer, not per claim
        app.state.sweeper = sweeper
        sweeper.start()
        threading.Thread(target=warm_up, name="loopwright-warm-up", daemon=True).start()
        background = _background(ws, app.state.jobs, job_threads, automation_every)
        for part in background:
            part.start()
        yield
        for part in background:
            part.stop()
        if callable(close_jobs := getattr(app.state.jobs, "close", None)):
            close_jobs()  # the job engine's connection pool (procrastinate)
        sweeper.stop()
        if publisher is not None:
            publisher.stop()
        if dispatcher is not None:
            dispatcher.stop()
        if owned:
            ws.close()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.state.workspace = ws
    app.state.authenticator = authenticator
    app.state.webhook_allow = webhook_allow
    app.state.pool_roots, app.state.dask_scheduler = tuple(pool_roots), dask_scheduler
    if jobs is None and isinstance(ws.store, SqlStore):
        jobs = jobs_for(ws)  # SQLite: a jobs table, workers in this process; PostgreSQL: procrastinate
    app.state.jobs = jobs
    errors.install(app)
    metrics.install(app, public=public_metrics)  # GET /metrics; public: no token needed
    app.add_middleware(ReadsNeverWait)
    app.add_middleware(NoNul)  # 422: PostgreSQL cannot store U+0000
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # outermost: counts before anything reads

    for router in ROUTERS:
        app.include_router(router)
    app.include_router(ui.router)
    app.mount("/ui/static", ui.static_files, name="ui-static")
    return app


# What scoring, resolving and retraining import on first use; warmed after start-up (so a worker
# answers uvicorn's health check first) rather than inside the first request that needs them.
WARM_MODULES = (
    "loopwright.learning.artifact",  # skops, scikit-learn
    "loopwright.learning.estimators",
    "scipy.sparse",  # consensus
    "scipy.stats",  # certification, gate, drift
    "sklearn.isotonic",  # calibration
)


def warm_up() -> None:
    """Import :data:`WARM_MODULES` (in a background thread, once the app has started); then,
    once per process, move what is loaded so far out of the cyclic collector's reach
    (``gc.freeze``): each full collection would otherwise rescan those ~250k long-lived objects
    (modules, the app), a fifth of a 1,000-item ingest's CPU (``bench/results/ingest.md``)."""
    for name in WARM_MODULES:
        import_module(name)
    with _FROZEN_LOCK:
        if not _FROZEN:
            _FROZEN.append(True)
            gc.collect()
            gc.freeze()


_FROZEN: list[bool] = []  # the first app of a process froze its start-up objects
_FROZEN_LOCK = threading.Lock()


def _background(ws: Workspace, jobs: Jobs | None, threads: int, every: float | None) -> list[Any]:
    """The in-process job worker (on the SQL job table) and the automation timer, to start."""
    parts: list[Any] = []
    if isinstance(jobs, SqlJobs) and threads > 0:
        parts.append(JobWorker(ws, jobs, concurrency=threads))
    if jobs is not None and every:
        parts.append(Automation(ws, jobs, every))
    return parts


def _publisher(ws: Workspace, broker_url: str | None) -> Any:
    """The broker publisher to start (nats-py is imported only when a broker is configured)."""
    if not broker_url or not isinstance(ws.store, SqlStore):
        return None
    from loopwright.integrations.broker import NatsPublisher

    return NatsPublisher(ws.store, broker_url, clock=ws.clock)


def app_from_env() -> FastAPI:
    """The app each ``loopwright serve --workers N`` worker builds (uvicorn ``factory=True``):
    the database ``LOOPWRIGHT_DB_URL``, flags ``LOOPWRIGHT_SERVE_OPEN``/``_PUBLIC_METRICS``,
    webhook targets ``LOOPWRIGHT_WEBHOOK_ALLOW`` and ``LOOPWRIGHT_WEBHOOK_TIMEOUT``."""
    settings = Settings.from_env()
    return create_app(
        settings.db_url,
        open_access=settings.serve_open,
        public_metrics=settings.public_metrics,
        webhook_allow=settings.webhook_allow,
        webhook_timeout=settings.webhook_timeout,
        max_body_bytes=settings.max_body_bytes,
        broker_url=settings.broker_url,
        pool_roots=settings.pool_roots,
        dask_scheduler=settings.dask_scheduler,
    )


def serve(
    db_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    authenticator: Authenticator | None = None,
    open_access: bool = False,
    run: Callable[..., Any] | None = None,
) -> None:
    """Run the app with uvicorn (``run`` replaces ``uvicorn.run``, for tests)."""
    import uvicorn

    app = create_app(db_url, authenticator=authenticator, open_access=open_access)
    (run or uvicorn.run)(app, host=host, port=port)
