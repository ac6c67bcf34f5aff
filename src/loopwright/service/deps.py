"""What every route needs: the workspace, the caller, the project they may act on, JSON output."""

from __future__ import annotations

import dataclasses
import weakref
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict

from loopwright.domain import Project
from loopwright.errors import NotFound
from loopwright.loop import Loop, Workspace
from loopwright.service.auth import OPEN_PRINCIPAL, Action, Authenticator, Principal
from loopwright.service.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "loopwright_session"  # the web UI's session (loopwright.service.ui)
CSRF_HEADER = "X-Requested-With"  # what a cookie-authenticated change must send (any value)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Body(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_json(obj: Any, **extra: Any) -> Any:
    """JSON-ready form of a dataclass (or anything ``jsonable_encoder`` takes).

    Plain values, enums and datetimes are converted here as ``jsonable_encoder`` would (its
    generic path costs more than the rest of a review request's Python)."""
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if isinstance(obj, Enum):
        return to_json(obj.value)
    if kind is datetime:
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return jsonable_encoder({**{k: to_json(v) for k, v in data.items()}, **extra})
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    return jsonable_encoder(obj)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def principal(request: Request) -> Principal:
    """The caller, from the bearer token or else the UI's session cookie (open mode: the admin
    ``local``).

    A cookie is sent by the browser on its own, so a cookie-authenticated request that changes
    state must also carry ``X-Requested-With``: a custom header that another site's form or
    script cannot add to a request here without a CORS preflight, which this app never grants
    (defence in depth beside the cookie's ``SameSite=Strict``)."""
    authenticator: Authenticator | None = request.app.state.authenticator
    if authenticator is None:
        return OPEN_PRINCIPAL
    token = _bearer(request)
    session = request.cookies.get(SESSION_COOKIE)
    found = None
    if token is not None:
        found = authenticator.resolve(token)
    elif session:
        if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
            raise Forbidden(
                f"a request with the session cookie that changes state needs a {CSRF_HEADER} header"
            )
        found = authenticator.resolve_session(session)
    if found is None:
        raise Unauthenticated("send 'Authorization: Bearer <token>' with a valid API token")
    return found


def workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


Caller = Annotated[Principal, Depends(principal)]
Ws = Annotated[Workspace, Depends(workspace)]


_PROJECTS: weakref.WeakKeyDictionary[Workspace, dict[str | int, Project]] = weakref.WeakKeyDictionary()


def cached_project(ws: Workspace, key: str | int) -> Project:
    """The project named (str) or numbered (int) ``key``, from this process's cache.

    A project row never changes once created (its config is fixed; there is no rename or
    delete), so a cached row is never stale; misses (NotFound) are not cached."""
    known = _PROJECTS.setdefault(ws, {})
    found = known.get(key)
    if found is None:
        with ws.store.unit_of_work() as uow:
            found = uow.projects.get(key) if isinstance(key, str) else uow.projects.get_by_id(key)
        known[found.name] = known[found.id] = found
    return found


_LOOPS: weakref.WeakKeyDictionary[Workspace, dict[int, Loop]] = weakref.WeakKeyDictionary()


def open_project(ws: Workspace, key: str | int) -> Loop:
    """The use cases of project ``key`` (a name or an id), built once per process: the row and
    its validated config never change, and the workspace's model cache is shared, so a request
    neither re-validates the config nor reloads the champion's artifact."""
    proj = cached_project(ws, key)
    loops = _LOOPS.setdefault(ws, {})
    found = loops.get(proj.id)
    if found is None:
        found = loops[proj.id] = Loop(ws.store, proj, ws.clock, ws.scorers, ws.chat, ws.models)
    return found


def project(ws: Workspace, name: str, who: Principal, action: Action) -> Loop:
    """The project ``name`` if ``who`` may do ``action`` there (non-members: NotFound first)."""
    who.require(name, action)
    return open_project(ws, name)


_LEASES: weakref.WeakKeyDictionary[Workspace, dict[int, int]] = weakref.WeakKeyDictionary()
LEASE_CACHE_SIZE = 100_000  # lease id -> project id pairs kept per process (emptied when full)


def remember_lease(ws: Workspace, lease_id: int, project_id: int) -> None:
    """Note a lease handed out here, so its submit finds the project without a query (a lease
    never changes project, so the note is never stale)."""
    known = _LEASES.setdefault(ws, {})
    if len(known) >= LEASE_CACHE_SIZE:
        known.clear()
    known[lease_id] = project_id


def lease_project(ws: Workspace, lease_id: int, who: Principal) -> Loop:
    """The project of a lease, if ``who`` may review there (others: as if it did not exist).

    Leases handed out by this process are known without a query; others (a lease claimed
    through another server process) cost one transaction."""
    project_id = _LEASES.get(ws, {}).get(lease_id)
    if project_id is None:
        with ws.store.unit_of_work() as uow:
            project_id = uow.tasks.get(uow.leases.get(lease_id).task_id).project_id
        remember_lease(ws, lease_id, project_id)
    proj = cached_project(ws, project_id)
    if not who.is_member(proj.name):
        raise NotFound(f"lease id {lease_id} does not exist")
    who.require(proj.name, Action.REVIEW)
    return open_project(ws, proj.id)
