"""What a reviewer may see of review work: gold hidden from those it measures, votes blind.

The one place where the review face (``tasks/next``, ``submit``, ``context``, ``session``, and
the counts in a project's status and in ``/metrics``)
redacts its answers, by two rows of the permission table (:mod:`loopwright.service.auth`):

- without ``see_gold`` (annotators, experts: the people gold measures) a gold task looks like
  any other task in every key and value: status ``open``; no ``gold_label``, ``decision_id``,
  ``priority``, ``reason``, ``required_annotations``; an item without ``external_id`` and
  ``metadata`` (both chosen by whoever added it); the suggestion is the champion's, scored when
  served, for every task alike; ``why`` names the tier only; a submit says nothing about
  correctness; the session has no gold record;
- without ``see_votes`` on the task's tier a reviewer sees no earlier annotation, posterior,
  skill or escalation note on it, and a submit returns no resolution or escalation;
- an audited item's task (reasons ``audit`` and ``audit_recheck``) is answered blind by all
  who do not see gold: no earlier answer or posterior (a second opinion on an audit must be
  independent, as it certifies the model) and no model answer (no suggestion, prelabels or
  explanation: ``model_hidden``), since an auditor shown the suggestion tends to agree with it,
  and every slip of the model they confirm is an error the certificate never counts. Gold
  tasks on the tiers that take audits are answered blind too, so that gold still looks like the
  audits beside it (and measures the auditors as they audit).

Leads and admins get everything, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopwright.config import FatigueConfig, ProjectConfig
from loopwright.domain import Item, Prediction, Task, TaskStatus
from loopwright.errors import NotFitted
from loopwright.loop import Loop, audit
from loopwright.loop.gold import AnnotatorStats
from loopwright.loop.review import Assignment, SubmitResult, live_answer
from loopwright.loop.workspace_view import TaskContext
from loopwright.service.auth import Action, Principal
from loopwright.service.deps import to_json
from loopwright.service.errors import Forbidden

TASK_KEYS = ("id", "project_id", "item_id", "tier", "status", "parent_task_id", "created_at", "closed_at")
ITEM_KEYS = ("id", "project_id", "content_hash", "payload", "created_at")


@dataclass(frozen=True, slots=True)
class View:
    """The view of one caller in one project."""

    who: Principal
    project: str

    @property
    def sees_gold(self) -> bool:
        return self.who.may(self.project, Action.SEE_GOLD)

    def sees_votes(self, tier: int) -> bool:
        return self.who.may(self.project, Action.SEE_VOTES, tier)

    def answers_blind(self, config: ProjectConfig, task: Task) -> bool:
        """Whether this caller answers ``task`` blind, seeing neither the model's answer nor
        earlier ones: an audit, or gold at the tiers that take audits (which must look like
        them), for everyone who does not see gold."""
        return not self.sees_gold and audit.blind(config, task)

    def explanation(self, loop: Loop, item_id: int, k: int) -> Any:
        """The champion's explanation for an item, unless its answer is hidden on an open task."""
        live = (TaskStatus.OPEN, TaskStatus.GOLD)
        tasks = [] if self.sees_gold else loop.item_tasks(item_id)
        if any(t.status in live and self.answers_blind(loop.config, t) for t in tasks):
            raise Forbidden("the model's answer is hidden on this item's task: answer it on your own")
        return to_json(loop.explain(item_id, k))

    @property
    def hides_counts(self) -> bool:
        """Project counts that move on a submit (open tasks, annotations, resolutions, agreement)
        but not on a gold answer would tell a measured reviewer which task was gold, and the
        audits waiting which task was an audit: hidden from them, in the status and in
        ``/metrics``. Viewers and services claim nothing: nothing of theirs to compare."""
        return not self.sees_gold and self.who.may(self.project, Action.REVIEW)

    def status(self, data: dict[str, Any]) -> dict[str, Any]:
        """The project's status, with the counts :attr:`hides_counts` names null."""
        if not self.hides_counts:
            return data
        hidden = ("open_tasks_by_tier", "annotations", "resolutions", "audits_waiting")
        return {**data, **dict.fromkeys(hidden)}

    def task(self, task: Task) -> Any:
        data = to_json(task)
        if self.sees_gold:
            return data
        data["status"] = TaskStatus.OPEN.value if task.status is TaskStatus.GOLD else task.status.value
        return {k: data[k] for k in TASK_KEYS}

    def item(self, item: Item) -> Any:
        data = to_json(item)
        return data if self.sees_gold else {k: data[k] for k in ITEM_KEYS}

    def suggestion(self, loop: Loop, item: Item, stored: Prediction | None) -> Any:
        """The stored prediction (leads, admins); else the champion's now, alike for every item."""
        if self.sees_gold:
            return to_json(stored)
        try:
            row = loop.predict([item.payload])[0]
        except NotFitted:
            return None
        return _live(
            loop.config, item, {label: float(p) for label, p in zip(loop.config.labels, row, strict=True)}
        )

    def assignment(self, loop: Loop, a: Assignment) -> Any:
        data = {**to_json(a), "model_hidden": False}
        if self.sees_gold:
            return data
        if self.answers_blind(loop.config, a.task):
            suggestion, data["prelabels"], data["model_hidden"] = None, [], True
        elif a.scored:
            suggestion = _live(loop.config, a.item, a.live)
        else:
            suggestion = self.suggestion(loop, a.item, a.suggestion)
        return {
            **data,  # anything else the assignment carries passes through
            "task": self.task(a.task),
            "lease": to_json(a.lease),
            "item": self.item(a.item),
            "suggestion": suggestion,
            "why": f"tier {a.task.tier} queue",
        }

    def submit(self, loop: Loop, result: SubmitResult) -> Any:
        if self.sees_gold:
            return to_json(result)
        nothing = {"annotation": None, "resolution": None, "escalated_to": None}
        task = result.task
        if result.annotation is None or task is None:  # a gold task: no trace of being scored
            return nothing
        if not self.sees_votes(task.tier) or self.answers_blind(loop.config, task):
            return nothing  # an audit's outcome would set it apart from the gold beside it
        upper = None if result.escalated_to is None else self.task(result.escalated_to)
        return {**nothing, "resolution": to_json(result.resolution), "escalated_to": upper}

    def context(self, loop: Loop, c: TaskContext) -> Any:
        hidden = self.answers_blind(loop.config, c.task)
        votes = self.sees_votes(c.task.tier) and not hidden
        if self.sees_gold and votes:
            return {**to_json(c), "model_hidden": False}
        escalated = c.task.parent_task_id is not None
        return {
            **to_json(c),
            "model_hidden": hidden,
            "task": self.task(c.task),
            "item": self.item(c.item),
            "annotations": to_json(c.annotations) if votes else [],
            "suggestion": None if hidden else self.suggestion(loop, c.item, c.suggestion),
            "method": c.method,
            "posterior": to_json(c.posterior) if votes else {},
            "why": c.why if votes and escalated else f"tier {c.task.tier}",
        }

    def session(
        self, stats: AnnotatorStats, session_id: str | None, fatigue: FatigueConfig
    ) -> dict[str, Any]:
        """The caller's own work and caps left; the gold record only for those who see gold."""
        session_cap, hour_cap = fatigue.max_per_session, fatigue.max_per_hour
        done = stats.annotations_this_session
        out: dict[str, Any] = {
            "annotator": stats.annotator,
            "session_id": session_id,
            "done_this_session": done,
            "max_per_session": session_cap,
            "remaining_session": None if session_cap is None or done is None else max(0, session_cap - done),
            "done_last_hour": stats.annotations_last_hour,
            "max_per_hour": hour_cap,
            "remaining_hour": None if hour_cap is None else max(0, hour_cap - stats.annotations_last_hour),
            "paused_tiers": list(stats.paused_tiers),
        }
        if self.sees_gold:
            out |= {"gold_answers": stats.gold_answers, "gold_accuracy": stats.gold_accuracy}
        return out


def _live(config: ProjectConfig, item: Item, probabilities: dict[str, float] | None) -> Any:
    """The suggestion a blind reviewer sees: the champion's answer now, as a stored prediction
    holds it (for ``multilabel`` the label set); None without a champion."""
    if (answer := live_answer(config, probabilities)) is None:
        return None
    label, confidence = answer
    return {
        "item_id": item.id,
        "probabilities": probabilities,
        "label": label,
        "confidence": confidence,
        "error": None,
    }
