"""Gold items: known answers mixed into review to score annotators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from loopwright import wire
from loopwright.service.auth import Action
from loopwright.service.deps import Body, Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, MAX_TIERS, ExternalId, Key, Metadata, Tier
from loopwright.service.routes.jobs import JobsDep, accepted

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


class FromAuditsIn(Body):
    dry_run: bool = Field(False, description="list the items in the job's result, add nothing")
    tiers: list[Tier] | None = Field(
        default=None,
        max_length=MAX_TIERS,
        description="tiers to add them to (default: those not taking audits)",
    )


@router.post("/gold/from-audits", response_model=wire.Job, status_code=202)
def gold_from_audits(
    name: str, body: FromAuditsIn, ws: Ws, jobs: JobsDep, who: Caller, response: Response
) -> Any:
    """Queue a job that makes gold of the audited items the champion gets wrong (two or more
    audit answers, all agreeing) on the tiers that see its suggestion; the job's ``result.items``
    lists them (with ``dry_run``, only lists them)."""
    loop = project(ws, name, who, Action.MANAGE)
    params = body.model_dump(exclude_none=True)
    return accepted(jobs.enqueue(loop.project.name, "gold_from_audits", params, who.name), response)
