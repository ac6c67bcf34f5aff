"""Snapshot: the latest resolved label of every item becomes an immutable dataset version.

Audited items always land in the evaluation split: they are the unbiased sample that scores
every model version (gate and threshold certification), so no model may train on them.
"""

from __future__ import annotations

from loopwright.domain import DatasetEntry, DatasetVersion, Item, Split, Task
from loopwright.learning import build_version, split_for
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork


def _source(uow: UnitOfWork, task: Task) -> str:
    """``audit`` for labels that came from the random audit sample, ``reused`` for a near
    duplicate's label taken from its original, ``review`` otherwise."""
    while task.parent_task_id is not None:
        task = uow.tasks.get(task.parent_task_id)
    if task.reason == "near_duplicate_reuse":
        return "reused"
    return "audit" if task.reason == "audit" else "review"


def _split(item: Item, audited: bool, fraction: float) -> Split:
    """Audited items evaluate; a ``synthetic`` item (metadata) never joins the hash eval split: an
    augmented copy says little about how a model does on real items; nor does a near duplicate
    whose label was reused from its original (it would score a model on a copy of its training
    data). Audited synthetic items stay evaluation evidence: the audit is a uniform sample of the
    stream as ingested, and the stream is what the certificate covers."""
    if audited:
        return Split.EVAL
    if item.metadata.get("synthetic") is True or "reused" in (item.metadata.get("duplicate") or {}):
        return Split.TRAIN
    return split_for(item.content_hash, fraction)


def snapshot(ctx: Context, actor: str = "system") -> DatasetVersion:
    """Write a new version if the labels changed since the latest one; return it either way."""
    fraction = ctx.config.retrain.eval_fraction
    with ctx.store.unit_of_work() as uow:
        resolutions = uow.resolutions.latest_by_item(ctx.project.id)
        audited = set(uow.decisions.audited_items(ctx.project.id))
        items = {i.id: i for i in uow.items.get_many(list(resolutions))}
        entries = [
            DatasetEntry(
                item_id=item_id,
                item_hash=items[item_id].content_hash,
                label=r.label,
                source=_source(uow, uow.tasks.get(r.task_id)),
                resolution_id=r.id,
                split=_split(items[item_id], item_id in audited, fraction),
            )
            for item_id, r in resolutions.items()
        ]
        latest = uow.datasets.latest(ctx.project.id)
        version = build_version(ctx.project.id, entries, latest.id if latest else None, ctx.clock())
        if latest is not None and latest.id == version.id:
            return latest
        stored = uow.datasets.add(version)
        ctx.event(
            uow,
            actor,
            "dataset.snapshot",
            ("dataset_version", stored.id),
            parent_id=stored.parent_id,
            n_items=stored.n_items,
            label_counts=stored.label_counts,
        )
        return stored
