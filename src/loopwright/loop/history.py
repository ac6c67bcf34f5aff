"""A labelled history made elsewhere (Label Studio, another tool): imported as if each of its
annotators had claimed and submitted a review task here, and read back out for export.

Import: every label and record is checked first (one :class:`~loopwright.errors.Invalid`
listing all problems, nothing written); then the records go through ingest (idempotent by
external id; a prediction carried with a record becomes an external model version, as on any
ingest), and the annotations are written in one transaction. An item's annotations hang on its
open review task, or on a task opened for them at tier 1 (reason ``imported``) when routing
accepted the item or its last task is closed. Each annotation gets a lease born submitted and an
``annotation.submitted`` event (actor: the annotator, with ``source`` and ``imported_by``), and
a task that has its required annotations is resolved or escalated by
:func:`~loopwright.loop.resolve.resolve_task`, exactly as a submit does. An annotator already on
an item is skipped, so importing the same history again adds nothing. A crash between the two
steps leaves items without their annotations; running the import again completes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopwright.config import ProjectConfig
from loopwright.domain import Annotation, Item, ModelVersion, Prediction, Resolution, Task, TaskStatus
from loopwright.errors import Conflict, Invalid
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork

if TYPE_CHECKING:
    from loopwright.loop.ingest import IngestReport

MAX_ANNOTATOR = 200


@dataclass(frozen=True, slots=True)
class PastAnnotation:
    annotator: str
    label: str  # a project label, or a set's canonical text on a multi-label project
    at: datetime | None = None  # when it was made (None: now)


@dataclass(frozen=True, slots=True)
class LabelledItem:
    record: Mapping[str, Any]  # as ingest takes it: external_id, payload, metadata?, prediction?
    annotations: tuple[PastAnnotation, ...] = ()


@dataclass(slots=True)
class HistoryReport:
    items_created: int = 0
    items_existing: int = 0
    annotations_added: int = 0
    annotations_existing: int = 0  # the annotator was already on the item: skipped
    resolved: int = 0
    escalated: int = 0
    annotators: set[str] = field(default_factory=set)  # of the annotations added


@dataclass(frozen=True, slots=True)
class ItemHistory:
    """One item as an export shows it."""

    item: Item
    annotations: tuple[Annotation, ...]
    resolution: Resolution | None  # the newest
    prediction: Prediction | None  # the newest with a label
    model: ModelVersion | None  # the version that made ``prediction``


def set_label(labels: Sequence[str]) -> str:
    """The canonical text of a set answer (:func:`loopwright.tasks.multilabel.canonical`)."""
    from loopwright.tasks.multilabel import canonical  # NumPy: loaded on use

    return canonical(labels)


def multilabel(config: ProjectConfig) -> bool:
    """Whether the project's answers are sets of labels (``task: multilabel``)."""
    return getattr(config, "task", None) == "multilabel"


def label_problem(ctx: Context, label: Any) -> str | None:
    """Why ``label`` is no answer of this project, or None."""
    if not isinstance(label, str):
        return f"label must be a string, not {type(label).__name__}"
    if not multilabel(ctx.config):
        return (
            None if label in ctx.labels else f"unknown label {label!r}; the project's labels are {ctx.labels}"
        )
    try:
        members = json.loads(label)
    except ValueError:
        members = None
    if not (isinstance(members, list) and all(isinstance(m, str) for m in members)) or label != set_label(
        members
    ):
        return f"{label!r} is not a label set's canonical text (e.g. {set_label(ctx.labels[:2])})"
    if unknown := sorted(set(members) - set(ctx.labels)):
        return f"unknown label(s) {unknown}; the project's labels are {ctx.labels}"
    return None


def check(ctx: Context, items: Sequence[LabelledItem]) -> None:
    """Raise one Invalid naming every bad annotation and record; nothing is written."""
    from loopwright.loop.ingest import validate_records  # NumPy and the learning stack: on use

    errors: list[tuple[str, str]] = []
    for i, it in enumerate(items):
        for j, a in enumerate(it.annotations):
            where = f"[{i}].annotations[{j}]"
            if not isinstance(a.annotator, str) or not a.annotator or len(a.annotator) > MAX_ANNOTATOR:
                errors.append((f"{where}.annotator", f"required: 1 to {MAX_ANNOTATOR} characters"))
            if problem := label_problem(ctx, a.label):
                errors.append((f"{where}.label", problem))
    try:
        validate_records(ctx, [it.record for it in items])
    except Invalid as exc:
        errors += exc.errors
    if errors:
        raise Invalid(f"{len(errors)} problem(s) in the history; nothing was imported", errors)


