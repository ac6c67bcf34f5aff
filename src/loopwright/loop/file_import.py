"""Import: batches of rows read from a file → ingest, one record at a time checked, so a bad
row is reported and never costs the rest of its batch; rows already in are skipped."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from loopwright.domain import Route, content_hash
from loopwright.errors import Conflict, Invalid
from loopwright.loop.context import Context
from loopwright.loop.ingest import IngestReport, ingest, validate_records


class SourceRow(Protocol):  # loopwright.readers.Row, seen from here
    @property
    def ref(self) -> str: ...
    @property
    def record(self) -> dict[str, Any] | None: ...
    @property
    def problem(self) -> str | None: ...
    @property
    def raw(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Rejected:
    ref: str  # where in the file
    external_id: str | None
    reason: str
    raw: str | None = None


@dataclass(slots=True)
class ImportSummary:
    read: int = 0  # rows seen in the file
    ingested: int = 0  # new items written
    skipped: int = 0  # already in with the same content (a re-run, or a repeat in the file)
    rejected: int = 0
    to_review: int = 0
    near_duplicates: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # rejected rows by kind of reason


_INDEX = re.compile(r"^\[(\d+)\]")


_PARTICULARS = re.compile(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]|\b\d+(\.\d+)?\b|(?<=: )[^:;]*(?= is not)")


def _kind(reason: str) -> str:
    """A reason without its particulars, to count rejects by: ``column 'y': 'x' is not a
    number`` → ``column …: … is not a number``."""
    return _PARTICULARS.sub("…", reason)[:120]


def import_rows(
    ctx: Context,
    batches: Iterable[Sequence[SourceRow]],
    on_reject: Callable[[Rejected], None],
    on_batch: Callable[[ImportSummary], None] | None = None,
    actor: str = "system",
    ingest_fn: Callable[[list[dict[str, Any]], str], IngestReport] | None = None,
) -> ImportSummary:
    """Ingest every good row of ``batches``; each bad one goes to ``on_reject`` with its reason.

    Idempotent by external id: rows whose item is in with the same content are skipped (a rerun
    after a crash completes the import; every row ends in exactly once)."""
    summary = ImportSummary()
    write = ingest_fn or (lambda records, who: ingest(ctx, records, who))

    def reject(ref: str, ext: Any, reason: str, raw: str | None = None) -> None:
        summary.rejected += 1
        summary.reasons[_kind(reason)] += 1
        on_reject(Rejected(ref, None if ext is None else str(ext), reason, raw))

    for batch in batches:
        summary.read += len(batch)
        candidates: list[tuple[str, dict[str, Any]]] = []
        for row in batch:
            if row.record is None or row.problem:
                ext = None if row.record is None else row.record.get("external_id")
                reject(row.ref, ext, row.problem or "unreadable", row.raw)
            else:
                candidates.append((row.ref, row.record))
        good = _fresh(ctx, candidates, reject, summary)
        good = _valid(ctx, good, reject)
        if good:
            try:
                report = write([r for _, r in good], actor)
            except Conflict:  # written meanwhile by someone else with other content: one by one
                report = None
                for ref, rec in good:
                    try:
                        _count(write([rec], actor), summary)
                    except Conflict as exc:
                        reject(ref, rec.get("external_id"), str(exc))
            if report is not None:
                _count(report, summary)
        if on_batch is not None:
            on_batch(summary)
    return summary


def _count(report: IngestReport, summary: ImportSummary) -> None:
    summary.ingested += report.created
    summary.skipped += report.duplicates
    summary.to_review += report.count(route=Route.REVIEW)
    summary.near_duplicates += sum(
        1 for o in report.outcomes if not o.duplicate and o.reason == "near_duplicate"
    )


def _fresh(
    ctx: Context,
    rows: list[tuple[str, dict[str, Any]]],
    reject: Callable[..., None],
    summary: ImportSummary,
) -> list[tuple[str, dict[str, Any]]]:
    """Rows whose item is not in yet: the same content already in is skipped, other content is
    rejected, and a second row with an id seen earlier in the batch is a repeat or a clash."""
    ids = [str(r.get("external_id")) for _, r in rows]
    with ctx.store.unit_of_work() as uow:
        existing = uow.items.by_external_ids(ctx.project.id, ids)
    seen: dict[str, str] = {}
    out = []
    for (ref, rec), ext in zip(rows, ids, strict=True):
        digest = content_hash(rec.get("payload"))
        if (old := existing.get(ext)) is not None or ext in seen:
            earlier = old.content_hash if old is not None else seen[ext]
            if earlier == digest:
                summary.skipped += 1
            else:
                reject(ref, ext, f"external id {ext!r} is already in with different content")
            continue
        seen[ext] = digest
        out.append((ref, rec))
    return out


def _valid(
    ctx: Context, rows: list[tuple[str, dict[str, Any]]], reject: Callable[..., None]
) -> list[tuple[str, dict[str, Any]]]:
    """The rows ingest accepts, each refused one rejected with ingest's own reasons."""
    for _ in range(3):  # a second pass only when a record's check depends on another's
        if not rows:
            return rows
        try:
            validate_records(ctx, [r for _, r in rows])
            return rows
        except Invalid as exc:
            bad: dict[int, list[str]] = {}
            for where, message in exc.errors:
                if m := _INDEX.match(where):
                    rest = where[m.end() :].lstrip(".")
                    bad.setdefault(int(m.group(1)), []).append(f"{rest}: {message}" if rest else message)
            if not bad:
                raise
            for i, reasons in sorted(bad.items()):
                ref, rec = rows[i]
                reject(ref, rec.get("external_id"), "; ".join(reasons))
            rows = [r for i, r in enumerate(rows) if i not in bad]
    return rows
