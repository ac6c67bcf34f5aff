"""``loopwright aggregate`` and ``loopwright agreement``: crowd answers in a CSV file, stdlib csv."""

from __future__ import annotations

import csv
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loopwright.errors import Invalid

out = Console()


class Method(StrEnum):
    mv = "mv"
    wmv = "wmv"
    ds = "ds"
    ds1 = "ds1"


# class names in loopwright.consensus (imported when the command runs)
_MODELS = {
    "mv": "MajorityVote",
    "wmv": "WeightedMajorityVote",
    "ds": "DawidSkene",
    "ds1": "OneCoinDawidSkene",
}

AnswersArg = Annotated[Path, typer.Argument(help="CSV with one answer per row.", exists=True, dir_okay=False)]
ItemCol = Annotated[str, typer.Option("--item-col", help="Column naming the item.")]
WorkerCol = Annotated[str, typer.Option("--worker-col", help="Column naming the annotator.")]
LabelCol = Annotated[str, typer.Option("--label-col", help="Column holding the answer.")]


def read_columns(path: Path, columns: list[str]) -> list[list[str]]:
    """The given columns of a CSV file; blank lines skipped, empty fields and missing columns refused."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise Invalid(f"{path}: the file is empty")
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise Invalid(
                f"{path}: missing column(s) {', '.join(missing)}; the columns are: {', '.join(header)}"
            )
        pos = [header.index(c) for c in columns]
        values: list[list[str]] = [[] for _ in columns]
        bad: list[int] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            cells = [row[p].strip() if p < len(row) else "" for p in pos]
            if not all(cells):
                bad.append(reader.line_num)
                continue
            for column, cell in zip(values, cells, strict=True):
                column.append(cell)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
        raise Invalid(f"{path}: empty {'/'.join(columns)} field on line(s) {shown}")
    if not values[0]:
        raise Invalid(f"{path}: no answer rows")
    return values


def aggregate(
    answers: AnswersArg,
    out_path: Annotated[Path, typer.Option("--out", help="Where to write item,label,confidence.")],
    method: Annotated[Method, typer.Option(help="mv, wmv (weighted), ds (Dawid-Skene), ds1 (one-coin).")] = (
        Method.ds
    ),
    gold: Annotated[
        Path | None,
        typer.Option(help="CSV of known labels: the item column and --truth-col.", dir_okay=False),
    ] = None,
    truth_col: Annotated[str, typer.Option("--truth-col", help="Label column of the gold file.")] = "truth",
    item_col: ItemCol = "item",
    worker_col: WorkerCol = "worker",
    label_col: LabelCol = "label",
) -> None:
    """Consolidate crowd answers into one label per item, with the posterior of that label."""
    items, workers, labels = read_columns(answers, [item_col, worker_col, label_col])
    known = None
    if gold is not None:
        if not gold.is_file():
            raise Invalid(f"{gold}: no such file")
        gold_items, gold_labels = read_columns(gold, [item_col, truth_col])
        known = dict(zip(gold_items, gold_labels, strict=True))
    from loopwright import consensus  # NumPy and SciPy: only when a command runs

    model = getattr(consensus, _MODELS[method.value])().fit(items, workers, labels, gold=known)
    confidence = model.probas_.max(axis=1)
    with out_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["item", "label", "confidence"])
        for row in zip(model.items_.tolist(), model.labels_.tolist(), confidence.tolist(), strict=True):
            writer.writerow([row[0], row[1], f"{row[2]:.6f}"])
    out.print(f"wrote {len(model.items_)} labels ({method.value}) to {out_path}")


PAIRS_SHOWN = 10


def agreement(
    answers: AnswersArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    item_col: ItemCol = "item",
    worker_col: WorkerCol = "worker",
    label_col: LabelCol = "label",
) -> None:
    """Inter-annotator agreement: percent, Fleiss' κ, Krippendorff's alpha, per label and per pair."""
    from loopwright.consensus import agreement_report

    report = agreement_report(*read_columns(answers, [item_col, worker_col, label_col]))
    if as_json:
        print(json.dumps(report))
        return
    overall = Table(title=f"agreement in {answers.name}", show_header=False)
    for key in ("items", "workers", "answers", "items_with_2_or_more"):
        overall.add_row(key, str(report[key]))
    for key in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
        overall.add_row(key, _fmt(report[key]))
    overall.add_row("annotator pairs (≥ 2 shared items)", str(report["pairs"]["count"]))
    overall.add_row("median Cohen's κ over pairs", _fmt(report["pairs"]["median_cohen_kappa"]))
    out.print(overall)
    per_label = Table("label (one vs rest)", "Fleiss' κ", "Krippendorff's alpha", title="per label")
    for label, row in report["per_label"].items():
        per_label.add_row(label, _fmt(row["fleiss_kappa"]), _fmt(row["krippendorff_alpha"]))
    out.print(per_label)
    pairs = sorted(report["pairs"]["cohen_kappa"], key=lambda p: (p["kappa"] is None, p["kappa"] or 0.0))
    if pairs:
        shown = min(len(pairs), PAIRS_SHOWN)
        worst = Table(
            "annotator", "annotator", "shared items", "Cohen's κ", "Krippendorff's alpha",
            title=f"least-agreeing pairs ({shown} of {len(pairs)}; --json lists all)",
        )  # fmt: skip
        for p in pairs[:shown]:
            worst.add_row(
                p["a"], p["b"], str(p["shared_items"]), _fmt(p["kappa"]), _fmt(p["krippendorff_alpha"])
            )
        out.print(worst)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
