"""What every route needs: the workspace, the caller, the project they may act on, JSON output."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict

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


def to_json(obj: Any, **extra: Any) -> Any:
    """JSON-ready form of a dataclass (or anything ``jsonable_encoder`` takes)."""
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


def project(ws: Workspace, name: str, who: Principal, action: Action) -> Loop:
    """The project ``name`` if ``who`` may do ``action`` there (non-members: NotFound first)."""
    who.require(name, action)
    return ws.project(name)


def lease_project(ws: Workspace, lease_id: int, who: Principal) -> Loop:
    """The project of a lease, if ``who`` may review there (others: as if it did not exist)."""
    with ws.store.unit_of_work() as uow:
        lease = uow.leases.get(lease_id)
        proj = uow.projects.get_by_id(uow.tasks.get(lease.task_id).project_id)
    if not who.is_member(proj.name):
        raise NotFound(f"lease id {lease_id} does not exist")
    who.require(proj.name, Action.REVIEW)
    return Loop(ws.store, proj, ws.clock)
