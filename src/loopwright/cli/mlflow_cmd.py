"""``loopwright mlflow sync|champion``: model versions to and from an MLflow tracking store."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop

mlflow_app = typer.Typer(
    help="MLflow: log model versions as runs, register promoted ones, follow a registry alias.",
    no_args_is_help=True,
)
out = Console()

TrackingOption = Annotated[
    str,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (sqlite:///mlflow.db, http://…).",
    ),
]
RegisteredOption = Annotated[
    str | None,
    typer.Option("--registered-model", help="MLflow registered model name (default: the model's own name)."),
]


@mlflow_app.command("sync")
def mlflow_sync(
    tracking_uri: TrackingOption,
    registered_model: RegisteredOption = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment name (default: loopwright/<project>).")
    ] = None,
    alias: Annotated[str, typer.Option(help="The MLflow alias that follows the champion.")] = "champion",
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """One run per model version (params, metrics, gate evidence); every promoted version in
    the Model Registry; the alias on the champion. Idempotent."""
    from loopwright.integrations.mlflow import LoopRegistry, sync

    done = sync(LoopRegistry(open_loop(db, project)), tracking_uri, registered_model, experiment, alias)
    if as_json:
        body = {
            "experiment_id": done.experiment_id,
            "registered_model": done.registered_model,
            "runs": {f"v{k}": v for k, v in done.runs.items()},
            "registered": {f"v{k}": v for k, v in done.registered.items()},
            "champion": done.champion,
        }
        print(json.dumps(body, indent=2))
        return
    out.print(f"{len(done.runs)} run(s) in experiment {done.experiment_id}")
    for version, mv in done.registered.items():
        out.print(f"  v{version} -> {done.registered_model} version {mv}")
    if done.champion is not None:
        out.print(f"alias {alias} -> {done.registered_model} version {done.champion}")


@mlflow_app.command("champion")
def mlflow_champion(
    tracking_uri: TrackingOption,
    registered_model: Annotated[
        str, typer.Option("--registered-model", help="MLflow registered model name.")
    ],
    alias: Annotated[str, typer.Option(help="The MLflow alias naming the production version.")] = "champion",
    promote: Annotated[bool, typer.Option(help="Make it loopwright's champion too.")] = True,
    db: DbOption = None,
    project: ProjectOption = None,
    actor: Annotated[str, typer.Option(help="Who promotes, for the event log.")] = "mlflow",
    as_json: JsonOption = False,
) -> None:
    """Register the MLflow version an alias names (a model that lives elsewhere) and, unless
    --no-promote, make it the champion."""
    from loopwright.integrations.mlflow import LoopRegistry, champion_from_alias

    registry = LoopRegistry(open_loop(db, project), actor)
    m = champion_from_alias(registry, tracking_uri, registered_model, alias, promote)
    if as_json:
        print(json.dumps(m.model_dump(mode="json"), indent=2))
        return
    out.print(f"{m.name}@{m.tag} is v{m.version} ({m.status}), artifact {m.artifact_uri}")
