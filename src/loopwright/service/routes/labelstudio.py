"""Label Studio's ML backend protocol, one backend per project at ``/label-studio/{project}``:
``GET /health`` (and ``/``), ``POST /setup``, ``POST /predict``, ``POST /webhook``, with the
request and response shapes of ``label_studio_ml/api.py`` (label-studio-ml-backend).

Label Studio authenticates as its ML backend settings allow: HTTP Basic, whose password is a
loopwright API token (the user name is not checked); a bearer token works too. ``/predict``
needs the ``ingest`` permission (a service account) and answers the champion's prediction for
each task as a ``choices`` result on the labelling config's ``<Choices>`` control, scored with
the champion's probability; ``/webhook`` (same permission) takes ``ANNOTATION_CREATED`` and
``ANNOTATION_UPDATED`` and records the annotation through the same import as ``loopwright
labelstudio import``: the task's item is ingested if new, the annotator is ``ls:<user id>``.
loopwright keeps an annotator's first answer on an item, so an update changes nothing here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from loopwright.errors import Invalid, NotFitted
from loopwright.integrations import labelstudio as ls
from loopwright.loop import Loop
from loopwright.loop.history import multilabel
from loopwright.service.auth import OPEN_PRINCIPAL, Action, Principal
from loopwright.service.deps import Ws, principal, project
from loopwright.service.errors import Unauthenticated
from loopwright.service.openapi import ERRORS

router = APIRouter(prefix="/label-studio/{name}", tags=["label-studio"], responses=ERRORS)
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
MODEL_CLASS = "loopwright"


def basic_or_bearer(request: Request) -> Principal:
    """The caller from ``Authorization: Basic`` (password: a loopwright token), else as usual."""
    authenticator = request.app.state.authenticator
    if authenticator is None:
        return OPEN_PRINCIPAL
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return principal(request)
    try:
        _, _, token = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        token = ""
    found = authenticator.resolve(token) if token else None
    if found is None:
        raise Unauthenticated("send HTTP Basic auth whose password is a valid loopwright API token")
    return found


Caller = Annotated[Principal, Depends(basic_or_bearer)]
Json = Annotated[dict[str, Any], Body()]


def _version(loop: Loop) -> str:
    """The champion as Label Studio's ``model_version`` (``<project>@<ref>``), or ``none``."""
    champion = next((m for m in loop.models() if m.status.value == "champion"), None)
    return f"{loop.project.name}@{champion.ref}" if champion is not None else "none"


@router.get("/health")
@router.get("/")
def health(name: str, ws: Ws, who: Caller) -> dict[str, Any]:
    """Label Studio's connection check."""
    project(ws, name, who, Action.READ)
    return {"status": "UP", "model_class": MODEL_CLASS}


@router.post("/setup")
def setup(name: str, ws: Ws, who: Caller, body: Json) -> dict[str, Any]:
    """Label Studio announces the project (its labelling config in ``schema``)."""
    loop = project(ws, name, who, Action.READ)
    if ls.choices_control(body.get("schema")) is None and body.get("schema"):
        raise Invalid("the labelling config has no <Choices> control: loopwright predicts choices only")
    return {"model_version": _version(loop)}


@router.post("/predict")
def predict(name: str, ws: Ws, who: Caller, body: Json) -> dict[str, Any]:
    """The champion's prediction per task, in order: ``{"results": [prediction, …]}``; a task
    whose data the model cannot read gets a prediction with an empty result."""
    from loopwright.learning.estimators import check_payload  # NumPy: on first use

    loop = project(ws, name, who, Action.INGEST)
    control = ls.choices_control(body.get("label_config"))
    if control is None:
        raise Invalid("label_config has no <Choices> control: loopwright predicts choices only")
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise Invalid("tasks must be a list of Label Studio tasks")
    readable: dict[int, dict[str, Any]] = {}  # task position → data the model can read
    for i, t in enumerate(tasks):
        data = t.get("data") if isinstance(t, Mapping) else None
        if isinstance(data, dict) and check_payload(loop.config, data) is None:
            readable[i] = data
    version = _version(loop)
    results: list[dict[str, Any]] = [{"model_version": version, "score": 0.0, "result": []} for _ in tasks]
    if readable:
        try:
            proba = loop.predict(list(readable.values()))
        except NotFitted as exc:
            raise NotFitted(f"no prediction for Label Studio: {exc}") from None
        labels = loop.config.labels
        for i, row in zip(readable, proba, strict=True):
            best = int(row.argmax())
            results[i] = ls.prediction_result(control, labels[best], float(row[best]), version)
    return {"results": results}


@router.post(
    "/webhook", status_code=201, responses={200: {"description": "not an annotation event: ignored"}}
)
def webhook(name: str, ws: Ws, who: Caller, body: Json) -> Any:
    """Annotations made in Label Studio (``ANNOTATION_CREATED``, ``ANNOTATIONS_CREATED`` after
    an import there, ``ANNOTATION_UPDATED``), recorded as loopwright annotations."""
    loop = project(ws, name, who, Action.INGEST)
    action = body.get("action")
    if action not in ANNOTATION_EVENTS:
        return JSONResponse({"status": "Unknown event"}, status_code=200)
    tasks = _annotated_tasks(action, body.get("task"), body.get("annotation"))
    from_name = None
    lsproject = body.get("project")
    if isinstance(lsproject, Mapping) and (control := ls.choices_control(lsproject.get("label_config"))):
        from_name = control.from_name
    parsed = ls.parse_export(
        tasks, loop.config.labels, multilabel=multilabel(loop.config), from_name=from_name
    )
    report = loop.import_history(parsed.items, ls.SOURCE, who.name)
    return {
        "status": "ok",
        "action": action,
        "annotations_added": report.annotations_added,
        "annotations_existing": report.annotations_existing,
        "resolved": report.resolved,
        "escalated": report.escalated,
    }


def _annotated_tasks(action: str, task: Any, annotation: Any) -> list[dict[str, Any]]:
    """The event's tasks, each with its annotations (one event may carry many, after an import)."""
    many = action == "ANNOTATIONS_CREATED"
    tasks = task if many else [task]
    annotations = annotation if many else [annotation]
    if not isinstance(tasks, list) or not isinstance(annotations, list):
        raise Invalid(f"{action} needs the task and annotation " + ("lists" if many else "objects"))
    if not all(isinstance(t, Mapping) for t in tasks) or not all(isinstance(a, Mapping) for a in annotations):
        raise Invalid(f"{action}: each task and annotation must be an object")
    if not all(isinstance(t.get("id"), int | str) for t in tasks):
        raise Invalid(f"{action}: each task needs its id")
    by_id = {t["id"]: {**t, "annotations": [], "predictions": []} for t in tasks}
    for a in annotations:
        ref = a.get("task")
        target = by_id.get(ref) if many and isinstance(ref, int | str) else None
        if not many:
            target = next(iter(by_id.values()))
        elif target is None:
            raise Invalid(f"{action}: annotation {a.get('id')} names task {ref}, which was not sent")
        target["annotations"].append(a)
    return list(by_id.values())
