"""``loopwright datasets …`` and ``loopwright models …``: dataset versions and the model registry."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop
from loopwright.errors import Invalid
from loopwright.loop.datasets import ExportFormat

if TYPE_CHECKING:
    from loopwright.domain import DatasetVersion, ModelVersion
    from loopwright.loop.datasets import DatasetDiff
    from loopwright.loop.registry import Aliases, Deployment

# loopwright.loop.registry.ENVIRONMENTS after "dev" (kept equal by tests/test_startup.py): the
# help text is built at import, and importing the registry use case would import the learning half.
DEPLOY_ENVIRONMENTS = ("staging", "prod")

datasets_app = typer.Typer(help="Dataset versions: list, show, diff, export.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: list, show, promote, rollback; register, upload, gate.", no_args_is_help=True
)
out = Console()

DeployDirOption = Annotated[
    Path | None,
    typer.Option(
        "--deploy-dir",
        envvar="LOOPWRIGHT_DEPLOY_DIR",
        help="Write deployment manifests <DIR>/<env>/<project>.json (default: LOOPWRIGHT_DEPLOY_DIR).",
    ),
]
EnvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env", help=f"Also deploy to this environment ({', '.join(DEPLOY_ENVIRONMENTS)}); repeatable."
    ),
]


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- datasets ------------------------------------------------------------------------------


def _dataset_dict(v: DatasetVersion, models: list[ModelVersion]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": v.id,
        "parent": v.parent_id,
        "n_items": v.n_items,
        "label_counts": dict(sorted(v.label_counts.items())),
        "created_at": _iso(v.created_at),
        "models": [m.version for m in models if m.dataset_version_id == v.id],
    }
    if v.entries:
        row["split_counts"] = dict(sorted(Counter(e.split.value for e in v.entries).items()))
        row["source_counts"] = dict(sorted(Counter(e.source for e in v.entries).items()))
    return row


@datasets_app.command("list")
def datasets_list(db: DbOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """The project's dataset versions, oldest first."""
    loop = open_loop(db, project)
    models = loop.models()
    rows = [_dataset_dict(v, models) for v in loop.datasets()]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no dataset versions yet: they are written when resolved labels are snapshotted")
        return
    table = Table(title=f"dataset versions of {loop.project.name}")
    for col in ("version", "parent", "items", "labels", "created", "models"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"][:12],
            (r["parent"] or "-")[:12],
            str(r["n_items"]),
            _counts(r["label_counts"]),
            r["created_at"][:19],
            ", ".join(f"v{m}" for m in r["models"]) or "-",
        )
    out.print(table)


