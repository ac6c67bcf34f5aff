"""`loopwright select --pool PATH_OR_URL --budget N`: the rows to label next from a Parquet pool,
scored in parallel on Dask (a LocalCluster, or a ``tcp://`` scheduler) or in this process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loopwright.cli.options import DbOption, JsonOption, ProjectOption

out = Console()
err = Console(stderr=True)


def _model(
    db: str | None, project: str | None, model_file: Path | None, needed: bool
) -> tuple[Any, list[str] | None]:
    """The model (as its artifact) and the feature columns: ``--model FILE``, else the project's
    champion (and its configured features; k-center, which needs no model: only those)."""
    from loopwright.errors import Invalid, NotFitted, NotFound
    from loopwright.integrations.dask_select import ModelSpec

    if model_file is not None:
        if not model_file.is_file():
            raise NotFound(f"model file {model_file} does not exist")
        return ModelSpec(model_file.read_bytes()), None
    if not needed and project is None:
        return None, None
    from loopwright.api import connect

    ws = connect(db)
    names = [p.name for p in ws.projects()]
    if project is None and len(names) != 1:
        raise Invalid(f"the database has {len(names)} projects: choose one with --project (or pass --model)")
    loop = ws.project(project or names[0])
    config = loop.config
    if not needed:
        return None, list(config.features or []) or None
    with ws.store.unit_of_work() as uow:  # the champion's stored artifact, as is
        champion = uow.models.champion(loop.project.id)
        if champion is None:
            raise NotFitted(f"project {loop.project.name!r} has no champion model yet: pass --model FILE")
        if champion.kind == "external":
            raise Invalid(f"champion {champion.ref} lives elsewhere: pass --model FILE")
        blob = uow.models.artifact(champion.id)
    if not blob:
        raise NotFitted(f"champion v{champion.version} has no stored artifact: pass --model FILE")
    return ModelSpec(blob, tuple(config.model.trusted_types)), list(config.features or []) or None


def select_command(
    pool: Annotated[str, typer.Option(help="Parquet file or folder: a path or a URL (s3://, gs://, …).")],
    budget: Annotated[int, typer.Option(min=1, help="How many rows to select.")],
    strategy: Annotated[
        str, typer.Option(help="margin, entropy, least-confidence (exact) or kcenter (approximate).")
    ] = "margin",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler tcp://host:port (default: a LocalCluster here).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="LocalCluster worker processes.")] = 2,
    single: Annotated[bool, typer.Option("--single", help="No Dask: one process, part by part.")] = False,
    connect_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to reach the scheduler.")] = 10.0,
    db: DbOption = None,
    project: ProjectOption = None,
    model_file: Annotated[Path | None, typer.Option("--model", help="A skops model file.")] = None,
    features: Annotated[str | None, typer.Option(help="Feature columns, comma-separated.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Column naming each row in the answer.")] = None,
    rows_per_part: Annotated[
        int, typer.Option(min=1, help="Rows per partition (whole row groups).")
    ] = 250_000,
    seed: Annotated[int, typer.Option(help="Seed of k-center's first pick.")] = 0,
    as_json: JsonOption = False,
    job: Annotated[
        bool, typer.Option("--job", help="Queue it as a background job of the project; print the job.")
    ] = False,
) -> None:
    """Select the rows to label next from a large unlabelled pool with the project's champion (or
    --model): per-partition candidates merged into the single-process answer (k-center: within
    4x the optimal covering radius; see the README). With --job: queue it as a background job
    of the project (a worker scores it with the champion; see `loopwright jobs show`)."""
    from loopwright.integrations import dask_select as ds

    if job:
        _enqueue(db, project, model_file, pool, budget, strategy, scheduler, workers, single, features,
                 id_column, rows_per_part, seed)  # fmt: skip
        return
    model, configured = _model(db, project, model_file, needed=strategy != "kcenter")
    cols = [c.strip() for c in features.split(",") if c.strip()] if features else configured
    table = ds.open_pool(pool, cols, id_column, rows_per_part)
    chosen = ds.run_selection(
        table, budget, strategy, model, single=single, scheduler=scheduler, workers=workers, seed=seed,
        connect_timeout=connect_timeout,
    )  # fmt: skip
    rows = ds.selection_rows(chosen)
    if as_json:
        print(json.dumps({"strategy": strategy, "parts": chosen.parts, "where": chosen.where, "rows": rows}))
        return
    shown = Table("rank", "row", "id", "score", title=f"{strategy}: {len(rows)} of {table.rows} rows")
    for r in rows:
        score = "-" if r["score"] is None else f"{r['score']:.6g}"
        shown.add_row(str(r["rank"]), str(r["row"]), str(r["id"]), score)
    out.print(shown)
    err.print(f"{chosen.parts} partitions on {chosen.where} in {chosen.seconds:.2f} s")


def _enqueue(
    db: str | None,
    project: str | None,
    model_file: Path | None,
    pool: str,
    budget: int,
    strategy: str,
    scheduler: str | None,
    workers: int,
    single: bool,
    features: str | None,
    id_column: str | None,
    rows_per_part: int,
    seed: int,
) -> None:
    """Queue the selection as a ``select`` job of the project and print the job."""
    from loopwright.cli.jobs import open_jobs, print_job
    from loopwright.cli.options import open_loop
    from loopwright.errors import Invalid

    if model_file is not None:
        raise Invalid("a select job scores with the project's champion: drop --model, or run without --job")
    loop = open_loop(db, project)
    if "://" not in pool:  # a worker may run elsewhere in the file system: the absolute path
        pool = str(Path(pool).resolve())
    params: dict[str, Any] = {"pool": pool, "budget": budget, "strategy": strategy, "single": single,
                              "workers": workers, "rows_per_part": rows_per_part, "seed": seed}  # fmt: skip
    if scheduler is not None:
        params["scheduler"] = scheduler
    if features:
        params["features"] = [c.strip() for c in features.split(",") if c.strip()]
    if id_column is not None:
        params["id_column"] = id_column
    print_job(open_jobs(db).enqueue(loop.project.name, "select", params, "cli"))