def import_history(
    ctx: Context,
    items: Sequence[LabelledItem],
    ingest_fn: Callable[[list[dict[str, Any]], str], IngestReport],
    source: str,
    actor: str = "system",
) -> HistoryReport:
    """Import ``items`` (see the module docstring); ``ingest_fn`` is ``Loop.ingest``."""
    check(ctx, items)
    ids = [str(it.record["external_id"]) for it in items]
    with ctx.store.unit_of_work() as uow:
        known = uow.items.by_external_ids(ctx.project.id, ids)
    report = HistoryReport()
    records = [dict(it.record) for it in items]
    if records:
        ingested = ingest_fn(records, actor)
        report.items_created = ingested.created
    report.items_existing = len(set(ids) & set(known))
    now = ctx.clock()
    with ctx.store.unit_of_work() as uow:
        stored = uow.items.by_external_ids(ctx.project.id, ids)
        for ext, it in zip(ids, items, strict=True):
            if it.annotations:
                _annotate(ctx, uow, stored[ext], it.annotations, now, source, actor, report)
    return report


def _annotate(
    ctx: Context,
    uow: UnitOfWork,
    item: Item,
    annotations: Sequence[PastAnnotation],
    now: datetime,
    source: str,
    actor: str,
    report: HistoryReport,
) -> None:
    """Hang the annotators new to ``item`` on its open task (or a new one) and resolve it."""
    from loopwright.loop.resolve import resolve_task

    seen = {a.annotator for a in uow.annotations.for_item(item.id)}
    newest: dict[str, PastAnnotation] = {}
    for a in sorted(annotations, key=lambda a: a.at or now):
        newest[a.annotator] = a  # one answer per annotator: the latest
    fresh = [a for name, a in newest.items() if name not in seen]
    report.annotations_existing += len(newest) - len(fresh)
    if not fresh:
        return
    task = _task_for(ctx, uow, item)
    for a in fresh:
        at = a.at or now
        lease = uow.leases.add_submitted(task.id, a.annotator, at)
        try:
            added = uow.annotations.add(task.id, item.id, lease.id, a.annotator, a.label, False, at)
        except Conflict:
            raise Conflict(
                f"{a.annotator!r} annotated item {item.external_id!r} meanwhile; import again"
            ) from None
        ctx.event(
            uow, a.annotator, "annotation.submitted", ("task", task.id),
            annotation_id=added.id, label=a.label, unsure=False, source=source, imported_by=actor,
        )  # fmt: skip
        report.annotations_added += 1
        report.annotators.add(a.annotator)
    done = uow.annotations.for_task(task.id)
    if len(done) >= task.required_annotations:
        resolution, upper = resolve_task(ctx, uow, task, done, now, actor)
        report.resolved += resolution is not None
        report.escalated += upper is not None


def _task_for(ctx: Context, uow: UnitOfWork, item: Item) -> Task:
    """The item's open review task (locked), or a tier-1 task opened for the import."""
    open_tasks = [t for t in uow.tasks.for_item(item.id) if t.status is TaskStatus.OPEN]
    if open_tasks:
        return uow.tasks.lock(open_tasks[-1].id)
    required = ctx.config.tier(1).required_annotations
    task = uow.tasks.add(ctx.project.id, item.id, None, 1, 0.0, "imported", required)
    ctx.event(uow, "system", "task.opened", ("task", task.id), tier=1, reason="imported")
    return task


def export_history(ctx: Context) -> list[ItemHistory]:
    """Every item of the project, oldest first, with its annotations, newest resolution and
    newest labelled prediction (and the model version that made it)."""
    out: list[ItemHistory] = []
    with ctx.store.unit_of_work() as uow:
        models: dict[int, ModelVersion] = {m.id: m for m in uow.models.list(ctx.project.id)}
        for item in uow.items.recent(ctx.project.id, uow.items.count(ctx.project.id)):
            resolutions = uow.resolutions.for_item(item.id)
            predictions = [p for p in uow.predictions.for_item(item.id) if p.label is not None]
            prediction = predictions[-1] if predictions else None
            model = None
            if prediction is not None and prediction.model_version_id is not None:
                model = models.get(prediction.model_version_id)
            out.append(
                ItemHistory(
                    item,
                    tuple(uow.annotations.for_item(item.id)),
                    max(resolutions, key=lambda r: r.id) if resolutions else None,
                    prediction,
                    model,
                )
            )
    return out
