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


# The optional extra that installs each import a command may miss (pyproject's extras).
EXTRAS = {
    "fastapi": "service",
    "starlette": "service",
    "uvicorn": "service",
    "prometheus_client": "service",
    "plotly": "service",
    "httpx": "service",
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
    "pyarrow": "parquet",
    "fsspec": "import",
    "s3fs": "import",
    "datasketch": "import",
    "imagehash": "import",
    "PIL": "import",
    "procrastinate": "jobs",
    "nats": "broker",
    "dask": "cluster",
    "distributed": "cluster",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra to install for a missing optional package, or None."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return f"this command needs {top}, which the base install leaves out: pip install 'loopwright[{extra}]'"


def existing_db(db: str | None) -> str:
    """The database URL to open (``--db``, else the environment's), refusing a SQLite file that
    does not exist: a command that only reads would otherwise create an empty one."""
    from loopwright.settings import Settings
    from loopwright.store.sql.engine import sqlite_file

    url = db or Settings.from_env().db_url
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise NotFound(
            f"no database at {path.resolve()}: check --db or LOOPWRIGHT_DB_URL "
            "(a relative sqlite:/// path is read from the working directory), "
            "or create one with `loopwright init CONFIG`"
        )
    return url


def open_loop(db: str | None, project: str | None) -> Loop:
    """The named project, or the only one in the database (which must exist)."""
    from loopwright.api import connect

    ws = connect(existing_db(db))
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
