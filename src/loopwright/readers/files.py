"""Streaming CSV, JSONL and Parquet into :class:`Row` batches without loading a whole file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from loopwright.config import ProjectConfig
from loopwright.errors import Invalid
from loopwright.readers.columns import ColumnMap, Row, to_record
from loopwright.readers.source import open_binary

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def detect_format(url: str) -> str:
    """The format named by the file's suffix; Invalid when it names none."""
    name = url.rsplit("/", 1)[-1].lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise Invalid(f"{url}: cannot tell the format from the name; pass --format {'|'.join(FORMATS)}")


def parquet_rows(url: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """How many rows a Parquet file holds (its footer says; nothing else is read)."""
    import pyarrow.parquet as pq

    with open_binary(url, storage_options) as f:
        try:
            return int(pq.ParquetFile(f).metadata.num_rows)
        except Exception as exc:
            raise Invalid(f"{url}: not a readable Parquet file (truncated or corrupt): {exc}") from None


def read_rows(
    url: str,
    cmap: ColumnMap,
    config: ProjectConfig,
    *,
    fmt: str | None = None,
    batch_size: int = 5_000,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[list[Row]]:
    """Batches of at most ``batch_size`` rows, in file order. A row that cannot be read or
    mapped is a Row with a ``problem``; a file that cannot be read at all raises Invalid."""
    fmt = fmt or detect_format(url)
    if fmt not in FORMATS:
        raise Invalid(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    reader = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[fmt]
    batch: list[Row] = []
    with open_binary(url, storage_options) as f:
        for row in reader(f, url, cmap, config):
            batch.append(row)
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _missing(url: str, have: list[str], cmap: ColumnMap) -> None:
    if missing := [c for c in cmap.columns() if c not in have]:
        raise Invalid(f"{url}: no column(s) {missing}; the file has {have}")


def _parquet(f: Any, url: str, cmap: ColumnMap, config: ProjectConfig) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
    except Exception as exc:
        raise Invalid(f"{url}: not a readable Parquet file (truncated or corrupt): {exc}") from None
    _missing(url, pf.schema_arrow.names, cmap)
    columns = cmap.columns()
    for group in range(pf.num_row_groups):
        at = 0
        try:
            for batch in pf.iter_batches(batch_size=8_192, row_groups=[group], columns=columns):
                for values in batch.to_pylist():
                    record, problem = to_record(values, cmap, config, text_typed=False)
                    yield Row(f"row group {group}, row {at}", record, problem)
                    at += 1
        except Exception as exc:  # a corrupt row group: report it, read the next
            left = pf.metadata.row_group(group).num_rows - at
            yield Row(f"row group {group}, rows {at}-{at + left - 1}", None, f"unreadable: {exc}")


def _csv(f: Any, url: str, cmap: ColumnMap, config: ProjectConfig) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.csv as pc

    header = f.readline().decode("utf-8-sig")
    try:
        names = next(csv.reader([header]))
    except (StopIteration, csv.Error):
        raise Invalid(f"{url}: line 1: no CSV header") from None
    _missing(url, names, cmap)
    bad: list[Row] = []

    def invalid(row: Any) -> str:
        text = row.text if len(row.text) <= 500 else row.text[:500] + "…"
        problem = f"expected {row.expected_columns} columns, found {row.actual_columns} (a broken quote?)"
        bad.append(Row(f"row {row.number}", None, problem, text))
        return "skip"

    try:
        reader = pc.open_csv(
            f,
            read_options=pc.ReadOptions(column_names=names, use_threads=False, block_size=1 << 22),
            parse_options=pc.ParseOptions(invalid_row_handler=invalid),
            convert_options=pc.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), include_columns=cmap.columns()
            ),
        )
    except pa.ArrowInvalid as exc:
        raise Invalid(f"{url}: not readable as CSV: {exc}") from None
    at = 1  # data rows start after the header
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            yield from bad
            raise Invalid(f"{url}: CSV unreadable after row {at}: {exc}") from None
        yield from bad
        bad.clear()
        for values in batch.to_pylist():
            at += 1
            record, problem = to_record(values, cmap, config, text_typed=True)
            yield Row(f"row {at}", record, problem)
    yield from bad


def _jsonl(f: Any, url: str, cmap: ColumnMap, config: ProjectConfig) -> Iterator[Row]:
    for number, raw in enumerate(io.TextIOWrapper(f, encoding="utf-8", errors="replace"), start=1):
        line = raw.strip()
        if not line:
            continue
        ref = f"line {number}"
        try:
            values = json.loads(line)
        except ValueError as exc:
            yield Row(ref, None, f"not valid JSON: {exc}", line[:500])
            continue
        if not isinstance(values, dict):
            yield Row(ref, None, f"must be a JSON object, not {type(values).__name__}", line[:500])
            continue
        if isinstance(values.get("payload"), dict):  # already in ingest's record shape
            ext = values.get(cmap.id_col, values.get("external_id"))
            keep = ("payload", "metadata", "prediction", "embedding")
            record = {"external_id": ext, **{k: values[k] for k in keep if k in values}}
            yield Row(ref, record, None if ext not in (None, "") else f"no id in {cmap.id_col!r}")
            continue
        mapped, problem = to_record(values, cmap, config, text_typed=False)
        yield Row(ref, mapped, problem)
