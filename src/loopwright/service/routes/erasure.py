"""Erase an item (GDPR Art. 17): ``DELETE /v1/projects/{name}/items/{external_id}``.

Admins and project leads only (``erase``). The reason comes in an optional JSON body
``{"reason": "..."}`` or the query ``?reason=``; the answer is the tombstone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Body as BodyParam
from pydantic import Field

from loopwright import wire
from loopwright.errors import Invalid
from loopwright.loop.erasure import MAX_REASON
from loopwright.service.auth import Action
from loopwright.service.deps import Body, Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS

router = APIRouter(prefix="/v1/projects/{name}/items", tags=["erasure"], responses=ERRORS)


class EraseIn(Body):
    reason: str | None = Field(None, max_length=MAX_REASON, description="why, for the tombstone")


@router.delete("/{external_id}", response_model=wire.Tombstone)
def erase_item(
    name: str,
    external_id: str,
    ws: Ws,
    who: Caller,
    body: Annotated[EraseIn | None, BodyParam()] = None,
    reason: Annotated[str | None, Query(max_length=MAX_REASON, description="why (or in the body)")] = None,
) -> Any:
    """Delete the item's payload, metadata, predictions, tasks, annotations, feedback and dataset
    entries, redact the events about it, and keep a tombstone (never the content)."""
    loop = project(ws, name, who, Action.ERASE)
    given = body.reason if body is not None else None
    if given is not None and reason is not None and given != reason:
        raise Invalid("the reason is given twice, differently: send it in the body or the query")
    return to_json(loop.erase(external_id, actor=who.name, reason=given if given is not None else reason))
