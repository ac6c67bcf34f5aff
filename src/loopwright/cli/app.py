"""``loopwright`` commands: thin wrappers that parse, call the Python API and render with Rich."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar

import typer
from rich.console import Console
from rich.table import Table

from loopwright.api import connect
from loopwright.cli.lazy import LazyGroup
from loopwright.cli.options import DbOption, certificate_json, existing_db, missing_extra
from loopwright.errors import LoopwrightError
from loopwright.settings import Settings

if TYPE_CHECKING:  # the use cases load inside the commands that need them: start-up stays light
    from collections.abc import Mapping

    from loopwright.config import ProjectConfig
    from loopwright.loop import ProjectStatus


class _Commands(LazyGroup):
    """The commands of other modules, imported when run or listed (``--help``), in this order."""

    COMMANDS: ClassVar[Mapping[str, str]] = {
        "aggregate": "loopwright.cli.crowd:aggregate",
        "agreement": "loopwright.cli.crowd:agreement",
        "drift": "loopwright.cli.drift:drift_command",
        "erase": "loopwright.cli.erase:erase_command",
        "ingest": "loopwright.cli.ingest_cmd:ingest_command",
        "retrain": "loopwright.cli.loop_cmds:retrain_command",
        "gold": "loopwright.cli.loop_cmds:gold_command",
        "simulate": "loopwright.cli.simulate_cmd:simulate_command",
        "select": "loopwright.cli.select_cmd:select_command",
        "worker": "loopwright.cli.worker:worker_command",
    }
    GROUPS: ClassVar[Mapping[str, str]] = {
        "datasets": "loopwright.cli.registry:datasets_app",
        "models": "loopwright.cli.registry:models_app",
        "lineage": "loopwright.cli.lineage:lineage_app",
        "users": "loopwright.cli.users:users_app",
        "webhooks": "loopwright.cli.webhooks:webhooks_app",
        "jobs": "loopwright.cli.jobs:jobs_app",
        "automation": "loopwright.cli.jobs:automation_app",
        "labelstudio": "loopwright.cli.labelstudio:labelstudio_app",
        "mlflow": "loopwright.cli.mlflow_cmd:mlflow_app",
        "events": "loopwright.cli.events_cmd:events_app",
    }


app = typer.Typer(
    help="loopwright: human-in-the-loop continuous learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
err = Console(stderr=True)
out = Console()
WORKER_HEALTHCHECK_S = 30  # uvicorn's default is 5 s


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where to write summary.json, report.html, the DB.")
    ] = Path("loopwright-demo"),
    seed: Annotated[int, typer.Option(help="Seed for the stream, the split and the annotators.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A 5,200-item stream in 20 rounds instead of 20,800 in 80.")
    ] = False,
    scenario: Annotated[
        str, typer.Option(help="A use case: digits (default), images, multilabel, chat, spans or boxes.")
    ] = "digits",
    data: Annotated[
        Path | None, typer.Option(help="The shared data sets (holding text/), for scenarios chat and spans.")
    ] = None,
) -> None:
    """Run the whole loop on scikit-learn's digits (or another --scenario) with simulated annotators."""
    if scenario != "digits":
        _scenario(scenario, out_dir, seed, quick, data)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from loopwright.cli.demo import RoundProgress, run_demo
    from loopwright.cli.report import render_report

    with Progress(
        TextColumn("[bold]round"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        bar = progress.add_task("starting", total=None)

        def on_round(p: RoundProgress) -> None:
            acc = "n/a" if p.champion_accuracy is None else f"{p.champion_accuracy:.3f}"
            progress.update(
                bar,
                completed=p.round,
                total=p.rounds,
                description=f"items {p.items_seen} · human labels {p.human_labels} · accuracy {acc}",
            )

        summary = run_demo(out_dir, seed=seed, quick=quick, on_round=on_round)
    summary.setdefault("scenario", "digits")  # the fields every scenario reports (loopwright.scenarios)
    summary.setdefault(
        "final_metric", {"name": "held_out_accuracy", "value": summary["champion_accuracy_by_round"][-1]}
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.html").write_text(render_report(summary), encoding="utf-8")
    acc = summary["champion_accuracy_by_round"][-1]
    err_rate = summary["auto_accept_error"]
    out.print(
        f"[bold green]done[/] in {summary['seconds']} s: {summary['items_seen']} items, "
        f"{summary['human_labels']} human labels, {summary['auto_accepted']} auto-accepted "
        f"(error {'n/a' if err_rate is None else f'{err_rate:.3f}'}), {summary['promotions']} promotions, "
        f"held-out accuracy {'n/a' if acc is None else f'{acc:.3f}'}"
    )
    out.print(f"wrote {out_dir / 'summary.json'}, {out_dir / 'report.html'} and {summary['database']}")


def _scenario(name: str, out_dir: Path, seed: int, quick: bool, data: Path | None) -> None:
    """``demo --scenario NAME`` other than digits (loopwright.scenarios)."""
    from loopwright import scenarios

    with err.status(f"running scenario {name} …"):
        summary = scenarios.runner(name)(out_dir, seed=seed, quick=quick, data_dir=data)
    scenarios.write(out_dir, summary)
    metric, rate = summary["final_metric"], summary["auto_accept_error"]
    value = "n/a" if metric["value"] is None else f"{metric['value']:.3f}"
    out.print(
        f"[bold green]done[/]: {summary['items_seen']} items, {summary['human_labels']} human labels, "
        f"{summary['auto_accepted']} auto-accepted (error {'n/a' if rate is None else f'{rate:.3f}'}), "
        f"{metric['name']} {value}"
    )
    out.print(f"wrote {out_dir / 'summary.json'} and {out_dir / 'report.html'}")


@app.command()
def init(
    config: Annotated[Path, typer.Argument(help="Project config file (YAML or TOML).", exists=True)],
    db: DbOption = None,
) -> None:
    """Create a project from a config file."""
    loop = connect(db).create_project(config)
    out.print(f"created project [bold]{loop.project.name}[/] with labels {loop.config.labels}")


@app.command()
def status(
    db: DbOption = None,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Summarise each project: items, routes, queues, labels, datasets and the champion."""
    ws = connect(existing_db(db))
    names = [project] if project else [p.name for p in ws.projects()]
    loops = [ws.project(n) for n in names]
    rows = [loop.status() for loop in loops]
    if as_json:
        print(json.dumps([_status_dict(s) for s in rows], indent=2))
        return
    if not rows:
        out.print(
            "no projects yet: create one with [bold]loopwright init CONFIG[/] or run [bold]loopwright demo[/]"
        )
    for s, loop in zip(rows, loops, strict=True):
        table = Table(title=f"project {s.project}", show_header=False)
        for k, v in _status_dict(s).items():
            table.add_row(k, _cell(v))
        out.print(table)
        for note in waiting_notes(s, loop.config):
            out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _cell(value: object) -> str:
    """A table cell a person reads: mappings as ``key: value`` lines, never a raw dict."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_cell(v)}" for k, v in value.items() if v is not None) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def waiting_notes(s: ProjectStatus, config: ProjectConfig) -> list[str]:
    """Why nothing resolves or retrains yet, in words (empty when the loop is moving)."""
    notes = []
    if s.items and not s.annotations and sum(s.open_tasks_by_tier.values()):
        notes.append("nothing annotated yet: reviewers claim tasks in the web UI or with loop.next_task")
    multi = [t for t in config.tiers if t.required_annotations > 1]
    if s.annotations and not s.resolutions and multi:
        needs = ", ".join(f"tier {t.tier} needs {t.required_annotations} different people" for t in multi)
        notes.append(f"no resolutions yet: {needs} per item (tiers.required_annotations)")
    if s.audits_waiting:
        tiers = config.routing.audit_tiers
        k = max([config.routing.audit_answers, *(config.tier(t).required_annotations for t in tiers)])
        notes.append(
            f"{s.audits_waiting} audited item(s) wait for another answer, and the certificate counts each "
            f"by its first answer until then: the audit tier needs up to {k} different people "
            "(routing.audit_answers, tiers.required_annotations)"
        )
    if not config.model.lives_elsewhere and s.resolutions < config.retrain.min_labels:
        notes.append(
            f"no retrain until {config.retrain.min_labels} resolved labels (retrain.min_labels); "
            f"{s.resolutions} so far"
        )
    return notes


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Interface to bind (keep 127.0.0.1 unless behind a proxy).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    open_access: Annotated[
        bool, typer.Option("--open", help="No authentication: every caller is an admin (a laptop only).")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each opens the database).")] = 1,
    public_metrics: Annotated[
        bool, typer.Option("--public-metrics", help="Serve /metrics without a token (all projects).")
    ] = False,
    automation_every: Annotated[
        float, typer.Option(min=0.0, help="Evaluate every project's triggers this often (seconds; 0: never).")
    ] = 30.0,
    job_threads: Annotated[
        int, typer.Option(min=0, max=64, help="Job threads in this process (0: `loopwright worker` only).")
    ] = 1,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs); callers send Authorization: Bearer <token>."""
    import uvicorn

    from loopwright.service import create_app

    err.print(f"loopwright REST API on http://{host}:{port} (docs at /docs, metrics at /metrics)")
    if workers == 1:
        settings = Settings.from_env()  # webhook targets and timeout (workers read them themselves)
        asgi = create_app(
            connect(db),
            open_access=open_access,
            public_metrics=public_metrics,
            webhook_allow=settings.webhook_allow,
            webhook_timeout=settings.webhook_timeout,
            max_body_bytes=settings.max_body_bytes,
            broker_url=settings.broker_url,
            pool_roots=settings.pool_roots,
            dask_scheduler=settings.dask_scheduler,
            job_threads=job_threads,
            automation_every=automation_every or None,
        )
        uvicorn.run(asgi, host=host, port=port, log_level="warning")
        return
    connect(db).close()  # migrate once, before the workers start
    os.environ["LOOPWRIGHT_DB_URL"] = db or Settings.from_env().db_url  # read by app_from_env
    os.environ["LOOPWRIGHT_SERVE_OPEN"] = "1" if open_access else "0"
    os.environ["LOOPWRIGHT_PUBLIC_METRICS"] = "1" if public_metrics else "0"
    target = "loopwright.service.app:app_from_env"
    # Workers import only what serving needs (no SciPy/scikit-learn: they warm in a thread after
    # start-up), so each answers uvicorn's health check in about a second; the longer timeout
    # keeps a saturated machine from killing and respawning workers that are merely slow.
    uvicorn.run(
        target,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


def _status_dict(s: ProjectStatus) -> dict[str, object]:
    champ = s.champion
    return {
        "project": s.project,
        "items": s.items,
        "routes": s.routes,
        "automation_rate": round(s.automation_rate, 4),
        "open_tasks_by_tier": s.open_tasks_by_tier,
        "audits_waiting": s.audits_waiting,
        "annotations": s.annotations,
        "resolutions": s.resolutions,
        "dataset_versions": s.dataset_versions,
        "latest_dataset": s.latest_dataset,
        "model_versions": s.model_versions,
        "champion": None if champ is None else {"version": champ.version, "metrics": champ.metrics},
        "routing": s.routing,
        "certification": certificate_json(s.certification),
    }


def main() -> None:
    """Entry point: domain errors become one clear line and exit code 2, not a traceback."""
    try:
        app()
    except LoopwrightError as exc:
        err.print(f"[bold red]error[/] ({exc.code}): ", end="")
        err.print(exc.message, markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:  # an optional extra is not installed: say which
        line = missing_extra(exc)
        if line is None:
            raise
        err.print("[bold red]error[/] (missing_extra): ", end="")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
