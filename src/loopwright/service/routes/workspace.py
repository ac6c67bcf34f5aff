"""What the annotator and reviewer pages need beside the lease verbs: explanations, guidelines,
the caller's session stats, and a reviewer's view of a disputed task."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, Id

router = APIRouter(tags=["workspace"], responses=ERRORS)


@router.get("/v1/projects/{name}/items/{item_id}/explanation")
def explanation(name: str, item_id: Id, ws: Ws, who: Caller, k: int = Query(10, ge=1, le=200)) -> Any:
    """The champion's top-``k`` features or tokens for its prediction on one item (409: no champion)."""
    return to_json(project(ws, name, who, Action.REVIEW).explain(item_id, k))


@router.get("/v1/projects/{name}/guidelines")
def guidelines(name: str, ws: Ws, who: Caller) -> dict[str, Any]:
    """The project's labelling guidelines (plain text) and its labels."""
    config = project(ws, name, who, Action.READ).config
    return {"project": name, "guidelines": config.guidelines, "labels": config.labels}


@router.get("/v1/projects/{name}/session")
def session(name: str, ws: Ws, who: Caller, session_id: str | None = None) -> dict[str, Any]:
    """The caller's own work: this session, the last hour, the fatigue caps left, gold record."""
    loop = project(ws, name, who, Action.REVIEW)
    stats = loop.annotator_stats(who.name, session_id)
    fatigue = loop.config.fatigue
    session_cap, hour_cap = fatigue.max_per_session, fatigue.max_per_hour
    done = stats.annotations_this_session
    return {
        "annotator": who.name,
        "session_id": session_id,
        "done_this_session": done,
        "max_per_session": session_cap,
        "remaining_session": None if session_cap is None or done is None else max(0, session_cap - done),
        "done_last_hour": stats.annotations_last_hour,
        "max_per_hour": hour_cap,
        "remaining_hour": None if hour_cap is None else max(0, hour_cap - stats.annotations_last_hour),
        "gold_answers": stats.gold_answers,
        "gold_accuracy": stats.gold_accuracy,
        "paused_tiers": list(stats.paused_tiers),
    }


@router.get("/v1/projects/{name}/tasks/{task_id}/context")
def task_context(name: str, task_id: Id, ws: Ws, who: Caller) -> Any:
    """Every annotation on the task's item, skills, suggestion and posterior — for the task's tier."""
    loop = project(ws, name, who, Action.REVIEW)
    context = loop.task_context(task_id)
    who.review_tiers(name, [context.task.tier])  # Forbidden outside the caller's tiers
    return to_json(context)
