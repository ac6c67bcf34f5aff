"""Dataset versions as a user handles them: find by id prefix, diff two, export to files.

Exports are deterministic: the same version gives the same bytes (rows in the version's order,
by item hash; payloads as canonical JSON; no export time anywhere), and every file is written
to a temporary name beside its target and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Any

from loopwright.domain import DatasetEntry, DatasetVersion, Split
from loopwright.errors import Conflict, Invalid, NotFound
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork

MIN_PREFIX = 6
COLUMNS = ("item_id", "external_id", "item_hash", "label", "source", "split", "resolution_id", "payload")
MANIFEST_FORMAT = "loopwright.dataset/1"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    DVC = "dvc"  # <out>/<id[:12]>/{manifest.json, train.jsonl, eval.jsonl, README.md}
    OFFSETS = "offsets"  # spans: JSONL {id, text, spans: [{start, end, label, text}]}
    CONLL = "conll"  # spans: token TAB BIO tag, a blank line after each document
    COCO = "coco"  # boxes: <out>/<id[:12]>-coco/annotations.json
    YOLO = "yolo"  # boxes: <out>/<id[:12]>-yolo/{classes.txt, <image stem>.txt, …}


STRUCTURED = {"offsets": "spans", "conll": "spans", "coco": "boxes", "yolo": "boxes"}  # format → task


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One item that differs: ``old`` is None when added, ``new`` is None when removed."""

    item_id: int
    external_id: str
    item_hash: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    """What changed from version ``a`` to version ``b``, item by item (matched on the item hash)."""

    a: str
    b: str
    added: tuple[DiffRow, ...]
    relabelled: tuple[DiffRow, ...]
    removed: tuple[DiffRow, ...]
    unchanged: int

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "relabelled": len(self.relabelled),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
        }

    @property
    def transitions(self) -> dict[str, int]:
        """``"old → new"`` label pairs of the relabelled items, with how many items each."""
        pairs = Counter(f"{r.old} → {r.new}" for r in self.relabelled)
        return dict(sorted(pairs.items()))

    def as_dict(self) -> dict[str, Any]:
        def rows(rs: Sequence[DiffRow]) -> list[dict[str, Any]]:
            return [
                {"item_id": r.item_id, "external_id": r.external_id, "item_hash": r.item_hash}
                | ({"old": r.old} if r.old is not None else {})
                | ({"new": r.new} if r.new is not None else {})
                for r in rs
            ]

        return {
            "a": self.a,
            "b": self.b,
            "counts": self.counts,
            "transitions": self.transitions,
            "added": rows(self.added),
            "relabelled": rows(self.relabelled),
            "removed": rows(self.removed),
        }


def resolve(uow: UnitOfWork, project_id: int, ref: str) -> DatasetVersion:
    """The project's version named by ``ref``: a full id, a unique prefix of ≥ 6 characters, or
    ``latest``. NotFound when nothing matches; Invalid for a short or ambiguous prefix."""
    ref = ref.strip().lower()
    if ref == "latest":
        latest = uow.datasets.latest(project_id)
        if latest is None:
            raise NotFound("the project has no dataset versions yet: resolve some labels, then snapshot")
        return latest
    if len(ref) < MIN_PREFIX:
        raise Invalid(
            f"dataset version {ref!r} is too short: give at least {MIN_PREFIX} characters of its id "
            "(see `loopwright datasets list`)"
        )
    found = uow.datasets.ids_with_prefix(project_id, ref)
    if not found:
        raise NotFound(
            f"dataset version {ref!r} does not exist in this project (see `loopwright datasets list`)"
        )
    if len(found) > 1:
        raise Invalid(
            f"dataset version prefix {ref!r} is ambiguous: it matches {len(found)} versions "
            f"({', '.join(found)}); give more characters"
        )
    return uow.datasets.get(found[0])


def diff_versions(a: DatasetVersion, b: DatasetVersion, external_ids: dict[int, str]) -> DatasetDiff:
    """Items added to, relabelled in and removed from ``a`` to make ``b``, each in item-hash order."""
    old = {e.item_hash: e for e in a.entries}
    new = {e.item_hash: e for e in b.entries}

    def row(e: DatasetEntry, before: str | None, after: str | None) -> DiffRow:
        return DiffRow(e.item_id, external_ids.get(e.item_id, ""), e.item_hash, before, after)

    added = tuple(row(new[h], None, new[h].label) for h in sorted(new.keys() - old.keys()))
    removed = tuple(row(old[h], old[h].label, None) for h in sorted(old.keys() - new.keys()))
    both = sorted(old.keys() & new.keys())
    relabelled = tuple(row(new[h], old[h].label, new[h].label) for h in both if old[h].label != new[h].label)
    return DatasetDiff(a.id, b.id, added, relabelled, removed, len(both) - len(relabelled))


