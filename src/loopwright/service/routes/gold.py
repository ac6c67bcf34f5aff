"""Gold items: known answers mixed into review to score annotators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from loopwright import wire
from loopwright.service.auth import Action
from loopwright.service.deps import Body, Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, MAX_TIERS, ExternalId, Key, Metadata, Tier

router = APIRouter(prefix="/v1/projects/{name}", tags=["gold"], responses=ERRORS)


class GoldItemIn(Body):
    external_id: ExternalId
    payload: dict[str, Any]
    label: Key
    metadata: Metadata | None = None


class GoldIn(Body):
    items: list[GoldItemIn] = Field(min_length=1, max_length=10_000)
    tiers: list[Tier] | None = Field(
        default=None, max_length=MAX_TIERS, description="tiers to add them to (default: every tier)"
    )


@router.post("/gold", response_model=wire.GoldAdded, status_code=201)
def add_gold(name: str, body: GoldIn, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.MANAGE)
    records = [item.model_dump(exclude_none=True) for item in body.items]
    return {"tasks": to_json(loop.add_gold(records, body.tiers, actor=who.name))}
