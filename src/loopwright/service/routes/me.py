"""Who am I: the caller's name, admin flag and project memberships (the UI's navigation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loopwright.service.auth import ALLOWED, Action
from loopwright.service.deps import Caller, Ws

router = APIRouter(tags=["me"])


@router.get("/v1/me")
def me(ws: Ws, who: Caller) -> dict[str, Any]:
    """The caller and, per project they belong to, their role, tiers, allowed actions and
    whether they may see the leaderboard."""
    projects = {}
    for p in ws.projects():
        if not who.is_member(p.name):
            continue
        m = who.memberships.get(p.name)
        actions = [a.value for a in Action if m is None or m.role in ALLOWED[a]]
        shown = (p.config.get("leaderboard") or {}).get("visible_to_annotators", False)
        projects[p.name] = {
            "role": "admin" if m is None else m.role.value,
            "tiers": None if m is None or m.tiers is None else list(m.tiers),
            "actions": actions,
            "leaderboard": Action.MONITOR.value in actions or (shown and Action.REVIEW.value in actions),
        }
    return {"name": who.name, "admin": who.admin, "projects": projects}
