"""What the annotator and reviewer pages show besides the task: explanations and task context."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from loopwright.domain import Annotation, Item, Prediction, Task
from loopwright.errors import NotFitted, NotFound
from loopwright.learning.explain import Explanation, explain
from loopwright.loop.context import Context
from loopwright.loop.resolve import fit_dawid_skene
from loopwright.loop.review import _for_annotators


@dataclass(frozen=True, slots=True)
class EarlierAnnotation:
    """One annotation on the item, with what is known about its annotator's skill."""

    annotator: str
    label: str
    unsure: bool
    tier: int
    task_id: int
    created_at: datetime
    gold_answers: int
    gold_accuracy: float | None  # None before the annotator's first gold answer
    estimated_accuracy: float | None  # Dawid-Skene skill estimate (consensus methods that fit one)


@dataclass(frozen=True, slots=True)
class TaskContext:
    task: Task
    item: Item  # as annotators may see it
    annotations: tuple[EarlierAnnotation, ...]  # oldest first, every tier
    suggestion: Prediction | None
    method: str  # the consensus method the posterior comes from
    posterior: dict[str, float]  # per project label
    why: str  # why the task is at this tier


def explain_item(ctx: Context, item_id: int, k: int = 10) -> Explanation:
    """The champion's explanation of its prediction for ``item_id`` (as annotators see it)."""
    with ctx.store.unit_of_work() as uow:
        item = _own_item(ctx, uow.items.get(item_id))
        champion = uow.models.champion(ctx.project.id)
        if champion is None:
            raise NotFitted(f"project {ctx.project.name!r} has no champion model yet")
        model = ctx.model(uow, champion)
    return explain(model, ctx.config, _for_annotators(ctx, item).payload, k)


def item_tasks(ctx: Context, item_id: int) -> list[Task]:
    """Every task on one of the project's items, any status."""
    with ctx.store.unit_of_work() as uow:
        _own_item(ctx, uow.items.get(item_id))
        return uow.tasks.for_item(item_id)


def task_context(ctx: Context, task_id: int) -> TaskContext:
    """Every annotation on the task's item, the annotators' skills, suggestion and posterior."""
    with ctx.store.unit_of_work() as uow:
        task = uow.tasks.get(task_id)
        if task.project_id != ctx.project.id:
            raise NotFound(f"task id {task_id} does not exist")
        item = _for_annotators(ctx, uow.items.get(task.item_id))
        tiers = {t.id: t for t in uow.tasks.for_item(task.item_id)}
        done = sorted(uow.annotations.for_item(task.item_id), key=lambda a: a.id)
        predictions = uow.predictions.for_item(task.item_id)
        gold = {a: uow.gold_answers.for_project(ctx.project.id, a) for a in {a.annotator for a in done}}
        method = ctx.config.consensus.method
        estimated: dict[str, float] = {}
        posterior = _vote_shares(ctx.labels, [a.label for a in done])
        if method != "majority" and done:
            ds = fit_dawid_skene(ctx, uow)
            estimated = {str(w): float(s) for w, s in ds.skills_.items()}
            at = int(np.searchsorted(ds.items_, str(task.item_id)))
            if at < len(ds.items_) and ds.items_[at] == str(task.item_id):
                row = dict(zip((str(c) for c in ds.classes_), ds.probas_[at].tolist(), strict=True))
                posterior = {label: float(row.get(label, 0.0)) for label in ctx.labels}
    earlier = []
    for a in done:
        answers = gold[a.annotator]
        earlier.append(
            EarlierAnnotation(
                a.annotator,
                a.label,
                a.unsure,
                tiers[a.task_id].tier if a.task_id in tiers else task.tier,
                a.task_id,
                a.created_at,
                len(answers),
                sum(g.correct for g in answers) / len(answers) if answers else None,
                estimated.get(a.annotator),
            )
        )
    parent = tiers.get(task.parent_task_id) if task.parent_task_id is not None else None
    suggestion = predictions[-1] if predictions else None
    return TaskContext(task, item, tuple(earlier), suggestion, method, posterior, _why(task, parent, done))


def _own_item(ctx: Context, item: Item) -> Item:
    if item.project_id != ctx.project.id:
        raise NotFound(f"item id {item.id} does not exist")
    return item


def _vote_shares(labels: list[str], votes: list[str]) -> dict[str, float]:
    counts = Counter(votes)
    return {label: counts[label] / len(votes) if votes else 0.0 for label in labels}


def _why(task: Task, parent: Task | None, done: list[Annotation]) -> str:
    if parent is None:
        return f"tier {task.tier} · {task.reason}"
    votes = ", ".join(f"{a.annotator}: {a.label}{' (unsure)' if a.unsure else ''}" for a in done)
    return f"escalated from tier {parent.tier} to {task.tier} · {task.reason} · votes {votes or 'none'}"