def diff(ctx: Context, a: str | None, b: str) -> DatasetDiff:
    """Diff version ``a`` to version ``b``; ``a`` None: ``b``'s parent (Invalid if it has none)."""
    with ctx.store.unit_of_work() as uow:
        new = resolve(uow, ctx.project.id, b)
        if a is None:
            if new.parent_id is None:
                raise Invalid(
                    f"dataset version {new.id[:12]} has no parent: name the version to compare with"
                )
            old = uow.datasets.get(new.parent_id)
        else:
            old = resolve(uow, ctx.project.id, a)
        ids = {e.item_id for e in (*old.entries, *new.entries)}
        external = {i.id: i.external_id for i in uow.items.get_many(sorted(ids))}
    return diff_versions(old, new, external)


def rows(ctx: Context, version: DatasetVersion) -> list[dict[str, Any]]:
    """The export rows of a version, in its order; ``payload`` in canonical key order."""
    with ctx.store.unit_of_work() as uow:
        items = {i.id: i for i in uow.items.get_many([e.item_id for e in version.entries])}
    return [
        {
            "item_id": e.item_id,
            "external_id": items[e.item_id].external_id,
            "item_hash": e.item_hash,
            "label": e.label,
            "source": e.source,
            "split": e.split.value,
            "resolution_id": e.resolution_id,
            "payload": json.loads(_canonical(items[e.item_id].payload)),
            **_task_fields(ctx, e.label, items[e.item_id].payload),
        }
        for e in version.entries
    ]


def _task_fields(ctx: Context, label: str, payload: Any) -> dict[str, Any]:
    """Columns the task type adds: multi-hot (one 0/1 column per label and ``labels``), a rubric's
    ``rating``, a preference's ``preference`` plus ``prompt``/``chosen``/``rejected`` (TRL's form)."""
    if ctx.config.task == "single":
        return {}
    from loopwright import tasks  # on use: the task types bring numpy, which CLI start-up avoids
    from loopwright.tasks.preference import preference_pair

    out = tasks.task_type(ctx.config.task).export_row(label, ctx.labels)
    if ctx.config.task == "preference":
        out.update(preference_pair(payload, label) or {})
    return out


def export(ctx: Context, ref: str, fmt: ExportFormat | str, out: Path) -> Path:
    """Write version ``ref`` to ``out`` and return the path written.

    ``jsonl``/``csv``/``parquet``: ``out`` is the file, or an existing directory to hold
    ``<id[:12]>.<ext>``. ``dvc``: ``out`` is a directory (made if missing) that receives
    ``<id[:12]>/`` — exporting the same version there again is a no-op, a different directory of
    that name is a Conflict.
    """
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise Invalid(f"unknown export format {fmt!r}: choose one of {choices}") from None
    with ctx.store.unit_of_work() as uow:
        version = resolve(uow, ctx.project.id, ref)
    data = rows(ctx, version)
    if fmt is ExportFormat.DVC:
        return _export_dvc(ctx, version, data, Path(out))
    if fmt.value in STRUCTURED:
        return _export_structured(ctx, version, data, fmt.value, Path(out))
    target = Path(out)
    if target.is_dir():
        target = target / f"{version.id[:12]}.{fmt.value}"
    writer: Callable[[list[dict[str, Any]]], bytes] = {
        ExportFormat.JSONL: jsonl_bytes,
        ExportFormat.CSV: csv_bytes,
        ExportFormat.PARQUET: parquet_bytes,
    }[fmt]
    write_atomic(target, writer(data))
    return target


def _export_structured(
    ctx: Context, version: DatasetVersion, data: list[dict[str, Any]], fmt: str, out: Path
) -> Path:
    """Spans as ``offsets``/``conll`` (a file, like jsonl), boxes as ``coco``/``yolo`` (a directory)."""
    if ctx.config.task != STRUCTURED[fmt]:
        task = STRUCTURED[fmt]
        raise Invalid(f"export format {fmt} is for task {task} projects; this one is {ctx.config.task}")
    from loopwright.tasks import boxes, spans  # on use: numpy

    if fmt in ("offsets", "conll"):
        ext = "jsonl" if fmt == "offsets" else "conll"
        target = out / f"{version.id[:12]}.{ext}" if out.is_dir() else out
        write_atomic(target, spans.export_text(data, ctx.config.input_key, fmt))
        return target
    with ctx.store.unit_of_work() as uow:
        metadata = {i.id: i.metadata for i in uow.items.get_many([r["item_id"] for r in data])}
    files = boxes.export_files(data, metadata, ctx.config.input_key, fmt, ctx.labels)
    folder = out / f"{version.id[:12]}-{fmt}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        write_atomic(folder / name, blob)
    return folder


