"""Labels: the project's annotations and resolutions, paged by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loopwright import wire
from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, After, Limit

router = APIRouter(prefix="/v1/projects/{name}", tags=["labels"], responses=ERRORS)


@router.get("/annotations", response_model=wire.AnnotationPage)
def list_annotations(name: str, ws: Ws, who: Caller, after: After = 0, limit: Limit = 100) -> Any:
    rows = project(ws, name, who, Action.MONITOR).annotations(after, limit)
    return {"annotations": to_json(rows), "next_after": rows[-1].id if rows else after}


@router.get("/resolutions", response_model=wire.ResolutionPage)
def list_resolutions(name: str, ws: Ws, who: Caller, after: After = 0, limit: Limit = 100) -> Any:
    rows = project(ws, name, who, Action.MONITOR).resolutions(after, limit)
    return {"resolutions": to_json(rows), "next_after": rows[-1].id if rows else after}
