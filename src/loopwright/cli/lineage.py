"""`loopwright lineage model|item` and `loopwright events`: where labels came from, and the log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop
from loopwright.domain import Event

out = Console()
lineage_app = typer.Typer(
    help="Lineage both ways: a model's training labels, or everything that touched an item.",
    no_args_is_help=True,
)


@lineage_app.command("model")
def lineage_model(
    version: Annotated[int, typer.Argument(help="Model version number (see `loopwright status`).")],
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The dataset version a model was trained on, and its labels by annotator, tier and source."""
    answer = open_loop(db, project).lineage_of_model(version)
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    tree = Tree(f"[bold]model v{answer['version']}[/] ({answer['status']})")
    tree.add(f"dataset version {answer['dataset_version']}")
    tree.add(f"{answer['train_items']} training items, {answer['eval_items']} evaluation items")
    for key in ("label_counts", "labels_by_source", "annotations_by_tier", "annotations_by_annotator"):
        if answer.get(key):
            branch = tree.add(key.replace("_", " "))
            for name, n in answer[key].items():
                branch.add(f"{name}: {n}")
    out.print(tree)


@lineage_app.command("item")
def lineage_item(
    external_id: Annotated[str, typer.Argument(help="The item's external id.")],
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """An item's predictions, decisions, tasks, annotations, resolutions, feedback and versions."""
    answer = open_loop(db, project).lineage_of_item(external_id)
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    tree = Tree(f"[bold]item {external_id}[/] (id {answer['item']['id']})")
    for key in ("predictions", "decisions", "tasks", "annotations", "resolutions", "feedback"):
        branch = tree.add(f"{key} ({len(answer[key])})")
        for row in answer[key]:
            branch.add(_inline(row))
    tree.add(f"dataset versions: {', '.join(_inline(d) for d in answer['dataset_versions']) or 'none'}")
    tree.add(f"models trained on it: {answer['trained_models'] or 'none'}")
    tree.add(f"models evaluated on it: {answer['evaluated_models'] or 'none'}")
    out.print(tree)


def events(
    db: DbOption = None,
    project: ProjectOption = None,
    after: Annotated[int, typer.Option(help="Only events with an id above this.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many events.")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. model.promoted.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The append-only audit log: every state change with actor, action, subject and data."""
    loop, cursor = open_loop(db, project), after
    rows: list[Event] = []
    while len(rows) < limit and (page := loop.events(after_id=cursor, limit=500)):
        rows += [e for e in page if action is None or e.action == action]
        cursor = page[-1].id
    rows = rows[:limit]
    if as_json:
        print(json.dumps([_event(e) for e in rows], indent=2))
        return
    table = Table("id", "at", "actor", "action", "subject", "data", title=f"events after {after}")
    for e in rows:
        table.add_row(
            str(e.id), e.at.isoformat(timespec="seconds"), e.actor, e.action,
            f"{e.subject_type} {e.subject_id}", json.dumps(e.data)[:80],
        )  # fmt: skip
    out.print(table)


def _event(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "subject_type": e.subject_type,
        "subject_id": e.subject_id,
        "data": e.data,
    }


def _inline(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())
