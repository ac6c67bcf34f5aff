"""``loopwright erase EXTERNAL_ID``: erase one item (GDPR Art. 17) and print its tombstone."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop

out = Console()


def erase_command(
    external_id: Annotated[str, typer.Argument(help="The external id of the item to erase.")],
    db: DbOption = None,
    project: ProjectOption = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, kept in the tombstone.")] = None,
    actor: Annotated[str, typer.Option(help="Who erases, for the tombstone and the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Erase an item: its payload, metadata, predictions, tasks, annotations, feedback and dataset
    entries are deleted and the events about it redacted; a tombstone is kept. Irreversible."""
    loop = open_loop(db, project)
    tomb = loop.erase(external_id, actor=actor, reason=reason)
    row = {
        "id": tomb.id,
        "project": loop.project.name,
        "subject_hash": tomb.subject_hash,
        "actor": tomb.actor,
        "reason": tomb.reason,
        "erased_at": tomb.erased_at.isoformat(),
        "counts": tomb.counts,
    }
    if as_json:
        print(json.dumps(row, indent=2, ensure_ascii=False))
        return
    deleted = sum(n for t, n in tomb.counts.items() if t != "events_redacted")
    out.print(
        f"erased item of {loop.project.name}: {deleted} rows deleted, "
        f"{tomb.counts.get('events_redacted', 0)} events redacted; tombstone {tomb.id} "
        f"(subject hash {tomb.subject_hash[:16]}…)",
        markup=False,
        highlight=False,
    )
