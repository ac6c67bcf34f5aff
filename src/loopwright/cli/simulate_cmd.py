"""``loopwright simulate``: pool-based active learning with simulated annotators, one strategy."""

from __future__ import annotations

import csv
import itertools
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopwright.cli.crowd import read_columns
from loopwright.errors import Invalid

if TYPE_CHECKING:
    from loopwright.config import ProjectConfig


class Choice(StrEnum):
    auto = "auto"  # the default: active.strategies.DEFAULT_STRATEGY
    random = "random"
    least_confidence = "least-confidence"
    margin = "margin"
    entropy = "entropy"
    qbc = "qbc"
    kcenter = "kcenter"
    hybrid = "hybrid"


class Annotators(StrEnum):
    oracle = "oracle"
    noisy = "noisy"


def load_dataset(spec: str, text_col: str, label_col: str) -> tuple[Any, list[str], ProjectConfig]:
    """``digits`` or ``csv:PATH`` (text in ``text_col``, label in ``label_col``)."""
    from loopwright.active.experiment import digits, text_config  # scikit-learn: on use only

    if spec == "digits":
        X, y, config = digits()
        return X, y.tolist(), config
    if not spec.startswith("csv:"):
        raise Invalid(f"unknown dataset {spec!r}: use 'digits' or 'csv:PATH'")
    path = Path(spec[4:])
    if not path.is_file():
        raise Invalid(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as f:
        if not any(any(cell.strip() for cell in row) for row in itertools.islice(csv.reader(f), 1, None)):
            raise Invalid(f"{path}: no data rows, so the pool is empty")
    texts, labels = read_columns(path, [text_col, label_col])
    return texts, labels, text_config(labels)


def simulate_command(
    dataset: Annotated[
        str, typer.Option(help="'digits' or 'csv:PATH' (a CSV with a text and a label column).")
    ],
    budget: Annotated[int, typer.Option(min=1, help="Labels to spend per seed, seed set included.")],
    strategy: Annotated[
        Choice, typer.Option(help="Selection strategy (auto: margin, or hybrid once it proves better).")
    ] = Choice.auto,
    batch: Annotated[int, typer.Option(min=1, help="Items labelled per round.")] = 10,
    seeds: Annotated[int, typer.Option(min=1, help="Runs with seeds 0 … K-1.")] = 1,
    annotators: Annotated[
        Annotators, typer.Option(help="oracle: true labels; noisy: 90 % accurate, seeded per item.")
    ] = Annotators.oracle,
    seed_size: Annotated[
        int | None, typer.Option(min=1, help="Random labels to start from (default: one per class).")
    ] = None,
    text_col: Annotated[str, typer.Option("--text-col", help="CSV column with the text.")] = "text",
    label_col: Annotated[str, typer.Option("--label-col", help="CSV column with the label.")] = "label",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Simulate pool-based active learning: held-out accuracy against labels spent.

    A budget larger than the pool (the data minus its 25 % held-out split) is an error.
    """
    from loopwright.active.experiment import simulate

    X, y, config = load_dataset(dataset, text_col, label_col)
    err = Console(stderr=True)
    with Progress(
        TextColumn(f"[bold]{strategy.value}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("labels"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        bar = progress.add_task("simulate", total=seeds * budget)

        def on_step(k: int, labels: int) -> None:
            progress.update(bar, completed=k * budget + labels)

        result = simulate(
            X,
            y,
            config,
            strategy.value,
            budget,
            batch,
            list(range(seeds)),
            dataset=dataset,
            annotators=annotators.value,
            seed_size=seed_size,
            on_step=on_step,
        )
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    table = Table("seed", "labels", "held-out accuracy", "labels to 95 %", "labels to 98 %")
    table.title = f"{result.strategy} on {result.dataset} (full-data accuracy {result.full_accuracy:.3f})"
    for run in result.runs:
        n, acc = run.curve[-1]
        table.add_row(str(run.seed), str(n), f"{acc:.3f}", *(_fmt(v) for v in run.labels_to_target.values()))
    table.add_row("median", "", "", *(_fmt(v) for v in result.labels_to_target.values()))
    Console().print(table)


def _fmt(value: int | None) -> str:
    return "not reached" if value is None else str(value)
