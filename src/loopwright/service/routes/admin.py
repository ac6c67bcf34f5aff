"""Running a project from the browser: create one from a form or pasted YAML (admins), upload a
CSV/JSONL file into it, edit its guidelines, tiers and leaderboard flag, and manage its people:
add a member with a role and tiers, issue a token (shown once) and revoke tokens (admins, and
the project's leads)."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query, Request
from pydantic import Field

from loopwright.errors import Invalid, NotFound
from loopwright.loop import config_edit
from loopwright.service.auth import Action, Principal, Role
from loopwright.service.deps import Body, Caller, Ws, forget_project, project, to_json
from loopwright.service.errors import Forbidden
from loopwright.service.openapi import ERRORS
from loopwright.store.sql import SqlStore
from loopwright.store.sql.users import SqlUserRepo

router = APIRouter(tags=["admin"], responses=ERRORS)
MAX_REJECTS_SHOWN = 200  # rejected rows echoed back to the page (the count covers all)
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@\-]+$")]


class NewProject(Body):
    """A project's configuration as pasted YAML (or TOML-free JSON in ``config``)."""

    yaml: str | None = Field(None, max_length=200_000)
    config: dict[str, Any] | None = None


class NewMember(Body):
    user: Name
    role: Role
    tiers: list[Annotated[int, Field(ge=1)]] | None = Field(None, description="annotators, experts: tiers")


class SettingsEdit(Body):
    """New guidelines, tiers or leaderboard flag, and the version they were edited from."""

    version: str = Field(min_length=1, max_length=64, description="the version GET .../settings gave")
    guidelines: str | None = Field(None, max_length=100_000)
    tiers: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=50)
    leaderboard: dict[str, Any] | None = None


def _store(ws: Any) -> SqlStore:
    if not isinstance(ws.store, SqlStore):  # pragma: no cover - the server always runs on SQL
        raise Invalid("people live in a SQL store")
    store: SqlStore = ws.store
    return store


def _forget(request: Request) -> None:
    """Memberships and tokens changed: the server's auth cache looks everyone up again."""
    forget = getattr(request.app.state.authenticator, "forget", None)
    if callable(forget):
        forget()


@router.post("/v1/admin/projects", status_code=201)
def create_project(body: NewProject, ws: Ws, who: Caller) -> Any:
    """Create a project from pasted YAML or a config object; field errors as for the CLI."""
    if not who.admin:
        raise Forbidden("only admins may create projects")
    if (body.yaml is None) == (body.config is None):
        raise Invalid("send the project as yaml (text) or config (an object), one of them")
    config = body.config
    if body.yaml is not None:
        try:
            config = yaml.safe_load(body.yaml)
        except yaml.YAMLError as exc:
            raise Invalid(f"the YAML does not parse: {exc}") from None
        if not isinstance(config, dict):
            raise Invalid("the YAML must hold a mapping at the top level (name: …, labels: …)")
    loop = ws.create_project(config or {})
    return {"id": loop.project.id, "name": loop.project.name, "config": loop.config.model_dump(mode="json")}


@router.post("/v1/projects/{name}/uploads")
async def upload(
    name: str,
    request: Request,
    ws: Ws,
    who: Caller,
    fmt: Annotated[str, Query(alias="format", pattern="^(csv|jsonl)$")] = "csv",
    id_col: Annotated[str, Query(min_length=1, max_length=200)] = "external_id",
) -> Any:
    """Import the request body (a CSV or JSONL file) into the project: good rows ingested,
    rows already in skipped, each bad row reported with its reason (leads and admins)."""
    from starlette.concurrency import run_in_threadpool

    loop = project(ws, name, who, Action.MANAGE)
    data = await request.body()
    if not data.strip():
        raise Invalid("the file is empty")
    return await run_in_threadpool(_import, loop, data, fmt, id_col, who.name)


