"""What every route needs: the workspace, the caller, the project they may act on, JSON output."""

from __future__ import annotations

import dataclasses
import json
import time
import types
import typing
import weakref
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, cast

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
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
_FIELDS: dict[type, tuple[str, ...]] = {}  # a dataclass's field names, per type


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
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(obj))
    if names is not None:
        data = {k: to_json(getattr(obj, k)) for k in names}
        return {**data, **{k: to_json(v) for k, v in extra.items()}} if extra else data
    return jsonable_encoder(obj)


_Spec = dict[str, Any]  # field name -> None (as is), "time", ("model", spec) or ("list", spec)
_SPECS: dict[type[BaseModel], _Spec] = {}


def _spec(model: type[BaseModel]) -> _Spec:
    """What :func:`respond` keeps of ``model``: its fields, nested models' fields, datetimes."""
    found = _SPECS.get(model)
    if found is None:
        found = _SPECS[model] = {}
        for name, info in model.model_fields.items():
            found[name] = _kind(info.annotation)
    return found


def _kind(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list and args:
        inner = _kind(args[0])
        return ("list", inner[1]) if isinstance(inner, tuple) and inner[0] == "model" else None
    if len(args) == 1 and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _kind(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", _spec(annotation))
    return "time" if annotation is datetime else None


def _shape(spec: _Spec, data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key not in spec:
            continue  # as the response model drops it
        kind = spec[key]
        if kind is None or value is None:
            out[key] = value
        elif kind == "time":
            out[key] = value[:-6] + "Z" if isinstance(value, str) and value.endswith("+00:00") else value
        elif kind[0] == "list":
            out[key] = [_shape(kind[1], v) for v in value]
        else:
            out[key] = _shape(kind[1], value)
    return out


def respond(model: type[BaseModel], data: Any) -> Response:
    """``data`` (from :func:`to_json`, keys left out stay out) as FastAPI would send it for
    ``response_model=model, response_model_exclude_unset=True`` — only the model's fields,
    nested ones too, UTC datetimes with ``Z`` — encoded once, without validating it again
    (the hot review routes; ``tests/test_cycle_cost.py`` compares both)."""
    body = json.dumps(_shape(_spec(model), data), ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode(), media_type="application/json")


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


async def caller(request: Request) -> Principal:
    """:func:`principal` as a route dependency: a bearer token this process resolved within its
    cache time is answered on the event loop (no thread hop, no query); anything else goes
    through :func:`principal` in the thread pool."""
    authenticator = request.app.state.authenticator
    peek = getattr(authenticator, "cached", None)
    if peek is not None and (token := _bearer(request)) is not None and (found := peek(token)):
        return cast(Principal, found)
    return await run_in_threadpool(principal, request)


async def workspace(request: Request) -> Workspace:
    """The app's workspace (async: reading app state needs no thread)."""
    ws: Workspace = request.app.state.workspace
    return ws


Caller = Annotated[Principal, Depends(caller)]
Ws = Annotated[Workspace, Depends(workspace)]


_PROJECTS: weakref.WeakKeyDictionary[Workspace, dict[str | int, tuple[Project, float]]] = (
    weakref.WeakKeyDictionary()
)
CONFIG_TTL_SECONDS = 5.0  # an edited config (guidelines, tiers) reaches every process within this
_now = time.monotonic  # the TTL's clock (tests move it)


def cached_project(ws: Workspace, key: str | int) -> Project:
    """The project named (str) or numbered (int) ``key``, from this process's cache.

    A project's name and id never change; its config may be edited from the admin page
    (:mod:`loopwright.loop.config_edit`), so a cached row older than ``CONFIG_TTL_SECONDS`` is
    read again (one primary-key query per project per TTL) and, if its config changed, the
    project's use cases are rebuilt. Misses (NotFound) are not cached."""
    known = _PROJECTS.setdefault(ws, {})
    hit = known.get(key)
    now = _now()
    if hit is not None and now - hit[1] < CONFIG_TTL_SECONDS:
        return hit[0]
    with ws.store.unit_of_work() as uow:
        found = uow.projects.get(key) if isinstance(key, str) else uow.projects.get_by_id(key)
    if hit is not None and hit[0].config != found.config:
        _LOOPS.get(ws, {}).pop(found.id, None)
    known[found.name] = known[found.id] = (found, now)
    return found


def forget_project(ws: Workspace, proj: Project) -> None:
    """Drop this process's cached row and use cases of ``proj`` (after editing its config)."""
    known = _PROJECTS.get(ws, {})
    known.pop(proj.name, None)
    known.pop(proj.id, None)
    _LOOPS.get(ws, {}).pop(proj.id, None)


_LOOPS: weakref.WeakKeyDictionary[Workspace, dict[int, Loop]] = weakref.WeakKeyDictionary()


def open_project(ws: Workspace, key: str | int) -> Loop:
    """The use cases of project ``key`` (a name or an id), built once per process and again
    after an edit of its config (see :func:`cached_project`); the workspace's model cache is
    shared, so a request neither re-validates the config nor reloads the champion's artifact."""
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
