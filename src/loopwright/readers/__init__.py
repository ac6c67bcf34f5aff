"""Readers: CSV, JSONL and Parquet files (local or on an object store) → the record dicts
that :func:`loopwright.loop.ingest` takes, streamed in batches, one :class:`Row` per row."""

from loopwright.readers.columns import ColumnMap, Row
from loopwright.readers.files import FORMATS, detect_format, read_rows

__all__ = ["FORMATS", "ColumnMap", "Row", "detect_format", "read_rows"]
