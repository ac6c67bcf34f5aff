"""End-user feedback on predictions: thumbs, "report issue", corrections.

A thumbs-down, a report or a correction opens a priority review task for the item (unless one
is open already). A correction is a low-trust candidate label: it never resolves an item by
itself; with Dawid-Skene consolidation it joins as one more annotator, ``end-users``, whose
reliability is estimated like anyone else's. Feedback is idempotent on its key: the same key
with the same content returns the stored record; with other content it is a Conflict.
"""

from __future__ import annotations

from typing import Any

from loopwright.domain import Feedback, FeedbackKind, TaskStatus
from loopwright.errors import Conflict, Invalid, NotFound, UnknownLabel
from loopwright.loop.context import Context

END_USERS = "end-users"  # the annotator name corrections carry into consolidation
FEEDBACK_PRIORITY = 2.0  # above every routed task (≤ 1) and first escalations


def give_feedback(
    ctx: Context,
    prediction_id: int,
    kind: str,
    idempotency_key: str,
    correction: str | list[str] | None = None,
    comment: str | None = None,
    actor: str = "end-user",
) -> Feedback:
    """Record feedback on a prediction of this project; see the module docstring."""
    kinds = [k.value for k in FeedbackKind]
    if kind not in kinds:
        raise Invalid(f"unknown feedback kind {kind!r}; use one of {kinds}")
    fkind = FeedbackKind(kind)
    if not idempotency_key.strip():
        raise Invalid("idempotency_key must not be empty: give each feedback event its own key")
    if (fkind is FeedbackKind.CORRECTION) != (correction is not None):
        raise Invalid("give a correction label exactly when kind is 'correction'")
    if correction is not None:
        correction = _correction(ctx, correction)
    pid = ctx.project.id
    with ctx.store.unit_of_work() as uow:
        if (old := uow.feedback.by_key(pid, idempotency_key)) is not None:
            same = (old.prediction_id, old.kind, old.correction, old.comment)
            if same != (prediction_id, fkind, correction, comment):
                raise Conflict(
                    f"idempotency key {idempotency_key!r} was used for different feedback; "
                    "nothing was written"
                )
            return old
        prediction = uow.predictions.get(prediction_id)
        item = uow.items.get(prediction.item_id)
        if item.project_id != pid:
            raise NotFound(f"prediction id {prediction_id} does not exist in project {ctx.project.name!r}")
        task_id = None
        if fkind is not FeedbackKind.THUMBS_UP:
            open_tasks = [t for t in uow.tasks.for_item(item.id) if t.status is TaskStatus.OPEN]
            if open_tasks:
                task_id = open_tasks[0].id
            else:
                tier = ctx.config.routing.feedback_tier or ctx.config.routing.fallback_tier
                task = uow.tasks.add(
                    pid,
                    item.id,
                    None,
                    tier,
                    FEEDBACK_PRIORITY,
                    f"user_{fkind.value}",
                    ctx.config.tier(tier).required_annotations,
                )
                task_id = task.id
        stored = uow.feedback.add(
            {
                "project_id": pid,
                "prediction_id": prediction_id,
                "item_id": item.id,
                "kind": fkind,
                "correction": correction,
                "comment": comment,
                "actor": actor,
                "idempotency_key": idempotency_key,
                "task_id": task_id,
            }
        )
        ctx.event(
            uow,
            actor,
            "feedback.received",
            ("prediction", prediction_id),
            feedback_id=stored.id,
            kind=fkind.value,
            correction=correction,
            task_id=task_id,
        )
        return stored


def _correction(ctx: Context, correction: Any) -> str:
    """A correction's canonical text: one of the labels, or for ``task: multilabel`` a label
    set (a list or its JSON text; stored sorted, so the same set is the same correction)."""
    if ctx.config.task != "multilabel":
        if correction not in ctx.labels:
            raise UnknownLabel(f"correction {correction!r} is not a label of this project: {ctx.labels}")
        return str(correction)
    from loopwright.tasks import MultiLabel  # NumPy: loaded on use

    try:
        return MultiLabel().parse(correction, ctx.labels)
    except Invalid as exc:
        raise type(exc)(exc.message.replace("label:", "correction:", 1)) from None
