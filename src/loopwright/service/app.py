"""``create_app``: the REST face over :class:`~loopwright.loop.Workspace`.

Handlers are thin: parse (Pydantic) → authorize (:mod:`loopwright.service.auth`) → call one
``Loop`` use case → serialise. Errors map to statuses in one table (:mod:`.errors`).
Nothing happens at import time; ``create_app`` opens the store, the app's shutdown closes it
when it was opened here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from loopwright.api import connect
from loopwright.errors import Invalid, NotFound
from loopwright.loop import Loop, Workspace
from loopwright.service import errors
from loopwright.service.auth import OPEN_PRINCIPAL, Action, Authenticator, Principal, SqlAuthenticator
from loopwright.service.errors import Unauthenticated
from loopwright.store.sql import SqlStore

# -- request bodies -------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemIn(_Body):
    external_id: str = Field(min_length=1)
    payload: dict[str, Any]
    metadata: dict[str, Any] | None = None


class IngestIn(_Body):
    items: list[ItemIn] = Field(min_length=1, max_length=10_000)


class NextTaskIn(_Body):
    tiers: list[int] | None = None
    session_id: str | None = None


class SubmitIn(_Body):
    label: str
    unsure: bool = False


class ExtendIn(_Body):
    seconds: int | None = Field(default=None, gt=0)


class FeedbackIn(_Body):
    prediction_id: int
    kind: str
    idempotency_key: str
    correction: str | None = None
    comment: str | None = None


# -- helpers --------------------------------------------------------------------------------


def _out(obj: Any, **extra: Any) -> Any:
    """JSON-ready form of a dataclass (or anything ``jsonable_encoder`` takes)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return jsonable_encoder({**{k: _out(v) for k, v in data.items()}, **extra})
    if isinstance(obj, list | tuple):
        return [_out(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _out(v) for k, v in obj.items()}
    return jsonable_encoder(obj)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def principal(request: Request) -> Principal:
    """The caller, from the bearer token (open mode: the admin ``local``)."""
    authenticator: Authenticator | None = request.app.state.authenticator
    if authenticator is None:
        return OPEN_PRINCIPAL
    token = _bearer(request)
    found = None if token is None else authenticator.resolve(token)
    if found is None:
        raise Unauthenticated("send 'Authorization: Bearer <token>' with a valid API token")
    return found


Caller = Annotated[Principal, Depends(principal)]


def create_app(
    workspace_or_db_url: Workspace | str,
    *,
    authenticator: Authenticator | None = None,
    open_access: bool = False,
    title: str = "loopwright",
) -> FastAPI:
    """The REST app on a workspace (or a database URL, opened and migrated here).

    Callers authenticate with ``Authorization: Bearer <token>`` against ``authenticator``
    (default: the users and token hashes in the same SQL store). ``open_access=True`` turns
    authentication off: every caller is the admin ``local`` — for a laptop only.
    """
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
        yield
        if owned:
            ws.close()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.state.workspace = ws
    app.state.authenticator = authenticator
    errors.install(app)

    def project(name: str, who: Principal, action: Action) -> Loop:
        who.require(name, action)  # non-members: NotFound before any lookup
        return ws.project(name)

    def lease_project(lease_id: int, who: Principal) -> Loop:
        with ws.store.unit_of_work() as uow:
            lease = uow.leases.get(lease_id)
            proj = uow.projects.get_by_id(uow.tasks.get(lease.task_id).project_id)
        if not who.is_member(proj.name):
            raise NotFound(f"lease id {lease_id} does not exist")
        who.require(proj.name, Action.REVIEW)
        return Loop(ws.store, proj, ws.clock)

    # -- projects ---------------------------------------------------------------------------

    @app.get("/v1/projects", tags=["projects"])
    def list_projects(who: Caller) -> dict[str, Any]:
        rows = [p for p in ws.projects() if who.is_member(p.name)]
        return {"projects": [{"id": p.id, "name": p.name} for p in rows]}

    @app.get("/v1/projects/{name}", tags=["projects"])
    def get_project(name: str, who: Caller) -> Any:
        status = project(name, who, Action.READ).status()
        return _out(status, automation_rate=status.automation_rate)

    @app.post("/v1/projects/{name}/items", tags=["projects"])
    def ingest_items(name: str, body: IngestIn, who: Caller) -> Any:
        loop = project(name, who, Action.INGEST)
        records = [item.model_dump(exclude_none=True) for item in body.items]
        return _out(loop.ingest(records, actor=who.name))

    @app.post("/v1/projects/{name}/feedback", tags=["projects"])
    def feedback(name: str, body: FeedbackIn, who: Caller) -> Any:
        loop = project(name, who, Action.FEEDBACK)
        return _out(
            loop.feedback(
                body.prediction_id,
                body.kind,
                body.idempotency_key,
                body.correction,
                body.comment,
                actor=who.name,
            )
        )

    @app.get("/v1/projects/{name}/events", tags=["projects"])
    def events(
        name: str,
        who: Caller,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        rows = project(name, who, Action.EVENTS).events(after, limit)
        return {"events": _out(rows), "next_after": rows[-1].id if rows else after}

    # -- review -----------------------------------------------------------------------------

    @app.post(
        "/v1/projects/{name}/tasks/next",
        tags=["review"],
        responses={204: {"description": "no task for the caller right now"}},
    )
    def next_task(name: str, who: Caller, body: NextTaskIn | None = None) -> Any:
        body = body or NextTaskIn()
        tiers = who.review_tiers(name, body.tiers)
        loop = ws.project(name)
        known = {t.tier for t in loop.config.tiers}
        unknown = sorted(set(tiers or ()) - known)
        if unknown:
            raise Invalid(f"unknown tiers {unknown}", [("tiers", f"project tiers are {sorted(known)}")])
        assignment = loop.next_task(who.name, tiers, body.session_id)
        if assignment is None:
            return Response(status_code=204)
        return _out(assignment)

    @app.post("/v1/leases/{lease_id}/submit", tags=["review"])
    def submit(lease_id: int, body: SubmitIn, who: Caller) -> Any:
        return _out(lease_project(lease_id, who).submit(lease_id, who.name, body.label, body.unsure))

    @app.post("/v1/leases/{lease_id}/extend", tags=["review"])
    def extend(lease_id: int, who: Caller, body: ExtendIn | None = None) -> Any:
        seconds = None if body is None else body.seconds
        return _out(lease_project(lease_id, who).extend(lease_id, who.name, seconds))

    @app.post("/v1/leases/{lease_id}/release", tags=["review"])
    def release(lease_id: int, who: Caller) -> Any:
        return _out(lease_project(lease_id, who).release(lease_id, who.name))

    @app.post("/v1/leases/{lease_id}/skip", tags=["review"])
    def skip(lease_id: int, who: Caller) -> Any:
        return _out(lease_project(lease_id, who).skip(lease_id, who.name))

    return app


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
