"""Editing a live project's settings: its guidelines, tiers and leaderboard flag.

Only these may change once a project holds data (labels, model and routing shape what is
stored). Tiers may be renamed, re-weighted and added at the end, never removed (tasks and
memberships refer to them). An edit names the version it started from, so two people editing
at once cannot overwrite each other silently. API processes cache a project's config; they
re-read it at most ``loopwright.service.deps.CONFIG_TTL_SECONDS`` after an edit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from loopwright.config import ProjectConfig
from loopwright.domain import Project
from loopwright.errors import Conflict, Invalid
from loopwright.loop.ports import Store

EDITABLE = ("guidelines", "tiers", "leaderboard")


def config_version(config: dict[str, Any]) -> str:
    """A short content hash of a stored config: what an edit must name as its base."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings(project: Project) -> dict[str, Any]:
    """The editable part of a project's config, with its version."""
    config = ProjectConfig.from_dict(project.config).model_dump(mode="json")
    return {"version": config_version(project.config), **{k: config[k] for k in EDITABLE}}


def edit_settings(
    store: Store, name: str, base: str, changes: dict[str, Any], actor: str = "system"
) -> Project:
    """Apply ``changes`` (a subset of :data:`EDITABLE`) to project ``name`` if its config is
    still at version ``base``; Invalid (naming fields) or Conflict otherwise, nothing written."""
    if unknown := sorted(set(changes) - set(EDITABLE)):
        raise Invalid(f"only {list(EDITABLE)} can be edited here; not {unknown}")
    with store.unit_of_work() as uow:
        current = uow.projects.get(name)
        if config_version(current.config) != base:
            raise Conflict(
                f"project {name!r} was edited since you loaded it (version {base}); reload and edit again"
            )
        old = ProjectConfig.from_dict(current.config)
        new = ProjectConfig.from_dict({**current.config, **changes})
        removed = sorted({t.tier for t in old.tiers} - {t.tier for t in new.tiers})
        if removed:
            raise Invalid(
                f"tiers cannot be removed (tasks and people refer to them): {removed}",
                [("tiers", f"keep tiers {sorted(t.tier for t in old.tiers)}; add new ones at the end")],
            )
        stored = new.model_dump(mode="json")
        uow.projects.set_config(current.id, stored)
        edited = {k: changes[k] for k in EDITABLE if k in changes and k != "guidelines"}
        uow.events.add(
            current.id, actor, "project.edited", "project", name, {"changed": sorted(changes), **edited}
        )
    return Project(current.id, current.name, stored, current.created_at)
