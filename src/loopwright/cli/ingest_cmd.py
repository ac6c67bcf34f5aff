"""``loopwright ingest FILE``: import a CSV, JSONL or Parquet file (local or ``s3://…``) in
batches with a progress bar; bad rows go to a rejects report and never stop the import."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

from loopwright.cli.options import DbOption, JsonOption, ProjectOption, open_loop
from loopwright.errors import Invalid

err = Console(stderr=True)
out = Console()

_Cols = Annotated[str | None, typer.Option(help="Comma-separated column names.")]


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (value or "").split(",") if c.strip())


def _prediction_cols(value: str | None, labels: list[str]) -> tuple[tuple[str, str], ...]:
    """``label=column`` pairs; a bare name is both the label and its column."""
    pairs = []
    for part in _split(value):
        label, _, col = part.partition("=")
        if label not in labels:
            raise Invalid(f"--prediction-cols: {label!r} is not a label of this project ({labels})")
        pairs.append((label, col or label))
    return tuple(pairs)


class _Rejects:
    """The rejects report, written to ``path.part`` as rows come and moved into place at the end."""

    def __init__(self, path: Path) -> None:
        self.path, self.n = path, 0
        self._part = path.with_name(path.name + ".part")
        self._f: IO[str] | None = None
        self._jsonl = path.suffix.lower() in (".jsonl", ".ndjson")

    def __call__(self, r: Any) -> None:
        if self._f is None:
            self._f = open(self._part, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            if not self._jsonl:
                self._csv = csv.writer(self._f)
                self._csv.writerow(["where", "external_id", "reason", "raw"])
        self.n += 1
        if self._jsonl:
            row = {"where": r.ref, "external_id": r.external_id, "reason": r.reason, "raw": r.raw}
            self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            self._csv.writerow([r.ref, r.external_id or "", r.reason, r.raw or ""])

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            os.replace(self._part, self.path)


def ingest_command(
    source: Annotated[str, typer.Argument(help="A file path or URL (s3://bucket/key, file://…).")],
    db: DbOption = None,
    project: ProjectOption = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000, help="Rows per batch.")] = 5_000,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from the name).")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Where to write rejected rows with reasons (.csv or .jsonl); default FILE.rejects.csv"
        ),
    ] = None,
    id_col: Annotated[
        str, typer.Option("--id-col", help="The column holding the external id.")
    ] = "external_id",
    metadata_cols: _Cols = None,
    media_cols: Annotated[
        str | None, typer.Option(help="Columns of image paths or URLs: kept as references, never copied.")
    ] = None,
    prediction_cols: Annotated[
        str | None,
        typer.Option(help="Probability columns, label=column or a column named as the label."),
    ] = None,
    prediction_model: Annotated[
        str | None, typer.Option(help="name@version of the model that made --prediction-cols.")
    ] = None,
    embedding_col: Annotated[str | None, typer.Option(help="A column holding an embedding.")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, moto…).")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who ingests, for the event log.")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Import a CSV, JSONL or Parquet file: streamed in batches, resumable (rows already in are
    skipped), each bad row reported with its reason while the rest goes in."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from loopwright.readers import ColumnMap, detect_format, read_rows
    from loopwright.readers.files import parquet_rows

    fmt = fmt or detect_format(source)
    if prediction_cols and not prediction_model:
        raise Invalid("--prediction-cols needs --prediction-model name@version")
    loop = open_loop(db, project)
    config = loop.config
    cmap = ColumnMap.for_project(
        config,
        id_col=id_col,
        metadata_cols=_split(metadata_cols),
        media_cols=_split(media_cols),
        prediction_cols=_prediction_cols(prediction_cols, config.labels),
        prediction_model=prediction_model,
        embedding_col=embedding_col,
    )
    options = {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else None
    total = parquet_rows(source, options) if fmt == "parquet" else None
    name = source.rstrip("/").rsplit("/", 1)[-1]
    report = _Rejects(rejects or Path(f"{name}.rejects.csv"))
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,} rows · {task.fields[rate]:,.0f} rows/s · {task.fields[bad]} rejected"),
        TimeElapsedColumn(),
        console=err,
    )
    with progress:
        bar = progress.add_task("rows", total=total, rate=0.0, bad=0)

        def on_batch(s: Any) -> None:
            rate = s.read / max(time.perf_counter() - started, 1e-9)
            progress.update(bar, completed=s.read, rate=rate, bad=s.rejected)

        try:
            rows = read_rows(source, cmap, config, fmt=fmt, batch_size=batch, storage_options=options)
            summary = loop.import_rows(rows, report, on_batch, actor)
        finally:
            report.close()
    seconds = time.perf_counter() - started
    result = {
        "source": source,
        "read": summary.read,
        "ingested": summary.ingested,
        "skipped": summary.skipped,
        "rejected": summary.rejected,
        "rejected_by_reason": dict(summary.reasons.most_common()),
        "to_review": summary.to_review,
        "near_duplicates": summary.near_duplicates,
        "seconds": round(seconds, 3),
        "rows_per_second": round(summary.read / max(seconds, 1e-9), 1),
        "rejects_report": str(report.path) if report.n else None,
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    out.print(
        f"{summary.read:,} rows read: {summary.ingested:,} ingested, {summary.skipped:,} already in, "
        f"{summary.rejected:,} rejected ({result['rows_per_second']:,.0f} rows/s)"
    )
    for reason, n in summary.reasons.most_common(10):
        out.print(f"  {n:>8,}  {reason}", markup=False, highlight=False)
    if report.n:
        out.print(f"rejected rows with reasons: {report.path}", markup=False, highlight=False)
