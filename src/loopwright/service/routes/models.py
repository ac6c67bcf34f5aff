"""Model versions: list, show (with gate evidence), promote, roll back, retrain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from loopwright import wire
from loopwright.domain import ModelVersion
from loopwright.loop.registry import Aliases, evidence
from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, Id

router = APIRouter(prefix="/v1/projects/{name}", tags=["models"], responses=ERRORS)

Ref = Annotated[str, PathParam(description="a version number (3, v3) or an alias (champion, previous)")]


def model_view(m: ModelVersion, aliases: Aliases) -> dict[str, Any]:
    """A model version with its aliases and gate evidence (incl. a 95 % interval)."""
    return to_json(m) | {"aliases": aliases.of(m), "gate": to_json(evidence(m))}


@router.get("/models", response_model=wire.ModelList)
def list_models(name: str, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.READ)
    aliases = loop.model_aliases()
    return {"models": [model_view(m, aliases) for m in loop.models()]}


@router.get("/models/{ref}", response_model=wire.ModelVersion)
def get_model(name: str, ref: Ref, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.READ)
    return model_view(loop.model(ref), loop.model_aliases())


@router.post("/models/{version}/promote", response_model=wire.ModelVersion)
def promote(name: str, version: Id, ws: Ws, who: Caller) -> Any:
    """Make ``version`` the champion; a version its gate rejected cannot be promoted (409)."""
    loop = project(ws, name, who, Action.MANAGE)
    return model_view(loop.promote(version, actor=who.name), loop.model_aliases())


@router.post("/models/rollback", response_model=wire.Rollback)
def rollback(name: str, ws: Ws, who: Caller) -> Any:
    """Make the ``previous`` version champion again and retire the current one."""
    loop = project(ws, name, who, Action.MANAGE)
    done = loop.rollback(actor=who.name)
    aliases = loop.model_aliases()
    replaced = None if done.replaced is None else model_view(loop.model(done.replaced.version), aliases)
    return {"champion": model_view(done.model, aliases), "replaced": replaced}


@router.post("/retrain", response_model=wire.RetrainResult)
def retrain(name: str, ws: Ws, who: Caller) -> Any:
    """Snapshot, train a challenger, gate it and promote it if it passes (a failed gate is 200)."""
    loop = project(ws, name, who, Action.MANAGE)
    out = loop.retrain(actor=who.name)
    dataset = to_json(out.dataset)
    dataset.pop("entries", None)
    model = model_view(out.model, loop.model_aliases())
    return {"dataset": dataset, "model": model, "gate": to_json(out.gate), "promoted": out.promoted}
