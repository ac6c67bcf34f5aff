"""``loopwright retrain`` and ``loopwright gold FILE | --from-audits``: the daily verbs the
Python and REST APIs already have (``ingest`` lives in :mod:`.ingest_cmd`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop
from loopwright.errors import Invalid

if TYPE_CHECKING:
    from loopwright.loop.audit_gold import AuditGold

out = Console()


def retrain_command(
    db: DbOption = None,
    project: ProjectOption = None,
    if_due: Annotated[
        bool, typer.Option("--if-due", help="Only when the retrain policy says enough new labels arrived.")
    ] = False,
    actor: Annotated[str, typer.Option(help="Who retrains, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Snapshot the resolved labels, train a challenger, gate it and promote it if it passes."""
    loop = open_loop(db, project)
    outcome = loop.maybe_retrain(actor) if if_due else loop.retrain(actor)
    if outcome is None:
        why = (
            "the model lives elsewhere: model.retrain_due was emitted for your pipeline"
            if loop.config.model.lives_elsewhere
            else f"not due yet (retrain.every_n_labels {loop.config.retrain.every_n_labels})"
        )
        if as_json:
            print(json.dumps({"retrained": False, "reason": why}))
        else:
            out.print(f"no retrain: {why}", markup=False, highlight=False)
        return
    result: dict[str, Any] = {
        "retrained": True,
        "version": outcome.model.version,
        "promoted": outcome.promoted,
        "dataset_version": outcome.dataset.id,
        "gate": outcome.gate.reason,
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    verdict = "promoted to champion" if outcome.promoted else "kept as a challenger (gate failed)"
    out.print(
        f"model v{outcome.model.version} trained on dataset {outcome.dataset.id[:12]}: {verdict}",
        markup=False,
        highlight=False,
    )
    out.print(f"gate: {outcome.gate.reason}", markup=False, highlight=False)


def gold_command(
    source: Annotated[
        str | None, typer.Argument(help="A CSV or JSONL file with an id, the payload and a label.")
    ] = None,
    from_audits: Annotated[
        bool,
        typer.Option(
            "--from-audits",
            help="Instead of a file: make gold of the audited items the champion gets wrong "
            "(two or more audit answers, all agreeing), on the tiers that see its suggestion.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --from-audits: list the items, add nothing.")
    ] = False,
    db: DbOption = None,
    project: ProjectOption = None,
    label_col: Annotated[
        str, typer.Option("--label-col", help="The column holding the known label.")
    ] = "label",
    id_col: Annotated[
        str, typer.Option("--id-col", help="The column holding the external id.")
    ] = "external_id",
    tiers: Annotated[
        str | None, typer.Option("--tiers", help="Tiers that get the gold tasks, e.g. 1,2 (default: all).")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who adds them, for the event log.")] = "cli",
) -> None:
    """Add gold (known-answer) items: every annotator answers some first, then a share of claims."""
    from loopwright.readers import ColumnMap, detect_format, read_rows

    if (source is None) == (not from_audits):
        raise Invalid("give a gold file or --from-audits (one of them)")
    loop = open_loop(db, project)
    tier_list = None if tiers is None else _tiers(tiers)
    if source is None:
        _gold_from_audits(loop.gold_from_audits(tier_list, dry_run, actor), dry_run)
        return
    cmap = ColumnMap.for_project(loop.config, id_col=id_col, metadata_cols=(label_col,))
    records, problems = [], []
    rows = (row for batch in read_rows(source, cmap, loop.config, fmt=detect_format(source)) for row in batch)
    for row in rows:
        if row.record is None:
            problems.append((row.ref, row.problem or "unreadable"))
            continue
        record = dict(row.record)
        metadata = dict(record.get("metadata") or {})
        label = metadata.pop(label_col, None)
        if label in (None, ""):
            problems.append((row.ref, f"no {label_col!r} value"))
            continue
        records.append(record | {"metadata": metadata, "label": str(label)})
    if problems:
        raise Invalid(f"{len(problems)} gold row(s) rejected; nothing was added", problems)
    tasks = loop.add_gold(records, tier_list, actor)
    out.print(f"added {len(records)} gold item(s) as {len(tasks)} gold task(s)")


def _gold_from_audits(made: AuditGold, dry_run: bool) -> None:
    tiers = ",".join(map(str, made.tiers))
    for c in made.candidates:
        out.print(
            f"{c.external_id}  gold {c.label}  champion {c.predicted} ({c.confidence:.2f})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    n = len(made.candidates)
    if dry_run:
        out.print(
            f"{n} audited item(s) the champion gets wrong would become gold on tier(s) {tiers}",
            soft_wrap=True,
        )
    else:
        out.print(
            f"made {n} audited item(s) gold as {made.added} gold task(s) on tier(s) {tiers}", soft_wrap=True
        )


def _tiers(text: str) -> list[int]:
    try:
        found = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise Invalid(f"--tiers must be tier numbers separated by commas, not {text!r}") from None
    if not found:
        raise Invalid("--tiers names no tier")
    return found