@datasets_app.command("show")
def datasets_show(
    version: Annotated[str, typer.Argument(help="Version id, a unique prefix (≥ 6 chars) or 'latest'.")],
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """One dataset version: parent, label, split and source counts, the models trained on it."""
    loop = open_loop(db, project)
    row = _dataset_dict(loop.dataset(version), loop.models())
    row["erased_items"] = loop.erasure_marks().datasets.get(row["id"], 0)
    if as_json:
        _print_json(row)
        return
    table = Table(title=f"dataset version {row['id'][:12]}", show_header=False)
    for key in ("id", "parent", "n_items", "erased_items", "created_at"):
        table.add_row(key, str(row[key] or "-"))
    for key in ("label_counts", "split_counts", "source_counts"):
        table.add_row(key.replace("_", " "), _counts(row.get(key, {})))
    table.add_row("models", ", ".join(f"v{m}" for m in row["models"]) or "-")
    out.print(table)


@datasets_app.command("diff")
def datasets_diff(
    a: Annotated[str, typer.Argument(help="The old version (or, alone, the new one: diffed to its parent).")],
    b: Annotated[str | None, typer.Argument(help="The new version.")] = None,
    db: DbOption = None,
    project: ProjectOption = None,
    limit: Annotated[int, typer.Option(help="Rows shown per table (all with --json).")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Items added, relabelled (old → new) and removed between two versions, by item hash."""
    loop = open_loop(db, project)
    d = loop.diff_datasets(None, a) if b is None else loop.diff_datasets(a, b)
    if as_json:
        _print_json(d.as_dict())
        return
    _print_diff(d, limit)


def _print_diff(d: DatasetDiff, limit: int) -> None:
    counts = d.counts
    out.print(
        f"{d.a[:12]} → {d.b[:12]}: {counts['added']} added, {counts['relabelled']} relabelled, "
        f"{counts['removed']} removed, {counts['unchanged']} unchanged"
    )
    for title, rows in (("relabelled", d.relabelled), ("added", d.added), ("removed", d.removed)):
        if not rows:
            continue
        table = Table(title=f"{title} ({len(rows)})")
        for col in ("external id", "item hash", "old", "new"):
            table.add_column(col)
        for r in rows[:limit]:
            table.add_row(r.external_id, r.item_hash[:12], r.old or "-", r.new or "-")
        if len(rows) > limit:
            table.caption = f"{len(rows) - limit} more: --limit N or --json"
        out.print(table)


@datasets_app.command("export")
def datasets_export(
    version: Annotated[str, typer.Argument(help="Version id, a unique prefix (≥ 6 chars) or 'latest'.")],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format", help="jsonl, csv, parquet or dvc; spans: offsets or conll; boxes: coco or yolo."
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The file (or a directory; for dvc the parent directory; with --repo, inside it).",
        ),
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            help="--format dvc: a git+DVC repository; `dvc add` the version there and commit it "
            "(default --out: datasets).",
        ),
    ] = None,
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a version's rows (item_id, external_id, item_hash, label, source, split,
    resolution_id, payload); --format dvc writes OUT/<id[:12]>/ ready for `dvc add`, and with
    --repo runs `dvc add` and `git commit` in that repository."""
    tracked = None
    if repo is not None:
        if fmt is not ExportFormat.DVC:
            raise Invalid("--repo is for --format dvc: export with --format dvc --repo PATH")
        from loopwright.integrations import dvc

        repo = dvc.check_repo(repo)
        out_path = dvc.inside(repo, out_path)
    elif out_path is None:
        raise Invalid("give --out PATH (or --format dvc --repo PATH)")
    loop = open_loop(db, project)
    path = loop.export_dataset(version, fmt.value, out_path)
    if repo is not None:
        from loopwright.integrations import dvc

        message = f"loopwright: dataset version {path.name} of {loop.project.name}"
        tracked = dvc.track(repo, path, message)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digests = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    if as_json:
        body: dict[str, Any] = {"path": str(path), "format": fmt.value, "files": digests}
        if tracked is not None:
            body |= {"dvc_file": str(tracked.dvc_file), "commit": tracked.commit, "md5": tracked.md5}
        _print_json(body)
        return
    out.print(f"wrote {path}")
    for name, digest in digests.items():
        out.print(f"  {name}  sha256 {digest}")
    if tracked is not None:
        done = f"committed {tracked.commit[:12]}" if tracked.commit else "already committed"
        out.print(f"dvc add: {tracked.dvc_file} (md5 {tracked.md5}), {done}")


# -- models --------------------------------------------------------------------------------


def _evidence(m: ModelVersion) -> dict[str, Any] | None:
    from loopwright.loop.registry import evidence

    return evidence(m)


def _model_dict(m: ModelVersion, aliases: Aliases) -> dict[str, Any]:
    return {
        "version": m.version,
        "id": m.id,
        "status": m.status.value,
        "aliases": aliases.of(m),
        "dataset_version": m.dataset_version_id,
        "config_hash": m.config_hash,
        "seed": m.seed,
        "metrics": m.metrics,
        "gate": _evidence(m),
        "created_at": _iso(m.created_at),
        "promoted_at": _iso(m.promoted_at),
        "model": m.ref,
        "kind": m.kind,
        "artifact_uri": m.artifact_uri,
    }


@models_app.command("list")
def models_list(db: DbOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Every model version with its status, aliases, dataset and gate verdict."""
    loop = open_loop(db, project)
    aliases = loop.model_aliases()
    rows = [_model_dict(m, aliases) for m in loop.models()]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no model versions yet: retrain once enough labels are resolved")
        return
    table = Table(title=f"model versions of {loop.project.name}")
    for col in ("version", "status", "aliases", "dataset", "eval acc", "gate", "promoted"):
        table.add_column(col)
    for r in rows:
        acc = r["metrics"].get("eval_accuracy")
        gate = r["gate"]
        verdict = (
            "-" if gate is None else f"{'passed' if gate.get('passed') else 'failed'} {gate.get('test')}"
        )
        table.add_row(
            f"v{r['version']}",
            r["status"],
            ", ".join(r["aliases"]) or "-",
            (r["dataset_version"] or "-")[:12],
            "-" if acc is None else f"{acc:.3f}",
            verdict,
            (r["promoted_at"] or "-")[:19],
        )
    out.print(table)


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="Version number (3, v3) or alias (champion, previous).")],
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """One model version: metrics and gate evidence (test, p-value, interval, counts)."""
    loop = open_loop(db, project)
    row = _model_dict(loop.model(version), loop.model_aliases())
    row["trained_on_erased_items"] = loop.erasure_marks().models.get(row["version"], 0)
    if as_json:
        _print_json(row)
        return
    table = Table(title=f"model version v{row['version']} of {loop.project.name}", show_header=False)
    for key in ("status", "aliases", "dataset_version", "config_hash", "seed", "created_at", "promoted_at"):
        table.add_row(key, _cell(row[key]))
    table.add_row("trained_on_erased_items", str(row["trained_on_erased_items"]))
    for key, value in row["metrics"].items():
        table.add_row(f"metric {key}", _cell(value))
    gate = row["gate"] or {}
    for key in (
        "passed",
        "test",
        "reason",
        "n_eval",
        "challenger_accuracy",
        "accuracy_interval_95",
        "champion_accuracy",
        "champion_version",
        "baseline_accuracy",
        "delta",
        "wins",
        "losses",
        "p_value",
    ):
        if key in gate:
            table.add_row(f"gate {key}", _cell(gate[key]))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _deployment_dict(d: Deployment, aliases: Aliases) -> dict[str, Any]:
    return {
        "champion": _model_dict(d.model, aliases),
        "replaced": None if d.replaced is None else d.replaced.version,
        "manifests": [str(p) for p in d.manifests],
    }


def _print_deployment(verb: str, d: Deployment) -> None:
    was = "" if d.replaced is None else f" (was v{d.replaced.version}, now {verb} from champion)"
    out.print(f"v{d.model.version} is the champion{was}")
    for p in d.manifests:
        out.print(f"  wrote {p}")


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Version number (3, v3) or alias (previous).")],
    env: EnvOption = None,
    deploy_dir: DeployDirOption = None,
    db: DbOption = None,
    project: ProjectOption = None,
    actor: Annotated[str, typer.Option(help="Who promotes, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Make a version the champion; with --deploy-dir write its manifest for dev (and --env)."""
    loop = open_loop(db, project)
    if deploy_dir is None:
        if env:
            raise Invalid(
                "--env writes deployment manifests: give --deploy-dir DIR (or LOOPWRIGHT_DEPLOY_DIR)"
            )
        before = loop.model_aliases().champion
        model = loop.promote(loop.model(version).version, actor)
        replaced = before if before is not None and before.id != model.id else None
        from loopwright.loop.registry import Deployment

        result = Deployment(model, replaced, ())
    else:
        result = loop.deploy(deploy_dir, env or (), version, actor)
    if as_json:
        _print_json(_deployment_dict(result, loop.model_aliases()))
        return
    _print_deployment("retired", result)


@models_app.command("rollback")
def models_rollback(
    env: EnvOption = None,
    deploy_dir: DeployDirOption = None,
    db: DbOption = None,
    project: ProjectOption = None,
    actor: Annotated[str, typer.Option(help="Who rolls back, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Make the previous champion the champion again and retire the current one; with
    --deploy-dir rewrite dev, --env and every environment that ran the retired version."""
    loop = open_loop(db, project)
    if deploy_dir is None and env:
        raise Invalid("--env writes deployment manifests: give --deploy-dir DIR (or LOOPWRIGHT_DEPLOY_DIR)")
    result = loop.rollback(actor, deploy_dir, env or ())
    if as_json:
        _print_json(_deployment_dict(result, loop.model_aliases()))
        return
    _print_deployment("rolled back", result)


# -- models that live elsewhere ----------------------------------------------------------------


@models_app.command("register")
def models_register(
    model: Annotated[str, typer.Argument(help="<name>@<version> of a model your pipeline trained.")],
    artifact_uri: Annotated[str | None, typer.Option(help="Where its artifact lives.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="The dataset version it was trained on (id, prefix, latest)."),
    ] = None,
    metadata: Annotated[str | None, typer.Option(help="Free metadata as a JSON object.")] = None,
    db: DbOption = None,
    project: ProjectOption = None,
    actor: Annotated[str, typer.Option(help="Who registers, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Register a version trained elsewhere as a candidate: then upload and gate it."""
    name, at, tag = model.rpartition("@")
    if not at:
        raise Invalid(f"{model!r} is not <name>@<version>")
    try:
        meta = None if metadata is None else json.loads(metadata)
    except ValueError as exc:
        raise Invalid(f"--metadata is not JSON: {exc}") from None
    loop = open_loop(db, project)
    m = loop.register_model(name, tag, artifact_uri, dataset, meta, actor=actor)
    if as_json:
        _print_json(_model_dict(m, loop.model_aliases()))
        return
    out.print(
        f"registered {m.ref} as v{m.version} ({m.status.value}), dataset {(m.dataset_version_id or '-')[:12]}"
    )


@models_app.command("upload")
def models_upload(
    model: Annotated[str, typer.Argument(help="<name>@<version> (or v3) of a registered version.")],
    predictions: Annotated[
        Path, typer.Argument(help="JSONL: one {external_id, probabilities: {label: p}} per line.")
    ],
    db: DbOption = None,
    project: ProjectOption = None,
    actor: Annotated[str, typer.Option(help="Who uploads, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Upload its probabilities on the evaluation split of the dataset it was trained on."""
    rows: dict[str, Any] = {}
    try:
        lines = predictions.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise Invalid(f"cannot read {predictions}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[str(row["external_id"])] = row["probabilities"]
        except (ValueError, KeyError, TypeError):
            raise Invalid(f"{predictions}:{n}: expected {{external_id, probabilities}}") from None
    loop = open_loop(db, project)
    done = loop.upload_predictions(model, rows, actor)
    if as_json:
        _print_json(done)
        return
    out.print(f"stored {done['stored']} predictions of {done['model']} ({done['eval_items']} eval items)")


@models_app.command("gate")
def models_gate(
    model: Annotated[str, typer.Argument(help="<name>@<version> (or v3) of a registered version.")],
    env: EnvOption = None,
    deploy_dir: DeployDirOption = None,
    db: DbOption = None,
    project: ProjectOption = None,
    actor: Annotated[str, typer.Option(help="Who gates, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Gate a registered version against the champion; promote it if it passes and, with
    --deploy-dir, write its manifests (naming its artifact URI)."""
    if deploy_dir is None and env:
        raise Invalid("--env writes deployment manifests: give --deploy-dir DIR (or LOOPWRIGHT_DEPLOY_DIR)")
    loop = open_loop(db, project)
    result = loop.gate(model, actor, deploy_dir, env or ())
    if as_json:
        body = _model_dict(loop.model(result.model.version), loop.model_aliases())
        _print_json(
            {"model": body, "promoted": result.promoted, "manifests": [str(p) for p in result.manifests]}
        )
        return
    verdict = "promoted to champion" if result.promoted else "rejected"
    out.print(f"{result.model.ref}: {verdict} — {result.gate.reason}")
    for p in result.manifests:
        out.print(f"  wrote {p}")
