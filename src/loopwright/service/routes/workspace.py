"""What the annotator and reviewer pages need beside the lease verbs: explanations, guidelines,
the caller's session stats, and a reviewer's view of a disputed task."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from loopwright.service.auth import Action
from loopwright.service.blind import View
from loopwright.service.deps import Caller, Ws, project
from loopwright.service.openapi import ERRORS, Id

router = APIRouter(tags=["workspace"], responses=ERRORS)


@router.get("/v1/projects/{name}/items/{item_id}/explanation")
def explanation(name: str, item_id: Id, ws: Ws, who: Caller, k: int = Query(10, ge=1, le=200)) -> Any:
    """The champion's top-``k`` features or tokens for its prediction on one item (409: no
    champion; 403: hidden from the caller on the item's audit, :mod:`loopwright.service.blind`)."""
    return View(who, name).explanation(project(ws, name, who, Action.REVIEW), item_id, k)


@router.get("/v1/projects/{name}/guidelines")
def guidelines(name: str, ws: Ws, who: Caller) -> dict[str, Any]:
    """The project's labelling guidelines (plain text) and its labels."""
    config = project(ws, name, who, Action.READ).config
    return {"project": name, "guidelines": config.guidelines, "labels": config.labels}


@router.get("/v1/projects/{name}/session")
def session(name: str, ws: Ws, who: Caller, session_id: str | None = None) -> dict[str, Any]:
    """The caller's own work: this session, the last hour, the fatigue caps left; the gold
    record only for leads and admins (:mod:`loopwright.service.blind`)."""
    loop = project(ws, name, who, Action.REVIEW)
    stats = loop.annotator_stats(who.name, session_id)
    return View(who, name).session(stats, session_id, loop.config.fatigue)


@router.get("/v1/projects/{name}/tasks/{task_id}/context")
def task_context(name: str, task_id: Id, ws: Ws, who: Caller) -> Any:
    """The task, its item and suggestion; earlier annotations, skills and posterior only for
    those who may see votes on its tier (:mod:`loopwright.service.blind`)."""
    loop = project(ws, name, who, Action.REVIEW)
    context = loop.task_context(task_id)
    who.review_tiers(name, [context.task.tier])  # Forbidden outside the caller's tiers
    return View(who, name).context(loop, context)
