"""Resolve a task once it has its annotations: majority vote, or escalate a tier when disputed."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from loopwright import tasks
from loopwright.consensus import DawidSkene, OneCoinDawidSkene
from loopwright.domain import Annotation, FeedbackKind, Resolution, Task, TaskStatus
from loopwright.loop.context import Context
from loopwright.loop.feedback import END_USERS
from loopwright.loop.model_annotators import worker
from loopwright.loop.ports import UnitOfWork
from loopwright.tasks.multilabel import LabelwiseDawidSkene, decode, set_confidence


def resolve_task(
    ctx: Context, uow: UnitOfWork, task: Task, annotations: Sequence[Annotation], now: datetime, actor: str
) -> tuple[Resolution | None, Task | None]:
    """Consolidate ``task``: a Resolution, or a new task one tier up (returned second).

    ``majority``: a tie or agreement below ``consensus.min_agreement`` is a dispute.
    ``dawid_skene`` / ``one_coin_dawid_skene``: the label is the item's posterior mode given every
    annotator's estimated confusion matrix (or single accuracy) over the whole project, refitted
    periodically (:func:`_dawid_skene`) (gold
    answers clamped, end-user corrections as one more weak annotator, model annotators as
    ``machine:<name>``, the model optionally too);
    a posterior below ``consensus.min_posterior`` is a dispute. A dispute or an "unsure" flag
    escalates one tier — except at the top tier, where the label is final and the method says
    so. A high-stakes label goes straight to the high-stakes tier.
    """
    cfg = ctx.config.consensus
    votes = [a.label for a in annotations]
    unsure = any(a.unsure for a in annotations)
    kind = tasks.task_type(ctx.config.task)
    if cfg.method != "majority" and isinstance(kind, tasks.MultiLabel):
        label, posterior = _labelwise_dawid_skene(ctx, uow, task.item_id)
        disputed, evidence = posterior < cfg.min_posterior, posterior
    elif cfg.method != "majority":
        label, posterior = _dawid_skene(ctx, uow, task.item_id)
        disputed, evidence = posterior < cfg.min_posterior, posterior
    else:
        consensus = kind.vote(votes, ctx.labels)  # a label set votes per label
        label = consensus.label
        disputed, evidence = consensus.tie or consensus.agreement < cfg.min_agreement, consensus.agreement
    routing = ctx.config.routing
    held = set(decode(label)) if isinstance(kind, tasks.MultiLabel) else {label}
    if held & set(routing.high_stakes_labels) and task.tier < routing.high_stakes_tier:
        return None, _escalate(ctx, uow, task, routing.high_stakes_tier, "high_stakes", evidence, now, actor)
    if (disputed or unsure) and task.tier < ctx.config.top_tier:
        reason = "disputed" if disputed else "unsure"
        return None, _escalate(ctx, uow, task, task.tier + 1, reason, evidence, now, actor)
    method = cfg.method + ("_top_tier" if disputed or unsure else "")
    agreement = (
        kind.vote(votes, ctx.labels).agreement
        if isinstance(kind, tasks.MultiLabel | tasks.Spans | tasks.Boxes)  # structured: the vote's own
        else votes.count(label) / len(votes)
    )
    resolution = uow.resolutions.add(task.item_id, task.id, label, method, agreement, len(votes))
    uow.tasks.set_status(task.id, TaskStatus.RESOLVED, now)
    ctx.event(
        uow,
        actor,
        "item.resolved",
        ("item", task.item_id),
        task_id=task.id,
        label=label,
        method=method,
        agreement=agreement,
        evidence=evidence,
        resolution_id=resolution.id,
    )
    return resolution, None


FULL_BELOW = 200  # answers: a project this small is refitted on every resolution
REFIT_SHARE = 0.05  # larger ones: refit once resolutions since the fit reach this share of its answers


@dataclass
class _Fit:
    """A project's last full Dawid-Skene fit and how many items were consolidated with it since."""

    model: DawidSkene
    since: int = 0

    def due(self) -> bool:
        n = self.model.n_answers_
        return n < FULL_BELOW or self.since >= max(FULL_BELOW * REFIT_SHARE, REFIT_SHARE * n)


_FITS: weakref.WeakKeyDictionary[Any, dict[tuple[int, str, bool], _Fit]] = weakref.WeakKeyDictionary()
_FITS_LOCK = threading.Lock()


