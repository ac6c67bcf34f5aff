"""Model versions: list, show (with gate evidence), promote, roll back, retrain; and models that
live elsewhere: register a version, upload its eval predictions, gate it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from pydantic import Field

from loopwright import wire
from loopwright.domain import ModelVersion
from loopwright.errors import Conflict
from loopwright.loop.registry import Aliases, evidence
from loopwright.service.auth import Action
from loopwright.service.deps import Body, Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, Id, Metadata
from loopwright.service.routes.jobs import accepted

router = APIRouter(prefix="/v1/projects/{name}", tags=["models"], responses=ERRORS)

Ref = Annotated[
    str,
    PathParam(
        description="a version number (3, v3) or an alias (champion, previous)",
        pattern=r"^([vV]?[0-9]{1,9}|champion|previous)$",  # ASCII digits within an INTEGER
    ),
]


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


@router.post("/retrain", response_model=wire.Job, status_code=202)
def retrain(name: str, ws: Ws, who: Caller, request: Request, response: Response) -> Any:
    """Queue a retrain job (snapshot, train a challenger, gate it, promote it if it passes) and
    answer 202 at once with the job (``Location: /v1/jobs/{id}``); no request waits on training.
    A retrain already queued for the project is returned instead of a second."""
    loop = project(ws, name, who, Action.MANAGE)
    if loop.config.model.lives_elsewhere:
        raise Conflict(
            f"this project's model lives elsewhere (model.kind {loop.config.model.kind}): loopwright "
            "never trains it; register a version your pipeline trained and gate it"
        )
    return accepted(request.app.state.jobs.enqueue(loop.project.name, "retrain", {}, who.name), response)


# -- models that live elsewhere ---------------------------------------------------------------

Version = Annotated[
    str,
    PathParam(
        description="name@version, a number (3, v3) or an alias",
        pattern=r"^(.+@.+|[vV]?[0-9]{1,9}|champion|previous)$",  # numbers within an INTEGER
    ),
]


class RegisterIn(Body):
    name: str = Field(min_length=1, max_length=200, description="the model's name")
    version: str = Field(min_length=1, max_length=200, description="your pipeline's version string")
    artifact_uri: str | None = Field(None, max_length=2000, description="where the artifact lives")
    dataset_version: str | None = Field(
        None, max_length=64, description="the dataset version it was trained on (id, prefix or latest)"
    )
    endpoint: str | None = Field(None, max_length=2000, description="a serving URL, if any")
    metadata: Metadata | None = None


class PredictionsIn(Body):
    predictions: dict[str, dict[str, Any]] = Field(
        min_length=1, max_length=100_000, description="{external_id: {label: p}} on the eval split"
    )


@router.post("/models", response_model=wire.ModelVersion, status_code=201)
def register(name: str, body: RegisterIn, ws: Ws, who: Caller) -> Any:
    """Register a version your pipeline trained (a candidate): then upload its predictions on
    the evaluation split and gate it."""
    loop = project(ws, name, who, Action.PUBLISH_MODEL)
    model = loop.register_model(
        body.name, body.version, body.artifact_uri, body.dataset_version, body.metadata, body.endpoint,
        actor=who.name,
    )  # fmt: skip
    return model_view(model, loop.model_aliases())


@router.post("/models/{version}/predictions", response_model=wire.PredictionsUploaded)
def upload_predictions(name: str, version: Version, body: PredictionsIn, ws: Ws, who: Caller) -> Any:
    """Its probabilities on every item of the eval split of the dataset it was trained on; a
    set that misses some is refused (422) and nothing is stored."""
    loop = project(ws, name, who, Action.PUBLISH_MODEL)
    return loop.upload_predictions(version, body.predictions, actor=who.name)


@router.post("/models/{version}/gate", response_model=wire.GateOutcome)
def gate(name: str, version: Version, ws: Ws, who: Caller) -> Any:
    """The paired gate (McNemar, per slice, calibration) against the champion on the same eval
    items; promoted if it passes. A failed gate is a 200 with ``promoted: false``."""
    loop = project(ws, name, who, Action.PUBLISH_MODEL)
    out = loop.gate(version, actor=who.name)
    model = model_view(out.model, loop.model_aliases())
    return {"model": model, "gate": model["gate"], "promoted": out.promoted, "manifests": []}
