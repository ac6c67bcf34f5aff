"""The audit sample as evidence: its resolved labels, the last drift boundary, and how a model
scores on it. Certification, drift monitoring and retraining all read it through here."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.config import ProjectConfig
from loopwright.domain import Event, ModelVersion, Task, TaskStatus
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import EXTERNAL, answers_on, scores_of
from loopwright.tasks.multilabel import decide

DRIFT_DETECTED = "drift.detected"
DRIFT_CONFIRMED = "drift.confirmed"
DRIFT_RETRACTED = "drift.retracted"
RECHECK = "audit_recheck"  # the reason of a task that asks one more answer for an audited item
TASK_REASONS = ("audit", RECHECK)  # the reasons of the tasks that answer the audit sample


def blind(config: ProjectConfig, task: Task) -> bool:
    """Whether ``task`` is answered blind by those gold measures (no model answer, no earlier
    vote): an audit, or gold on the tiers that take audits, which must look like them."""
    gold = task.status is TaskStatus.GOLD and task.tier in config.routing.audit_tiers
    return gold or task.reason in TASK_REASONS


def last_drift(uow: UnitOfWork, project_id: int) -> Event | None:
    """The newest ``drift.detected`` event that the next batch has not retracted (see
    :func:`loopwright.loop.monitoring.settle`). Only the newest alarm is ever retracted, so
    retractions come in the order of their alarms: walk both back while the newest retraction
    names the newest alarm (a second retraction of one alarm, from two processes at once, is
    skipped). Indexed look-ups, one step in the common case."""
    alarm = uow.events.latest(project_id, DRIFT_DETECTED)
    retraction = uow.events.latest(project_id, DRIFT_RETRACTED)
    while alarm is not None and retraction is not None:
        target = int(retraction.data["alarm_event_id"])
        if target < alarm.id:
            return alarm  # the newest retraction is of an older alarm: this one stands
        if target == alarm.id:
            alarm = uow.events.latest(project_id, DRIFT_DETECTED, before_id=alarm.id)
        retraction = uow.events.latest(project_id, DRIFT_RETRACTED, before_id=retraction.id)
    return alarm


def drift_start(uow: UnitOfWork, project_id: int) -> int | None:
    """First item id of the window in which drift was last detected (and not retracted), if ever."""
    event = last_drift(uow, project_id)
    return None if event is None else int(event.data["window_start_item_id"])


def audited_labels(uow: UnitOfWork, project_id: int, since: int = 0) -> dict[int, str]:
    """The label of every audited item with id ≥ ``since`` that has one, oldest first: its resolved
    label, or the first sure answer of one still waiting for more.

    An audit answer that contradicts the model asks for a second (``routing.audit_answers``), so
    the audits that wait are mostly the model's errors: left out, they would be missing from the
    evidence while they wait, and for ever where nobody else at the audit tier can answer. The
    first answer stands until people settle it."""
    resolved = uow.resolutions.latest_by_item(project_id)
    audited = [i for i in uow.decisions.audited_items(project_id) if i >= since]
    waiting = uow.annotations.first_labels([i for i in audited if i not in resolved])
    labels = {i: resolved[i].label if i in resolved else waiting.get(i) for i in audited}
    return {i: label for i, label in labels.items() if label is not None}


def rate(ctx: Context, uow: UnitOfWork) -> float:
    """The audit rate for the next batch: ``audit_rate`` while evidence is scarce, falling
    linearly to ``audit_floor`` as the audited items since the last drift reach ``audit_target``.

    The rate depends only on items already stored, never on the items it is applied to, so in
    a stationary world each audited item is still a uniform draw of the stream: the evidence
    stays an unbiased sample for certification, only its growth slows. Deterministic: the
    draws themselves come from item hashes.
    """
    cfg = ctx.config.routing
    if cfg.audit_target is None:
        return cfg.audit_rate
    since = drift_start(uow, ctx.project.id) or 0
    have = uow.decisions.count_items(ctx.project.id, since, audited=True)
    share = min(1.0, have / cfg.audit_target)
    return max(cfg.audit_floor, cfg.audit_rate - share * (cfg.audit_rate - cfg.audit_floor))


def score(
    ctx: Context, uow: UnitOfWork, model: Any, labels: dict[int, str]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``model``'s confidence on each item of ``labels`` and whether its label matches, in order."""
    predicted, confidence = answers_on(ctx, uow, model, list(labels))  # a label set: the whole set
    return confidence, np.asarray(predicted) == np.asarray(list(labels.values()))


def score_version(
    ctx: Context, uow: UnitOfWork, version: ModelVersion, labels: dict[int, str]
) -> tuple[list[int], NDArray[np.float64], NDArray[np.bool_]]:
    """Like :func:`score` for a model version, with the ids scored. One that lives elsewhere
    cannot be re-run: its evidence is the predictions it sent with the audited items (and any it
    uploaded); audited items it never scored are left out."""
    if version.kind != EXTERNAL:
        return list(labels), *score(ctx, uow, ctx.model(uow, version), labels)
    found = scores_of(ctx, uow, version, uow.items.get_many(list(labels)))
    ids = [i for i in labels if i in found]
    if not ids:
        return [], np.zeros(0), np.zeros(0, dtype=bool)
    proba = np.asarray([[found[i][label] for label in ctx.labels] for i in ids], dtype=np.float64)
    predicted, confidence = decide(ctx.config.task, ctx.labels, proba)
    return ids, confidence, np.asarray(predicted) == np.asarray([labels[i] for i in ids])


def recheck(ctx: Context, uow: UnitOfWork, contradicted: list[int], actor: str) -> list[int]:
    """Ask one more answer, at the tier that gave the first, for each audited item in
    ``contradicted`` (the champion disagrees with its label) whose label rests on one answer.

    :mod:`loopwright.loop.review` already asks a second opinion when an audit answer contradicts
    the prediction made at ingest; an item audited before there was any model (or whose
    prediction then agreed with a slip) never had that check, and one slip of the audit tier
    among the champion's most confident items is counted as its error by every certificate after.
    The check only ever removes false errors: a label the champion agrees with is not asked
    again. Only with ``routing.audit_answers`` > 1; each item at most once (it then has two
    answers). Returns the items asked about."""
    if ctx.config.routing.audit_answers < 2:
        return []
    asked = []
    for item_id in sorted(contradicted):  # one lock order for every host
        item_tasks = uow.tasks.lock_item(item_id)  # a host certifying at once waits, then sees the task
        answers = uow.annotations.for_item(item_id)
        if len(answers) != 1 or any(t.status is TaskStatus.OPEN for t in item_tasks):
            continue
        first = next(t for t in item_tasks if t.id == answers[0].task_id)
        task = uow.tasks.add(ctx.project.id, item_id, first.decision_id, first.tier, 1.0, RECHECK, 1)
        ctx.event(uow, actor, "audit.recheck", ("task", task.id), item_id=item_id, answer=answers[0].label)
        asked.append(item_id)
    return asked
