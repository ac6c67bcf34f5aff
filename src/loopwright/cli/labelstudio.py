"""``loopwright labelstudio import FILE.json`` and ``loopwright labelstudio export --out FILE.json``:
a Label Studio project's JSON export in (annotators kept as ``ls:<email or id>``), and every
item with its annotations, prediction and resolved label back out in the same format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop
from loopwright.errors import Invalid

out = Console()
labelstudio_app = typer.Typer(
    help="Label Studio: import its JSON export with every annotator, export back in its format.",
    no_args_is_help=True,
)

FromName = Annotated[
    str | None,
    typer.Option("--from-name", help="The <Choices> control to read (needed when tasks use several)."),
]


@labelstudio_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A Label Studio JSON export (Export → JSON).", dir_okay=False)],
    db: DbOption = None,
    project: ProjectOption = None,
    from_name: FromName = None,
    id_field: Annotated[
        str | None,
        typer.Option("--id-field", help="Data field holding the external id (default: ls-<task id>)."),
    ] = None,
    predictions: Annotated[
        bool, typer.Option("--predictions/--no-predictions", help="Carry scored predictions with the items.")
    ] = True,
    actor: Annotated[str, typer.Option(help="Who imports, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Import tasks, annotations (one annotator each) and scored predictions; idempotent."""
    from loopwright.integrations import labelstudio as ls
    from loopwright.loop.history import multilabel

    try:
        text = file.read_bytes()
    except OSError as exc:
        raise Invalid(f"cannot read {file}: {exc.strerror}") from None
    loop = open_loop(db, project)
    multi = multilabel(loop.config)
    parsed = ls.parse_export(
        ls.load(text), loop.config.labels, multilabel=multi, from_name=from_name, id_field=id_field,
        predictions=predictions,
    )  # fmt: skip
    report = loop.import_history(parsed.items, ls.SOURCE, actor)
    row = {
        "project": loop.project.name,
        "tasks": parsed.tasks,
        "items_created": report.items_created,
        "items_existing": report.items_existing,
        "annotations_added": report.annotations_added,
        "annotations_existing": report.annotations_existing,
        "annotators": sorted(parsed.annotators),
        "resolved": report.resolved,
        "escalated": report.escalated,
        "predictions_carried": parsed.predictions,
        "left_out": {
            "cancelled": parsed.cancelled,
            "empty": parsed.empty,
            "replaced_by_newer": parsed.replaced,
            "predictions": parsed.predictions_skipped,
        },
    }
    if as_json:
        print(json.dumps(row, indent=2, ensure_ascii=False))
        return
    out.print(
        f"{loop.project.name}: {parsed.tasks} tasks → {report.items_created} new items "
        f"({report.items_existing} already in), {report.annotations_added} annotations added "
        f"({report.annotations_existing} already in) by {len(parsed.annotators)} annotators, "
        f"{report.resolved} resolved, {report.escalated} escalated, {parsed.predictions} predictions",
        markup=False,
        highlight=False,
    )


@labelstudio_app.command("export")
def export_command(
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the Label Studio JSON.", dir_okay=False)
    ],
    db: DbOption = None,
    project: ProjectOption = None,
    from_name: Annotated[
        str, typer.Option("--from-name", help="<Choices> name for items not imported from Label Studio.")
    ] = "label",
    to_name: Annotated[
        str | None,
        typer.Option("--to-name", help="Object tag name for those items (default: the input field)."),
    ] = None,
) -> None:
    """Write every item with its annotations, prediction and resolved label as Label Studio tasks."""
    from loopwright.integrations import labelstudio as ls
    from loopwright.loop.history import multilabel

    loop = open_loop(db, project)
    default = ls.Control(from_name, to_name or loop.config.input_key)
    tasks = ls.to_export(loop.export_history(), default, multilabel(loop.config))
    part = out_path.with_name(out_path.name + ".part")
    part.write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    part.replace(out_path)
    n = sum(len(t["annotations"]) for t in tasks)
    resolved = sum("resolved" in t["meta"]["loopwright"] for t in tasks)
    out.print(
        f"wrote {len(tasks)} tasks ({n} annotations, {resolved} resolved) to {out_path}",
        markup=False,
        highlight=False,
    )