def _import(loop: Any, data: bytes, fmt: str, id_col: str, actor: str) -> Any:
    from loopwright.readers import ColumnMap, read_rows

    rejected: list[dict[str, Any]] = []

    def on_reject(r: Any) -> None:
        if len(rejected) < MAX_REJECTS_SHOWN:
            rejected.append({"where": r.ref, "external_id": r.external_id, "reason": r.reason})

    fd, path = tempfile.mkstemp(suffix=f".{fmt}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        cmap = ColumnMap.for_project(loop.config, id_col=id_col)
        try:
            rows = read_rows(path, cmap, loop.config, fmt=fmt)
            summary = loop.import_rows(rows, on_reject, None, actor)
        except ModuleNotFoundError as exc:
            raise Invalid(
                f"the server cannot read {fmt} files: install loopwright[import] ({exc.name})"
            ) from None
    finally:
        os.unlink(path)
    return {
        "read": summary.read,
        "ingested": summary.ingested,
        "skipped": summary.skipped,
        "rejected": summary.rejected,
        "to_review": summary.to_review,
        "rejected_rows": rejected,
    }


def _members(ws: Any, name: str) -> list[dict[str, Any]]:
    with _store(ws).engine.begin() as conn:
        repo = SqlUserRepo(conn)
        accounts = repo.list()
        live: dict[str, list[int]] = {}
        for t in repo.tokens():
            if t.revoked_at is None:
                live.setdefault(t.user, []).append(t.id)
    out = []
    for account, _ in accounts:
        m = account.memberships.get(name)
        if m is None:
            continue
        tiers = None if m.tiers is None else list(m.tiers)
        out.append(
            {
                "user": account.user.name,
                "role": m.role,
                "tiers": tiers,
                "tokens": live.get(account.user.name, []),
            }
        )
    return out


@router.get("/v1/projects/{name}/members")
def list_members(name: str, ws: Ws, who: Caller) -> Any:
    """The project's people: role, tiers and the ids of their live tokens (never a token)."""
    project(ws, name, who, Action.MANAGE)
    return {"members": _members(ws, name)}


@router.post("/v1/projects/{name}/members", status_code=201)
def add_member(name: str, body: NewMember, request: Request, ws: Ws, who: Caller) -> Any:
    """Add a person (a new user if the name is new) with a role and, for reviewers, tiers."""
    loop = project(ws, name, who, Action.MANAGE)
    if body.tiers is not None:
        for t in body.tiers:
            loop.config.tier(t)  # Invalid naming the project's tiers
    with _store(ws).engine.begin() as conn:
        repo = SqlUserRepo(conn)
        try:
            existing = repo.get(body.user)
        except NotFound:
            existing = None
        if existing is None:
            repo.add(body.user)
        elif existing.admin and not who.admin:
            raise Forbidden(f"{body.user!r} is an admin: only admins may change admins")
        repo.add_membership(body.user, name, body.role.value, body.tiers)
    _forget(request)
    return {"user": body.user, "role": body.role.value, "tiers": body.tiers, "new_user": existing is None}


def _member_of(ws: Any, name: str, user: str, who: Principal) -> None:
    with _store(ws).engine.begin() as conn:
        account = SqlUserRepo(conn).get(user)
    found = {m["user"] for m in _members(ws, name)}
    if user not in found:
        raise NotFound(f"{user!r} is not a member of project {name!r}")
    if account.admin and not who.admin:
        raise Forbidden(f"{user!r} is an admin: only admins manage an admin's tokens")


@router.post("/v1/projects/{name}/members/{user}/tokens", status_code=201)
def issue_token(name: str, user: str, ws: Ws, who: Caller) -> Any:
    """A new API token for a member, shown this once (only its hash is kept)."""
    project(ws, name, who, Action.MANAGE)
    _member_of(ws, name, user, who)
    with _store(ws).engine.begin() as conn:
        repo = SqlUserRepo(conn)
        token = repo.issue_token(user)
        token_id = max(t.id for t in repo.tokens(user))
    return {"user": user, "id": token_id, "token": token}


@router.post("/v1/projects/{name}/members/{user}/tokens/{token_id}/revoke")
def revoke_token(name: str, user: str, token_id: int, request: Request, ws: Ws, who: Caller) -> Any:
    """Revoke one of a member's tokens; their web sessions end with it."""
    project(ws, name, who, Action.MANAGE)
    _member_of(ws, name, user, who)
    with _store(ws).engine.begin() as conn:
        repo = SqlUserRepo(conn)
        if token_id not in {t.id for t in repo.tokens(user)} or not repo.revoke_id(token_id):
            raise NotFound(f"{user!r} has no live token with id {token_id}")
    _forget(request)
    return to_json({"user": user, "id": token_id, "revoked": True})


@router.get("/v1/projects/{name}/settings")
def get_settings(name: str, ws: Ws, who: Caller) -> Any:
    """The editable settings (guidelines, tiers, leaderboard) and their version (leads, admins)."""
    project(ws, name, who, Action.MANAGE)
    with ws.store.unit_of_work() as uow:
        row = uow.projects.get(name)  # fresh, not the cached row: the form edits what is stored
    return config_edit.settings(row)


@router.put("/v1/projects/{name}/settings")
def edit_settings(name: str, body: SettingsEdit, ws: Ws, who: Caller) -> Any:
    """Save edited settings; 409 if someone saved since ``version``. This process uses them at
    once, other API processes within ``CONFIG_TTL_SECONDS`` (5 s)."""
    project(ws, name, who, Action.MANAGE)
    changes = body.model_dump(exclude_none=True, exclude={"version"})
    if not changes:
        raise Invalid("nothing to change: send guidelines, tiers or leaderboard")
    row = config_edit.edit_settings(ws.store, name, body.version, changes, actor=who.name)
    forget_project(ws, row)
    return config_edit.settings(row)
