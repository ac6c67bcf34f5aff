"""The lead's dashboard as one JSON document (time series per bucket and tables as of now), and
the gamified leaderboard (streaks and accuracy-weighted ranks per tier)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loopwright.errors import Invalid
from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.errors import Forbidden
from loopwright.service.openapi import ERRORS

router = APIRouter(prefix="/v1/projects/{name}", tags=["monitoring"], responses=ERRORS)


@router.get("/dashboard", response_model=dict[str, Any])
def dashboard(name: str, ws: Ws, who: Caller) -> Any:
    """Queue depth per tier, throughput, automation rate, certified threshold and drift over
    time; agreement per label and annotator pair; annotator skill; model versions with gate
    evidence. Buckets adapt to the project's span (``buckets.seconds``)."""
    return to_json(project(ws, name, who, Action.MONITOR).dashboard())


@router.get("/leaderboard", response_model=dict[str, Any])
def leaderboard(name: str, ws: Ws, who: Caller) -> Any:
    """Per tier: each person's answers, gold accuracy, Dawid-Skene skill, quality and score
    (answers x kappa², so speed alone never wins), with day and agreement streaks. Leads, viewers
    and admins always; annotators and experts if the project sets
    ``leaderboard.visible_to_annotators`` (see :mod:`loopwright.loop.leaderboard`)."""
    from loopwright.loop.leaderboard import leaderboard as board
    from loopwright.store.sql import SqlStore
    from loopwright.store.sql.leaderboard import answers

    if who.may(name, Action.MONITOR):
        loop = project(ws, name, who, Action.MONITOR)
    else:
        loop = project(ws, name, who, Action.REVIEW)
        if not loop.config.leaderboard.visible_to_annotators:
            raise Forbidden(f"project {name!r} does not show its leaderboard to annotators")
    store = ws.store
    if not isinstance(store, SqlStore):  # pragma: no cover - the server always runs on SQL
        raise Invalid("the leaderboard needs the SQL store")
    with store.engine.connect() as conn:
        rows = answers(conn, loop.project.id)
    config = loop.config
    tiers = [(t.tier, t.name) for t in config.tiers]
    today = ws.clock().date()
    return to_json(board(rows, tiers, len(config.labels), today, config.leaderboard.visible_to_annotators))
