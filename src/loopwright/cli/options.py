"""Options every project command shares, opening the project they name, and the routing
certificate as the JSON that `status` and the demo summary both print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopwright.errors import Invalid, NotFound

if TYPE_CHECKING:
    from loopwright.domain import Certification
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
    from loopwright.api import connect

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


def certificate_json(c: Certification | None) -> dict[str, Any] | None:
    """The certificate's figures, or None when the project has none."""
    if c is None:
        return None
    keys = ("threshold", "epsilon", "delta", "n_evidence", "n_errors", "upper_bound", "n_audited", "reason")
    return {k: getattr(c, k) for k in keys} | {"model_version_id": c.model_version_id}
