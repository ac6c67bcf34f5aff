"""``loopwright users …``: accounts of the REST service, their project roles and API tokens.

Tokens are printed once, when issued; only their SHA-256 is stored, so ``list`` and ``tokens``
never show one: they show token ids, which ``revoke --id`` takes. A token to revoke is best read
from standard input (``--token-stdin``), which keeps it out of the shell history and works for a
token that starts with ``-``; ``revoke -- TOKEN`` does too.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loopwright.cli.options import DbOption, JsonOption
from loopwright.errors import Invalid, NotFound

if TYPE_CHECKING:
    from loopwright.store.sql import SqlStore
    from loopwright.store.sql.users import Account, SqlUserRepo

users_app = typer.Typer(
    help="Users of the REST service: add, token, revoke, list, tokens.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)
ROLES = "lead, service, annotator, expert, viewer"  # loopwright.service.auth.Role


def _store(db: str | None) -> SqlStore:
    from loopwright.api import connect
    from loopwright.store.sql import SqlStore

    store = connect(db).store
    if not isinstance(store, SqlStore):  # pragma: no cover - connect always opens SQL
        raise Invalid("users live in a SQL store")
    return store


def _repo(conn: Any) -> SqlUserRepo:
    from loopwright.store.sql.users import SqlUserRepo  # SQLAlchemy: only when a command runs

    return SqlUserRepo(conn)


def _tiers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        tiers = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise Invalid(f"--tiers must be tier numbers separated by commas, not {text!r}") from None
    if not tiers:
        raise Invalid("--tiers names no tier")
    return tiers


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name.")],
    db: DbOption = None,
    admin: Annotated[bool, typer.Option("--admin", help="May do everything in every project.")] = False,
    project: Annotated[str | None, typer.Option("--project", help="Make the user a member here.")] = None,
    role: Annotated[str | None, typer.Option("--role", help=f"Role in --project: {ROLES}.")] = None,
    tiers: Annotated[
        str | None, typer.Option("--tiers", help="Annotators and experts: tiers, e.g. 1,2 (default: all).")
    ] = None,
) -> None:
    """Add a user, or a project membership to an existing user (with --project and --role)."""
    from loopwright.service.auth import Role  # the web stack loads only when needed

    if (project is None) != (role is None):
        raise Invalid("--project and --role go together")
    if role is not None and role not in {r.value for r in Role}:
        raise Invalid(f"unknown role {role!r}; roles: {ROLES}")
    if tiers is not None and role is None:
        raise Invalid("--tiers needs --project and --role")
    tier_list = _tiers(tiers)
    with _store(db).engine.begin() as conn:
        repo = _repo(conn)
        try:
            repo.get(name)
            exists = True
        except NotFound:
            exists = False
        if exists and (project is None or admin):
            raise Invalid(f"user {name!r} already exists (add a membership with --project and --role)")
        if not exists:
            repo.add(name, admin)
        if project is not None and role is not None:
            repo.add_membership(name, project, role, tier_list)
    what = "" if project is None else f" as {role} in {project}"
    what += "" if tier_list is None else f" (tiers {','.join(map(str, tier_list))})"
    out.print(f"{'updated' if exists else 'added'} user [bold]{name}[/]{' (admin)' if admin else ''}{what}")
    if not exists:
        out.print(f"issue a token with: loopwright users token {name}")


@users_app.command("token")
def token(name: Annotated[str, typer.Argument(help="User name.")], db: DbOption = None) -> None:
    """Issue a new API token for a user and print it (once: only its hash is kept)."""
    with _store(db).engine.begin() as conn:
        issued = _repo(conn).issue_token(name)
    err.print(f"new token for {name} (shown once; send it as 'Authorization: Bearer <token>'):")
    print(issued)


@users_app.command("revoke")
def revoke(
    token: Annotated[
        str | None, typer.Argument(help="The token to revoke (one starting with '-': put '--' before it).")
    ] = None,
    db: DbOption = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from standard input.")
    ] = False,
    user: Annotated[str | None, typer.Option("--user", help="Revoke every token of this user.")] = None,
    token_id: Annotated[
        int | None, typer.Option("--id", help="Revoke the token with this id (see 'users tokens').")
    ] = None,
) -> None:
    """Revoke an API token: given, read from stdin, by its id, or all of a user's.

    Its web UI sessions end with it."""
    if token_stdin:
        if token is not None:
            raise Invalid("give the token or --token-stdin, not both")
        token = sys.stdin.readline().strip() or None
        if token is None:
            raise Invalid("--token-stdin read no token")
    chosen = [x for x in (token, user, token_id) if x is not None]
    if len(chosen) != 1:
        raise Invalid("name one of: TOKEN, --token-stdin, --user NAME, --id N")
    with _store(db).engine.begin() as conn:
        repo = _repo(conn)
        if user is not None:
            n = repo.revoke_user(user)
            out.print(f"revoked {n} token{'' if n == 1 else 's'} of {user}")
            return
        done = repo.revoke_id(token_id) if token_id is not None else repo.revoke_token(str(token))
    if not done:
        raise NotFound("no live token matches" + ("" if token_id is None else f" id {token_id}"))
    out.print("token revoked")


def _when(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


@users_app.command("tokens")
def tokens(
    name: Annotated[str | None, typer.Argument(help="User name (default: every user).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """API tokens by id: whose, created, last used, revoked (never the token: it is not stored)."""
    with _store(db).engine.begin() as conn:
        rows: list[dict[str, Any]] = [
            {
                "id": t.id,
                "user": t.user,
                "created_at": _when(t.created_at),
                "last_used_at": _when(t.last_used_at),
                "revoked_at": _when(t.revoked_at),
            }
            for t in _repo(conn).tokens(name)
        ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no tokens yet: issue one with [bold]loopwright users token NAME[/]")
        return
    table = Table("id", "user", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]), r["user"], r["created_at"], r["last_used_at"] or "never", r["revoked_at"] or ""
        )
    out.print(table)


def _account(account: Account, tokens: int) -> dict[str, Any]:
    return {
        "name": account.user.name,
        "admin": account.user.admin,
        "tokens": tokens,
        "memberships": [
            {"project": m.project, "role": m.role, "tiers": None if m.tiers is None else list(m.tiers)}
            for m in account.memberships.values()
        ],
    }


@users_app.command("list")
def list_users(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Users, admin flags, memberships and how many live tokens each has (never the tokens)."""
    with _store(db).engine.begin() as conn:
        rows = [_account(a, n) for a, n in _repo(conn).list()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no users yet: add one with [bold]loopwright users add NAME[/]")
        return
    table = Table("user", "admin", "live tokens", "memberships")
    for r in rows:
        roles = ", ".join(
            f"{m['project']}: {m['role']}"
            + ("" if m["tiers"] is None else f" (tiers {','.join(map(str, m['tiers']))})")
            for m in r["memberships"]
        )
        table.add_row(r["name"], "yes" if r["admin"] else "", str(r["tokens"]), roles or "-")
    out.print(table)
