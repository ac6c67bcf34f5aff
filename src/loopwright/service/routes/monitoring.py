"""Monitoring: drift, routing thresholds and certification, annotator skill, lineage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loopwright import wire
from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS, Id

router = APIRouter(prefix="/v1/projects/{name}", tags=["monitoring"], responses=ERRORS)


@router.get("/drift", response_model=wire.DriftStatus)
def drift(name: str, ws: Ws, who: Caller) -> Any:
    """The last drift check in the event log (run one with ``POST .../drift/check``)."""
    event = project(ws, name, who, Action.MONITOR).last_drift_check()
    fired = None if event is None else event.action == "drift.detected"
    return {"drift": fired, "last_check": None if event is None else to_json(event)}


@router.post("/drift/check", response_model=wire.DriftCheck)
def check_drift(name: str, ws: Ws, who: Caller) -> Any:
    """Compare the newest window of items with the one before; on drift, act (409: too few items)."""
    return to_json(project(ws, name, who, Action.MANAGE).check_drift(actor=who.name))


@router.get("/thresholds", response_model=wire.Thresholds)
def thresholds(name: str, ws: Ws, who: Caller) -> Any:
    """How items are routed: the configured bands and threshold, and the latest certificate."""
    loop = project(ws, name, who, Action.MONITOR)
    status, routing = loop.status(), loop.config.routing
    return {
        "routing": status.routing,
        "accept_threshold": routing.accept_threshold,
        "audit_rate": routing.audit_rate,
        "certify": None if routing.certify is None else routing.certify.model_dump(mode="json"),
        "certification": to_json(status.certification),
        "bands": [b.model_dump(mode="json") for b in routing.bands],
        "fallback_tier": routing.fallback_tier,
    }


@router.post("/certify", response_model=wire.Certification | None)
def certify(name: str, ws: Ws, who: Caller) -> Any:
    """Certify the champion's threshold anew if stale; ``null`` when the project does not certify."""
    return to_json(project(ws, name, who, Action.MANAGE).certify(actor=who.name))


@router.post("/backlog/accept", response_model=wire.BacklogAccepted)
def accept_backlog(name: str, ws: Ws, who: Caller) -> Any:
    """Auto-accept the untouched review backlog the champion's certified threshold covers."""
    return project(ws, name, who, Action.MANAGE).accept_backlog(actor=who.name).summary()


@router.get("/annotators/{annotator}", response_model=wire.AnnotatorStats)
def annotator_stats(name: str, annotator: str, ws: Ws, who: Caller, session_id: str | None = None) -> Any:
    stats = project(ws, name, who, Action.MONITOR).annotator_stats(annotator, session_id)
    data = to_json(stats)
    data["by_tier"] = [to_json(s, accuracy=s.accuracy) for s in stats.by_tier]
    return data


@router.get("/lineage/models/{version}", response_model=wire.ModelLineage)
def model_lineage(name: str, version: Id, ws: Ws, who: Caller) -> Any:
    return to_json(project(ws, name, who, Action.MONITOR).lineage_of_model(version))


@router.get("/lineage/items/{external_id}", response_model=wire.ItemLineage)
def item_lineage(name: str, external_id: str, ws: Ws, who: Caller) -> Any:
    return to_json(project(ws, name, who, Action.MONITOR).lineage_of_item(external_id))
