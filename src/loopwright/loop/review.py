"""Review: claim the next task under a lease, submit an annotation, extend, release or skip.

Claim policy (see ``TaskRepo.claim``): an annotator never labels the same item twice, at any
tier, so nobody resolves higher up an item they labelled lower down. Among equal priority,
tasks that already have annotations go first: overlap completes and items resolve sooner,
instead of every item getting its first label before any gets its second. Gold tasks, fatigue
caps and label rotation are applied here before the store is asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from loopwright import tasks
from loopwright.config import ProjectConfig
from loopwright.domain import (
    Annotation,
    GoldAnswer,
    Item,
    Lease,
    LeaseStatus,
    MachineLabel,
    Prediction,
    Resolution,
    Task,
    TaskStatus,
)
from loopwright.errors import Conflict, LeaseExpired, UnknownLabel
from loopwright.loop import audit, fatigue, gold
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.resolve import resolve_task
from loopwright.loop.scoring import champion_here
from loopwright.privacy import scrub_payload
from loopwright.tasks.multilabel import top

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A leased task with what the annotator needs to see: the item and the model's suggestion."""

    task: Task
    lease: Lease
    item: Item
    suggestion: Prediction | None
    why: str  # why this task was chosen, e.g. "tier 2 queue · priority 1.30 · disputed"
    prelabels: tuple[MachineLabel, ...] = ()  # model annotators' labels for the item (machine)
    scored: bool = False  # asked for ``score_now``: ``live`` holds the champion's answer now
    live: dict[str, float] | None = None  # the champion's probabilities for the item (None: no champion)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    annotation: Annotation | None  # None when the task was a gold task
    resolution: Resolution | None  # set when this annotation completed the task
    escalated_to: Task | None  # set when it completed a disputed task
    gold: GoldAnswer | None = None  # set when the task was a gold task: the scored answer
    task: Task | None = None  # the task answered (the blind view needs no read)


def gold_in_use(ctx: Context) -> bool:
    """Whether gold tasks are ever served here: without onboarding or a rate none is claimed,
    so nobody has gold answers and nobody is paused (no query needed to know)."""
    return ctx.config.gold.rate > 0 or ctx.config.gold.onboarding > 0


