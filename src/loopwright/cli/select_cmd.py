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
) -> None:
    """Select the rows to label next from a large unlabelled pool with the project's champion (or
    --model): per-partition candidates merged into the single-process answer (k-center: within
    4x the optimal covering radius; see the README)."""
    from loopwright.integrations import dask_select as ds

    model, configured = _model(db, project, model_file, needed=strategy != "kcenter")
    cols = [c.strip() for c in features.split(",") if c.strip()] if features else configured
    table = ds.open_pool(pool, cols, id_column, rows_per_part)
    if single:
        chosen = ds.select_single(table, budget, strategy, model, seed)
    else:
        ds._check(strategy, budget, model)  # bad input fails before a cluster starts
        client = ds.connect_cluster(scheduler, workers, timeout=connect_timeout)
        try:
            chosen = ds.select_on_dask(table, budget, strategy, client, model, seed)
        finally:
            cluster = client.cluster if scheduler is None else None
            client.close()
            if cluster is not None:
                cluster.close()
    rows = [
        {"rank": i + 1, "row": int(r), "id": _plain(v), "score": float(s)}
        for i, (r, v, s) in enumerate(zip(chosen.rows, chosen.ids, chosen.scores, strict=True))
    ]
    if as_json:
        print(json.dumps({"strategy": strategy, "parts": chosen.parts, "where": chosen.where, "rows": rows}))
        return
    shown = Table("rank", "row", "id", "score", title=f"{strategy}: {len(rows)} of {table.rows} rows")
    for r in rows:
        shown.add_row(str(r["rank"]), str(r["row"]), str(r["id"]), f"{r['score']:.6g}")
    out.print(shown)
    err.print(f"{chosen.parts} partitions on {chosen.where} in {chosen.seconds:.2f} s")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
