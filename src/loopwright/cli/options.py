"""Options every project command shares, and opening the project they name."""

from __future__ import annotations

from typing import Annotated

import typer

from loopwright.api import connect
from loopwright.errors import Invalid, NotFound
from loopwright.loop import Loop

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: LOOPWRIGHT_DB_URL or sqlite ./loopwright.db)."),
]
ProjectOption = Annotated[
    str | None, typer.Option("--project", help="Project name (default: the only project).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def open_loop(db: str | None, project: str | None) -> Loop:
    """The named project, or the only one in the database."""
    ws = connect(db)
    if project:
        return ws.project(project)
    names = [p.name for p in ws.projects()]
    if not names:
        raise NotFound("no projects in this database: create one with `loopwright init CONFIG`")
    if len(names) > 1:
        raise Invalid(
            f"the database has {len(names)} projects ({', '.join(names)}): choose one with --project"
        )
    return ws.project(names[0])