def next_task(
    ctx: Context,
    annotator: str,
    tiers: Sequence[int] | None = None,
    session_id: str | None = None,
    score_now: bool = False,
) -> Assignment | None:
    """Lease the best task for ``annotator`` in ``tiers`` (default: all), or ``None``.

    Tiers the annotator is paused from are left out; :class:`~loopwright.errors.Paused` when
    that leaves none, :class:`~loopwright.errors.Capped` when a fatigue cap is reached.
    ``score_now``: also score the item with the current champion, in the same transaction
    (the blind view shows that rather than the stored prediction), unless the task is answered
    blind (:func:`audit.blind`), which shows no model answer.
    """
    tiers = list(tiers) if tiers is not None else [t.tier for t in ctx.config.tiers]
    now = ctx.clock()
    with ctx.store.unit_of_work() as uow:
        rec = gold.record(ctx, uow, annotator) if gold_in_use(ctx) else gold.Record({}, 0)
        by_tier = rec.by_tier
        paused = gold.paused_tiers(ctx.config.gold, by_tier)
        if tiers and not (tiers := [t for t in tiers if t not in paused]):
            raise gold.paused_error(ctx.config.gold, annotator, by_tier[paused[0]])
        fatigue.check_caps(ctx, uow, annotator, session_id, now)
        uow.leases.sweep(now)  # throttled, index-driven: claims check expiry themselves
        lease_for = max((ctx.config.tier(t).lease_seconds for t in tiers), default=0)
        expires = now + timedelta(seconds=lease_for)
        claimed, note, avoid, source = None, "", None, None
        if reason := gold.gold_due(ctx, annotator, rec.answered, rec.work):
            like = gold.lookalike(ctx, uow, annotator, tiers, now)
            claimed = uow.tasks.claim_gold(ctx.project.id, annotator, tiers, now, expires, session_id, like)
            note = f" · {reason}"
        source_key = ctx.config.fatigue.source_key
        if claimed is None:
            avoid = fatigue.label_to_avoid(ctx, uow, annotator)
            source = fatigue.source_to_avoid(ctx, uow, annotator)
            avoid_source = None if source is None else (source_key, source)
            claimed = uow.tasks.claim(
                ctx.project.id, annotator, tiers, now, expires, session_id, avoid, avoid_source
            )
            note = ""
        if claimed is None:
            return None
        task, lease = claimed
        predictions = uow.predictions.for_item(task.item_id)
        suggestion = predictions[-1] if predictions else None
        item = _for_annotators(ctx, uow.items.get(task.item_id))
        if avoid is not None and (suggestion is None or suggestion.label != avoid):
            note = f" · rotation: the last {ctx.config.fatigue.max_same_label_run} suggested {avoid!r}"
        if source is not None and str(item.metadata.get(source_key)) != source:
            run = ctx.config.fatigue.max_same_source_run
            note += f" · rotation: the last {run} came from {source_key} {source!r}"
        why = _why(uow, task) + note
        ctx.event(
            uow, annotator, "task.claimed", ("task", task.id), lease_id=lease.id, tier=task.tier, why=why
        )
        prelabels = _prelabels(ctx, uow, task.item_id)
        live = _champion_now(ctx, uow, item) if score_now and not audit.blind(ctx.config, task) else None
        if (shown := _offered(ctx.config, suggestion, live, score_now)) is not None:
            uow.leases.suggest(lease.id, shown)
            lease = replace(lease, suggested=shown)
        return Assignment(task, lease, item, suggestion, why, prelabels, score_now, live)


def _offered(
    config: ProjectConfig, stored: Prediction | None, live: Mapping[str, float] | None, scored: bool
) -> str | None:
    """The model's label an assignment offers, kept with its lease and answer: the champion's
    now when scored (none on a task answered blind), else the stored prediction's."""
    if not scored:
        return None if stored is None else stored.label
    answer = live_answer(config, live)
    return None if answer is None else answer[0]


def live_answer(config: ProjectConfig, live: Mapping[str, float] | None) -> tuple[str, float] | None:
    """The answer and confidence of the champion's probabilities now (for ``multilabel`` the
    label set), as a stored prediction would hold them; None without them."""
    if live is None:
        return None
    answers, confidences = top(config.task, config.labels, [live])
    return str(answers[0]), float(confidences[0] or 0.0)


def _champion_now(ctx: Context, uow: UnitOfWork, item: Item) -> dict[str, float] | None:
    """The champion's probabilities for ``item`` now, by label; None without one loopwright runs."""
    if (model := champion_here(ctx, uow)) is None:
        return None
    from loopwright.learning import featurize, predict_proba_by_label

    row = predict_proba_by_label(model, featurize(ctx.config, [item.payload]), ctx.labels)[0]
    return {label: float(p) for label, p in zip(ctx.labels, row, strict=True)}


def _prelabels(ctx: Context, uow: UnitOfWork, item_id: int) -> tuple[MachineLabel, ...]:
    """The labels of the model annotators that pre-label (``prelabel: true``), newest each."""
    shown = {a.name for a in ctx.config.model_annotators if a.prelabel}
    if not shown:
        return ()
    newest = {m.annotator: m for m in uow.machine_labels.for_item(item_id) if m.annotator in shown}
    return tuple(m for m in newest.values() if m.status == "labelled")


def _for_annotators(ctx: Context, item: Item) -> Item:
    """The item as an annotator may see it: scrubbed now if the store keeps the original."""
    privacy = ctx.config.privacy
    if not (privacy.fields and privacy.keep_original):
        return item
    clean, _ = scrub_payload(item.payload, privacy.fields, privacy.kinds)
    return replace(item, payload=clean)