def _dawid_skene(ctx: Context, uow: UnitOfWork, item_id: int) -> tuple[str, float]:
    """(posterior mode, its probability) for ``item_id``.

    Periodic consolidation: a full fit over the whole project is kept per process and store; an
    item is consolidated with it by one E-step over its own answers (:meth:`DawidSkene.partial`),
    so a submit reads the item, not the project. The fit is redone when the project is small
    (under ``FULL_BELOW`` answers: exactly as a full refit), when resolutions since the fit
    reach ``REFIT_SHARE`` of its answers (the staleness bound: skills are never estimated
    without more than 5 % of the answers, and the refit's cost is amortised to a constant per
    submit), for gold items, and for labels or end-user corrections the fit has not seen.
    """
    cfg = ctx.config.consensus
    key = (ctx.project.id, cfg.method, cfg.model_as_annotator)
    with _FITS_LOCK:
        fits = _FITS.setdefault(ctx.store, {})
        fit = fits.get(key)
    rows = None if fit is None or fit.due() else _item_answers(ctx, uow, item_id)
    if fit is not None and rows and all(label in fit.model.classes_ for _, label in rows):
        fit.since += 1
        model = fit.model
        workers, labels = zip(*rows, strict=True)
        row = model.partial(workers, labels)
    else:
        model = fit_dawid_skene(ctx, uow)
        with _FITS_LOCK:
            fits[key] = _Fit(model)
        row = model.probas_[int(np.searchsorted(model.items_, str(item_id)))]
    best = int(row.argmax())
    return str(model.classes_[best]), float(row[best])


def _labelwise_dawid_skene(ctx: Context, uow: UnitOfWork, item_id: int) -> tuple[str, float]:
    """Multi-label: (posterior set, its least certain label decision) from a binary Dawid-Skene
    per label over the project's human votes, refitted on each resolution (cost grows with the
    project: fine to tens of thousands of answers; the single-label fit's staleness bound is not
    reused here)."""
    rows = [(str(item), annotator, label) for item, annotator, label in uow.annotations.votes(ctx.project.id)]
    items, workers, answers = zip(*rows, strict=True)
    model = LabelwiseDawidSkene(ctx.labels).fit(items, workers, answers)
    row = int(np.searchsorted(model.items_, str(item_id)))
    return model.labels_[row], float(set_confidence(model.probas_[row : row + 1])[0])


def _item_answers(ctx: Context, uow: UnitOfWork, item_id: int) -> list[tuple[str, str]] | None:
    """``(worker, label)`` of every answer on ``item_id`` as :func:`fit_dawid_skene` counts them,
    read by item; ``None`` for a gold item (clamped in a full fit: refit instead)."""
    if any(t.status is TaskStatus.GOLD for t in uow.tasks.for_item(item_id)):
        return None
    rows = [(a.annotator, a.label) for a in uow.annotations.for_item(item_id)]
    corrections = [f.correction for f in uow.feedback.for_item(item_id) if f.kind is FeedbackKind.CORRECTION]
    if corrections and corrections[-1] is not None:
        rows.append((END_USERS, corrections[-1]))
    newest = {m.annotator: m.label for m in uow.machine_labels.for_item(item_id) if m.status == "labelled"}
    rows += [(worker(name), label) for name, label in newest.items() if label is not None]
    if ctx.config.consensus.model_as_annotator:
        labelled = [p.label for p in uow.predictions.for_item(item_id) if p.label is not None]
        if labelled:
            rows.append(("model", labelled[-1]))
    return rows


def fit_dawid_skene(ctx: Context, uow: UnitOfWork) -> DawidSkene:
    """The project's Dawid-Skene fit (items keyed by ``str(item_id)``), as resolution uses it."""
    pid = ctx.project.id
    rows = [(str(item), annotator, label) for item, annotator, label in uow.annotations.votes(pid)]
    answers = uow.gold_answers.for_project(pid)
    gold = {str(g.item_id): g.label for g in answers if g.correct}
    rows += [(str(g.item_id), g.annotator, g.label) for g in answers if str(g.item_id) in gold]
    annotated = {r[0] for r in rows}
    corrected = dict(uow.feedback.corrections(pid))  # an item's latest correction counts once
    rows += [(str(i), END_USERS, label) for i, label in corrected.items() if str(i) in annotated]
    machine = uow.machine_labels.votes(pid)  # model annotators: weak annotators with their own skill
    rows += [(str(i), worker(name), label) for i, name, label in machine if str(i) in annotated]
    if ctx.config.consensus.model_as_annotator:
        rows += [
            (str(i), "model", label)
            for i, label in uow.predictions.latest_labels(pid).items()
            if str(i) in annotated
        ]
    items, workers, labels = zip(*rows, strict=True)
    model = DawidSkene() if ctx.config.consensus.method == "dawid_skene" else OneCoinDawidSkene()
    return model.fit(items, workers, labels, gold=gold)


def _escalate(
    ctx: Context,
    uow: UnitOfWork,
    task: Task,
    tier: int,
    reason: str,
    agreement: float,
    now: datetime,
    actor: str,
) -> Task:
    """Close ``task`` as escalated and open its continuation at ``tier``."""
    uow.tasks.set_status(task.id, TaskStatus.ESCALATED, now)
    upper = uow.tasks.add(
        ctx.project.id,
        task.item_id,
        task.decision_id,
        tier,
        priority=1.0 + task.priority,
        reason=reason,
        required_annotations=ctx.config.tier(tier).required_annotations,
        parent_task_id=task.id,
    )
    ctx.event(
        uow,
        actor,
        "task.escalated",
        ("task", task.id),
        to_task=upper.id,
        tier=tier,
        reason=reason,
        agreement=agreement,
    )
    return upper
