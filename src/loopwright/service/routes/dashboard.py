"""The lead's dashboard as one JSON document: time series per bucket and tables as of now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS

router = APIRouter(prefix="/v1/projects/{name}", tags=["monitoring"], responses=ERRORS)


@router.get("/dashboard", response_model=dict[str, Any])
def dashboard(name: str, ws: Ws, who: Caller) -> Any:
    """Queue depth per tier, throughput, automation rate, certified threshold and drift over
    time; agreement per label and annotator pair; annotator skill; model versions with gate
    evidence. Buckets adapt to the project's span (``buckets.seconds``)."""
    return to_json(project(ws, name, who, Action.MONITOR).dashboard())
