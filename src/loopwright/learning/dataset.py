"""Immutable, content-addressed dataset versions and hash-stable splits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from loopwright.domain import DatasetEntry, DatasetVersion, Split, content_hash


def split_for(item_hash: str, eval_fraction: float) -> Split:
    """Assign a split from the item's content hash, so it never changes across versions."""
    bucket = int(item_hash[:8], 16) / 0x1_0000_0000
    return Split.EVAL if bucket < eval_fraction else Split.TRAIN


def build_version(
    project_id: int, entries: Iterable[DatasetEntry], parent_id: str | None, created_at: datetime
) -> DatasetVersion:
    """A version whose id is the SHA-256 of its manifest (entries sorted by item hash)."""
    ordered = tuple(sorted(entries, key=lambda e: e.item_hash))
    manifest = [e.manifest_row() for e in ordered]
    return DatasetVersion(
        id=content_hash(manifest),
        project_id=project_id,
        parent_id=parent_id,
        n_items=len(ordered),
        label_counts=dict(sorted(Counter(e.label for e in ordered).items())),
        created_at=created_at,
        entries=ordered,
    )
