"""Projects: list, create (admins), status, config, ingest (batch), predict, feedback, events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Body as JsonBody
from pydantic import ConfigDict, Field

from loopwright import wire
from loopwright.service.auth import Action
from loopwright.service.blind import View
from loopwright.service.deps import Body, Caller, Ws, project, respond, to_json
from loopwright.service.errors import Forbidden
from loopwright.service.openapi import (
    ERRORS,
    After,
    BodyId,
    ExternalId,
    Key,
    Limit,
    Metadata,
    Text,
    check_config_text,
)

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=ERRORS)


class PredictionIn(Body):
    """The producing model's output, sent with the record: stored and routed as is."""

    model: str = Field(max_length=401, description="<name>@<version> of the model that produced it")
    probabilities: dict[str, Any] = Field(
        description="{label: p} for every project label, finite, ≥ 0, summing to 1 (± 1e-6 · labels)"
    )


class ItemIn(Body):
    external_id: ExternalId
    payload: dict[str, Any]
    metadata: Metadata | None = None
    prediction: PredictionIn | None = None
    embedding: list[Any] | None = Field(None, max_length=65_536, description="a fixed-length float vector")


class IngestIn(Body):
    items: list[ItemIn] = Field(min_length=1, max_length=10_000)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [{"external_id": "doc-1", "payload": {"x": 1.5}}]}]}
    )


class PredictIn(Body):
    payloads: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class FeedbackIn(Body):
    prediction_id: BodyId
    kind: Key
    idempotency_key: Key
    correction: Key | None = None
    comment: Text | None = None


@router.get("", response_model=wire.ProjectList)
def list_projects(ws: Ws, who: Caller) -> Any:
    rows = [p for p in ws.projects() if who.is_member(p.name)]
    return {"projects": [{"id": p.id, "name": p.name} for p in rows]}


@router.post("", response_model=wire.Project, status_code=201)
def create_project(ws: Ws, who: Caller, config: Annotated[dict[str, Any], JsonBody()]) -> Any:
    """Create a project from its configuration (the JSON form of the YAML file); admins only."""
    if not who.admin:
        raise Forbidden("only admins may create projects")
    check_config_text(config)
    return to_json(ws.create_project(config).project)


@router.get("/{name}", response_model=wire.ProjectStatus)
def get_project(name: str, ws: Ws, who: Caller) -> Any:
    status = project(ws, name, who, Action.READ).status()
    return View(who, name).status(to_json(status, automation_rate=status.automation_rate))


@router.get("/{name}/config", response_model=dict[str, Any])
def get_config(name: str, ws: Ws, who: Caller) -> Any:
    """The project's configuration, complete with defaults (POST it to create a copy)."""
    return project(ws, name, who, Action.READ).config.model_dump(mode="json")


@router.post("/{name}/items", response_model=wire.IngestReport)
def ingest_items(name: str, body: IngestIn, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.INGEST)
    records = [item.model_dump(exclude_none=True) for item in body.items]
    report = loop.ingest(records, actor=who.name)
    drift = report.drift and {k: v for k, v in report.drift.items() if k != "features"} | {
        "details": f"/v1/projects/{name}/drift"  # the per-feature table: the last drift check
    }
    outcomes = [  # built here, not by the generic encoder: a batch has up to 10,000 of them
        {
            "item_id": o.item_id,
            "external_id": o.external_id,
            "duplicate": o.duplicate,
            "label": o.label,
            "confidence": o.confidence,
            "route": None if o.route is None else o.route.value,
            "tier": o.tier,
            "reason": o.reason,
        }
        for o in report.outcomes
    ]
    alarm = {True: "confirmed", False: "retracted", None: None}[report.alarm_confirmed]
    data = {"outcomes": outcomes, "drift": to_json(drift), "drift_alarm": alarm, "created": report.created}
    return respond(wire.IngestReport, data | {"duplicates": report.duplicates})


@router.post("/{name}/predict", response_model=wire.PredictionBatch)
def predict(name: str, body: PredictIn, ws: Ws, who: Caller) -> Any:
    """The champion's labels and confidences for a batch of payloads; nothing is stored."""
    loop = project(ws, name, who, Action.INGEST)
    proba = loop.predict(body.payloads)
    labels = loop.config.labels
    rows = [dict(zip(labels, map(float, row), strict=True)) for row in proba]
    best = [max(labels, key=row.__getitem__) for row in rows]
    scored = [{"label": b, "confidence": r[b], "probabilities": r} for b, r in zip(best, rows, strict=True)]
    return {"labels": labels, "predictions": scored}


@router.post("/{name}/feedback", response_model=wire.Feedback)
def feedback(name: str, body: FeedbackIn, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.FEEDBACK)
    return to_json(
        loop.feedback(
            body.prediction_id, body.kind, body.idempotency_key, body.correction, body.comment, actor=who.name
        )
    )


@router.get("/{name}/events", response_model=wire.EventPage)
def events(
    name: str,
    ws: Ws,
    who: Caller,
    after: After = 0,
    limit: Limit = 100,
) -> Any:
    rows = project(ws, name, who, Action.EVENTS).events(after, limit)
    return {"events": to_json(rows), "next_after": rows[-1].id if rows else after}
