"""``loopwright webhooks …``: a project's webhook subscriptions and their deliveries.

The server sends (``loopwright serve`` runs the dispatcher); these commands only change and
read the subscriptions in the database. The secret is printed once, by ``add``, which refuses
loopback, private, link-local, … targets unless ``LOOPWRIGHT_WEBHOOK_ALLOW`` allows them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loopwright.api import connect
from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop

if TYPE_CHECKING:
    from loopwright.domain import Project
    from loopwright.service.webhooks import Webhooks

webhooks_app = typer.Typer(
    help="Webhooks: add, list, remove; list deliveries, retry a dead one.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


def _open(db: str | None, project: str | None) -> tuple[Project, Webhooks]:
    from loopwright.service.webhooks import Webhooks  # the web stack loads only when needed
    from loopwright.settings import Settings

    ws = connect(db)
    name = project or open_loop(db, None).project.name  # the only project, or a clear error
    allow = Settings.from_env().webhook_allow  # the same targets the server would accept
    return ws.project(name).project, Webhooks(ws.store, allow=allow)


def _iso(value: Any) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http:// or https:// URL to POST events to.")],
    db: DbOption = None,
    project: ProjectOption = None,
    events: Annotated[
        list[str] | None,
        typer.Option("--events", help="Action prefix to send (e.g. items. or item.resolved); repeatable."),
    ] = None,
) -> None:
    """Subscribe a URL to the project's events (all of them unless --events) and print the secret."""
    proj, hooks = _open(db, project)
    sub = hooks.subscribe(proj, url, events or [], "cli")
    err.print(f"webhook {sub.id} of {proj.name} → {sub.url}; its signing secret (shown once):")
    print(sub.secret)


@webhooks_app.command("list")
def list_webhooks(db: DbOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """The project's active subscriptions (never their secrets)."""
    proj, hooks = _open(db, project)
    rows: list[dict[str, Any]] = [
        {
            "id": s.id,
            "url": s.url,
            "events": list(s.events),
            "last_event_id": s.last_event_id,
            "created_by": s.created_by,
            "created_at": s.created_at.isoformat(),
        }
        for s in hooks.list(proj)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no webhooks: add one with [bold]loopwright webhooks add URL[/]")
        return
    table = Table("id", "url", "events", "queued up to event", "created by")
    for r in rows:
        table.add_row(
            str(r["id"]), r["url"], " ".join(r["events"]) or "(all)", str(r["last_event_id"]), r["created_by"]
        )
    out.print(table)


@webhooks_app.command("remove")
def remove(
    webhook_id: Annotated[int, typer.Argument(help="Webhook id.")],
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Stop a subscription: nothing more is queued or sent."""
    proj, hooks = _open(db, project)
    hooks.unsubscribe(proj, webhook_id, "cli")
    out.print(f"webhook {webhook_id} removed")


@webhooks_app.command("deliveries")
def deliveries(
    webhook_id: Annotated[int, typer.Argument(help="Webhook id.")],
    db: DbOption = None,
    project: ProjectOption = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or dead.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """A subscription's deliveries, newest first: status, attempts, the last answer."""
    from loopwright.errors import Invalid
    from loopwright.service.webhooks import STATUSES

    if status is not None and status not in STATUSES:
        raise Invalid(f"--status must be one of {', '.join(STATUSES)}")
    proj, hooks = _open(db, project)
    rows = hooks.deliveries(proj, webhook_id, status, limit)
    if as_json:
        print(json.dumps([{k: getattr(d, k) for k in d.__slots__} for d in rows], indent=2, default=str))
        return
    table = Table("id", "event", "action", "status", "attempts", "next attempt", "last answer")
    for d in rows:
        answer = d.last_error or ("-" if d.last_status_code is None else str(d.last_status_code))
        table.add_row(
            str(d.id), str(d.event_id), d.action, d.status, str(d.attempts), _iso(d.next_attempt_at), answer
        )
    out.print(table)


@webhooks_app.command("retry")
def retry(
    webhook_id: Annotated[int, typer.Argument(help="Webhook id.")],
    delivery_id: Annotated[int, typer.Argument(help="Id of a dead delivery.")],
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Requeue a dead delivery: the server sends it again at once."""
    proj, hooks = _open(db, project)
    d = hooks.retry(proj, webhook_id, delivery_id)
    out.print(f"delivery {d.id} (event {d.event_id}) is {d.status} again")