def _why(uow: UnitOfWork, task: Task) -> str:
    queue = "gold" if task.status is TaskStatus.GOLD else "queue"
    why = f"tier {task.tier} {queue} · priority {task.priority:.2f} · {task.reason}"
    # a claimed task with one slot had none filled: no count needed
    shared = task.status is TaskStatus.OPEN and task.required_annotations > 1
    if shared and (done := len(uow.annotations.for_task(task.id))):
        why += f" · {done}/{task.required_annotations} annotations already"
    return why


def _live_lease(ctx: Context, uow: UnitOfWork, lease_id: int, annotator: str) -> Lease:
    lease = uow.leases.get(lease_id)
    if lease.annotator != annotator:
        raise Conflict(f"lease {lease_id} belongs to another annotator")
    if lease.status is LeaseStatus.EXPIRED or (
        lease.status is LeaseStatus.ACTIVE and lease.expires_at <= ctx.clock()
    ):
        raise LeaseExpired(
            f"lease {lease_id} expired at {lease.expires_at.isoformat()}; claim the task again"
        )
    if lease.status is not LeaseStatus.ACTIVE:
        raise Conflict(f"lease {lease_id} is {lease.status.value}, not active; claim the task again")
    return lease


def submit(
    ctx: Context, lease_id: int, annotator: str, label: str, unsure: bool = False, comment: str | None = None
) -> SubmitResult:
    """Record one annotation under a live lease; resolve or escalate the task when it is complete.

    ``comment`` (a reviewer's reason) is kept in the ``annotation.submitted`` event.

    On a gold task the answer is scored instead. Refused (nothing written) for a tier the
    annotator is paused from.
    """
    label, comment = answer_of(ctx, label, comment)
    now = ctx.clock()
    with ctx.store.unit_of_work() as uow:
        lease = _live_lease(ctx, uow, lease_id, annotator)
        task = uow.tasks.lock(lease.task_id)  # then count annotations, including concurrent ones
        if task.status not in (TaskStatus.OPEN, TaskStatus.GOLD):
            # a lease that ran out mid-flight lost its slot to a new claimer, who finished first
            raise Conflict(f"task {task.id} is already {task.status.value}; claim another task")
        if ctx.config.task in ("spans", "boxes"):  # geometry against the item, before any write
            _check_shapes(ctx, label, uow.items.get(task.item_id))
        rec = gold.check_not_paused(ctx, uow, annotator, task.tier) if gold_in_use(ctx) else None
        uow.leases.set_status(lease.id, LeaseStatus.SUBMITTED)
        if task.status is TaskStatus.GOLD:
            correct = label == task.gold_label
            gold.count_answer(
                ctx, uow, annotator, rec or gold.record(ctx, uow, annotator), task.tier, correct
            )
            answer = uow.gold_answers.add(
                task.id, task.item_id, lease.id, annotator, task.tier, label, correct, now
            )
            ctx.event(uow, annotator, "gold.answered", ("task", task.id), label=label, correct=correct)
            return SubmitResult(None, None, None, answer, task)
        annotation = uow.annotations.add(
            task.id, task.item_id, lease.id, annotator, label, unsure, now, lease.suggested
        )
        ctx.event(
            uow,
            annotator,
            "annotation.submitted",
            ("task", task.id),
            annotation_id=annotation.id,
            label=label,
            unsure=unsure,
            **({"comment": comment} if comment else {}),
        )
        resolution, upper = None, None
        # one slot, held by this lease under the task's lock: this annotation is the only one
        done = [annotation] if task.required_annotations == 1 else uow.annotations.for_task(task.id)
        if len(done) >= task.required_annotations:
            # a re-check votes every answer on the item: the one it checks counts too
            votes = uow.annotations.for_item(task.item_id) if task.reason == audit.RECHECK else done
            if not _second_opinion(ctx, uow, task, len(done), votes, annotator):
                resolution, upper = resolve_task(ctx, uow, task, votes, now, annotator)
        return SubmitResult(annotation, resolution, upper, task=task)


