"""Review: the next task for the caller's tiers, and the lease verbs (submit, extend, release, skip)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field, field_validator

from loopwright import wire
from loopwright.errors import Invalid
from loopwright.service.blind import View
from loopwright.service.deps import (
    Body,
    Caller,
    Ws,
    lease_project,
    open_project,
    remember_lease,
    respond,
    to_json,
)
from loopwright.service.openapi import ERRORS, MAX_KEY, MAX_TEXT, MAX_TIERS, Id, Key, Tier

router = APIRouter(tags=["review"], responses=ERRORS)


class NextTaskIn(Body):
    tiers: list[Tier] | None = Field(default=None, max_length=MAX_TIERS)
    session_id: Key | None = None


MAX_SHAPES = 10_000  # spans or boxes in one answer
Answer = str | list[str] | list[dict[str, Any]]


class SubmitIn(Body):
    label: Answer = Field(
        examples=["spam", ["billing", "urgent"], [{"start": 0, "end": 5, "label": "PER"}]],
        description=f"a label; for task multilabel the set of labels (a list, or its JSON text); "
        f"at most {MAX_KEY} labels of at most {MAX_KEY} characters; for task spans / boxes the "
        f"list of {{start, end, label}} / {{x, y, w, h, label}} objects (at most {MAX_SHAPES})",
    )
    unsure: bool = False
    comment: str | None = Field(default=None, max_length=MAX_TEXT)

    @field_validator("label")
    @classmethod
    def _bounded(cls, value: Answer) -> Answer:
        """One error at ``body.label`` for a label or set too long (not one per union branch)."""
        if isinstance(value, list) and any(isinstance(p, dict) for p in value):  # spans or boxes
            if len(value) > MAX_SHAPES:
                raise ValueError(f"at most {MAX_SHAPES} spans or boxes")
            return value
        parts = [value] if isinstance(value, str) else value
        if len(parts) > MAX_KEY or any(len(p) > MAX_KEY for p in parts):
            raise ValueError(f"at most {MAX_KEY} labels of at most {MAX_KEY} characters")
        return value


class ExtendIn(Body):
    seconds: int | None = Field(default=None, gt=0, le=86_400, strict=True, examples=[60])


@router.post(
    "/v1/projects/{name}/tasks/next",
    response_model=wire.Assignment,
    response_model_exclude_unset=True,  # the blind view leaves keys out (loopwright.service.blind)
    responses={204: {"description": "no task for the caller right now"}},
)
def next_task(name: str, ws: Ws, who: Caller, body: NextTaskIn | None = None) -> Any:
    body = body or NextTaskIn()
    tiers = who.review_tiers(name, body.tiers)
    loop = open_project(ws, name)
    known = {t.tier for t in loop.config.tiers}
    unknown = sorted(set(tiers or ()) - known)
    if unknown:
        raise Invalid(f"unknown tiers {unknown}", [("tiers", f"project tiers are {sorted(known)}")])
    view = View(who, name)
    assignment = loop.next_task(who.name, tiers, body.session_id, score_now=not view.sees_gold)
    if assignment is None:
        return Response(status_code=204)
    remember_lease(ws, assignment.lease.id, loop.project.id)
    return respond(wire.Assignment, view.assignment(loop, assignment))  # encoded once


@router.post(
    "/v1/leases/{lease_id}/submit", response_model=wire.SubmitResult, response_model_exclude_unset=True
)
def submit(lease_id: Id, body: SubmitIn, ws: Ws, who: Caller) -> Any:
    loop = lease_project(ws, lease_id, who)
    label = body.label if isinstance(body.label, str) else json.dumps(body.label)  # a label set
    result = loop.submit(lease_id, who.name, label, body.unsure, body.comment)
    return respond(wire.SubmitResult, View(who, loop.project.name).submit(loop, result))


@router.post("/v1/leases/{lease_id}/extend", response_model=wire.Lease)
def extend(lease_id: Id, ws: Ws, who: Caller, body: ExtendIn | None = None) -> Any:
    seconds = None if body is None else body.seconds
    return to_json(lease_project(ws, lease_id, who).extend(lease_id, who.name, seconds))


@router.post("/v1/leases/{lease_id}/release", response_model=wire.Lease)
def release(lease_id: Id, ws: Ws, who: Caller) -> Any:
    return to_json(lease_project(ws, lease_id, who).release(lease_id, who.name))


@router.post("/v1/leases/{lease_id}/skip", response_model=wire.Lease)
def skip(lease_id: Id, ws: Ws, who: Caller) -> Any:
    return to_json(lease_project(ws, lease_id, who).skip(lease_id, who.name))