def jsonl_bytes(data: list[dict[str, Any]]) -> bytes:
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in data]
    return "".join(lines).encode("utf-8")


def csv_bytes(data: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    extra = list(dict.fromkeys(c for r in data for c in r if c not in COLUMNS))  # a task type's
    writer.writerow([*COLUMNS, *extra])
    for r in data:
        flat = {**r, "payload": _canonical(r["payload"])}
        flat.update((c, _canonical(v)) for c, v in flat.items() if c in extra and isinstance(v, list | dict))
        writer.writerow(["" if flat.get(c) is None else flat[c] for c in (*COLUMNS, *extra)])
    return buf.getvalue().encode("utf-8")


def parquet_bytes(data: list[dict[str, Any]]) -> bytes:
    """One row group, the payload as a JSON string column. Needs ``pyarrow``."""
    try:
        import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise Invalid(
            "parquet export needs pyarrow, which is not installed: `pip install pyarrow`, "
            "or export --format jsonl, csv or dvc"
        ) from None
    schema = pa.schema(
        [
            ("item_id", pa.int64()),
            ("external_id", pa.string()),
            ("item_hash", pa.string()),
            ("label", pa.string()),
            ("source", pa.string()),
            ("split", pa.string()),
            ("resolution_id", pa.int64()),
            ("payload", pa.string()),
        ]
    )
    columns = {c: [r[c] for r in data] for c in COLUMNS}
    columns["payload"] = [_canonical(p) for p in columns["payload"]]
    table = pa.table(columns, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def dvc_files(ctx: Context, version: DatasetVersion, data: list[dict[str, Any]]) -> dict[str, bytes]:
    """The files of the DVC directory of a version, by name (manifest.json last)."""
    train = [r for r in data if r["split"] == Split.TRAIN.value]
    evals = [r for r in data if r["split"] == Split.EVAL.value]
    files = {
        "README.md": _readme(ctx, version, len(train), len(evals)).encode("utf-8"),
        "eval.jsonl": jsonl_bytes(evals),
        "train.jsonl": jsonl_bytes(train),
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "project": ctx.project.name,
        "id": version.id,
        "parent": version.parent_id,
        "created_at": version.created_at.astimezone(UTC).isoformat(),
        "n_items": version.n_items,
        "label_counts": dict(sorted(version.label_counts.items())),
        "split_counts": {"eval": len(evals), "train": len(train)},
        "columns": list(COLUMNS),
        "files": {
            name: {
                "sha256": hashlib.sha256(blob).hexdigest(),
                "bytes": len(blob),
                **({"rows": blob.count(b"\n")} if name.endswith(".jsonl") else {}),
            }
            for name, blob in files.items()
        },
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files


def _export_dvc(ctx: Context, version: DatasetVersion, data: list[dict[str, Any]], out: Path) -> Path:
    files = dvc_files(ctx, version, data)
    out.mkdir(parents=True, exist_ok=True)
    target = out / version.id[:12]
    if target.exists():
        same = target.is_dir() and sorted(p.name for p in target.iterdir()) == sorted(files)
        if same and all((target / n).read_bytes() == b for n, b in files.items()):
            return target  # already exported, byte for byte
        raise Conflict(
            f"{target} already exists and differs from dataset version {version.id[:12]}: "
            "remove it or export to another --out"
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{version.id[:12]}.", suffix=".tmp", dir=out))
    try:
        for name, blob in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        tmp.chmod(0o755)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_atomic(path: Path, blob: bytes) -> None:
    """Write ``blob`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _readme(ctx: Context, version: DatasetVersion, n_train: int, n_eval: int) -> str:
    labels = "\n".join(f"| {k} | {v} |" for k, v in sorted(version.label_counts.items()))
    return f"""# Dataset version {version.id[:12]}

Project `{ctx.project.name}`, loopwright dataset version `{version.id}`
(parent `{version.parent_id or "none"}`), created {version.created_at.astimezone(UTC).isoformat()}.

{version.n_items} items: {n_train} in `train.jsonl`, {n_eval} in `eval.jsonl` (the frozen evaluation
split that gates every model; audited items are always in it).

| label | items |
|---|---|
{labels}

Each line of the `.jsonl` files is one item: {", ".join(f"`{c}`" for c in COLUMNS)}.
`manifest.json` holds the version's id, parent, label counts and the sha256 of every other file.
The version id is the SHA-256 of the labelled manifest (item hash, label, source, resolution, split),
so the same id always means the same labels.

Track this directory with DVC:

    dvc add {version.id[:12]}
"""