def _second_opinion(
    ctx: Context, uow: UnitOfWork, task: Task, answered: int, answers: list[Annotation], actor: str
) -> bool:
    """Ask one more answer for an audited item (``routing.audit_answers`` at most) when its one
    answer contradicts the model's prediction or its ``answers`` have no two in agreement: one
    slip of the audit tier must not count as the model's error in the certificate. An answer
    that agrees with the prediction is not checked (a slip there would have to hit the model's
    own wrong label), so the check only removes false errors. ``answered``: the task's own
    answers (a re-check, :func:`loopwright.loop.audit.recheck`, votes every answer on the item).
    True when it asked."""
    if task.reason not in audit.TASK_REASONS:
        return False
    if len(answers) >= ctx.config.routing.audit_answers:
        return False
    votes = Counter(a.label for a in answers)
    if max(votes.values()) >= 2:
        return False
    if len(answers) == 1:
        decision = next((d for d in uow.decisions.for_item(task.item_id) if d.id == task.decision_id), None)
        if decision is None or uow.predictions.get(decision.prediction_id).label == answers[0].label:
            return False
    uow.tasks.set_required(task.id, answered + 1)
    ctx.event(uow, actor, "audit.second_opinion", ("task", task.id), answers=len(answers))
    return True


def answer_of(ctx: Context, label: Any, comment: str | None) -> tuple[str, str | None]:
    """The canonical text of a submitted answer for the project's task type, and its comment
    (a rubric's correction); Invalid naming the field before anything is written."""
    kind = tasks.task_type(ctx.config.task)
    if ctx.config.task == "single" and label not in ctx.labels:  # today's message, unchanged
        raise UnknownLabel(f"unknown label {label!r}; the project's labels are {ctx.labels}")
    canonical = kind.parse(label, ctx.labels)
    if isinstance(kind, tasks.Rubric):
        comment = kind.check_correction(comment, ctx.config.rubric.corrections)
    return canonical, comment


def _check_shapes(ctx: Context, answer: str, item: Item) -> None:
    """Spans inside the text (as annotators see it) and not crossing; boxes inside the image."""
    from loopwright.tasks import boxes, spans

    key = ctx.config.input_key
    if ctx.config.task == "spans":
        spans.check_item(answer, _for_annotators(ctx, item).payload, key, ctx.labels)
    else:
        boxes.check_item(answer, item.payload, item.metadata, key, ctx.labels)


def extend(ctx: Context, lease_id: int, annotator: str, seconds: int | None = None) -> Lease:
    """Heartbeat: push a live lease's expiry ``seconds`` (default: the tier's lease) from now."""
    with ctx.store.unit_of_work() as uow:
        lease = _live_lease(ctx, uow, lease_id, annotator)
        task = uow.tasks.get(lease.task_id)
        seconds = seconds or ctx.config.tier(task.tier).lease_seconds
        return uow.leases.extend(lease.id, ctx.clock() + timedelta(seconds=seconds))


def release(ctx: Context, lease_id: int, annotator: str) -> Lease:
    """Give a task back to the queue without annotating it."""
    with ctx.store.unit_of_work() as uow:
        lease = _live_lease(ctx, uow, lease_id, annotator)
        ctx.event(uow, annotator, "task.released", ("task", lease.task_id), lease_id=lease.id)
        return uow.leases.set_status(lease.id, LeaseStatus.RELEASED)


def skip(ctx: Context, lease_id: int, annotator: str) -> Lease:
    """Give a task back and never be offered it again."""
    with ctx.store.unit_of_work() as uow:
        lease = _live_lease(ctx, uow, lease_id, annotator)
        ctx.event(uow, annotator, "task.skipped", ("task", lease.task_id), lease_id=lease.id)
        return uow.leases.set_status(lease.id, LeaseStatus.SKIPPED)
