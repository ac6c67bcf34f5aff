"""Projects: list, status, ingest (batch), end-user feedback, the event log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from loopwright.service.auth import Action
from loopwright.service.deps import Body, Caller, Ws, project, to_json

router = APIRouter(prefix="/v1/projects", tags=["projects"])


class ItemIn(Body):
    external_id: str = Field(min_length=1)
    payload: dict[str, Any]
    metadata: dict[str, Any] | None = None


class IngestIn(Body):
    items: list[ItemIn] = Field(min_length=1, max_length=10_000)


class FeedbackIn(Body):
    prediction_id: int
    kind: str
    idempotency_key: str
    correction: str | None = None
    comment: str | None = None


@router.get("")
def list_projects(ws: Ws, who: Caller) -> dict[str, Any]:
    rows = [p for p in ws.projects() if who.is_member(p.name)]
    return {"projects": [{"id": p.id, "name": p.name} for p in rows]}


@router.get("/{name}")
def get_project(name: str, ws: Ws, who: Caller) -> Any:
    status = project(ws, name, who, Action.READ).status()
    return to_json(status, automation_rate=status.automation_rate)


@router.post("/{name}/items")
def ingest_items(name: str, body: IngestIn, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.INGEST)
    records = [item.model_dump(exclude_none=True) for item in body.items]
    return to_json(loop.ingest(records, actor=who.name))


@router.post("/{name}/feedback")
def feedback(name: str, body: FeedbackIn, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.FEEDBACK)
    return to_json(
        loop.feedback(
            body.prediction_id, body.kind, body.idempotency_key, body.correction, body.comment, actor=who.name
        )
    )


@router.get("/{name}/events")
def events(
    name: str,
    ws: Ws,
    who: Caller,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = project(ws, name, who, Action.EVENTS).events(after, limit)
    return {"events": to_json(rows), "next_after": rows[-1].id if rows else after}
