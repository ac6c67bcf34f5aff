"""Webhooks of a project: subscribe, list, unsubscribe; list deliveries, requeue a dead one.

Admins and project leads only (``manage``). The signing secret is in the answer to the POST
that creates a subscription, and nowhere else. A URL whose host is a loopback, private,
link-local, … address is refused (422 on ``url``) unless the operator allows it
(:mod:`loopwright.service.egress`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from loopwright.service.auth import Action
from loopwright.service.deps import Body, Caller, Ws, project
from loopwright.service.openapi import ERRORS, Before, Id
from loopwright.service.webhooks import Delivery, Subscription, Webhooks
from loopwright.wire import DeliveryList, DeliveryOut, WebhookCreated, WebhookList

router = APIRouter(prefix="/v1/projects/{name}/webhooks", tags=["webhooks"], responses=ERRORS)


class WebhookIn(Body):
    url: str = Field(min_length=1, max_length=2000, description="http:// or https:// URL to POST events to")
    events: list[str] = Field(
        default_factory=list,
        description="action prefixes to send, e.g. ['items.', 'item.resolved']; empty: every event",
    )


def _out(sub: Subscription, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": sub.id,
        "project": name,
        "url": sub.url,
        "events": list(sub.events),
        "active": sub.active,
        "last_event_id": sub.last_event_id,
        "created_by": sub.created_by,
        "created_at": sub.created_at,
        **extra,
    }


def _delivery(d: Delivery) -> dict[str, Any]:
    return {k: getattr(d, k) for k in DeliveryOut.model_fields}


@router.post("", status_code=201, response_model=WebhookCreated)
def create_webhook(name: str, body: WebhookIn, ws: Ws, who: Caller, request: Request) -> Any:
    proj = project(ws, name, who, Action.MANAGE).project
    allow = getattr(request.app.state, "webhook_allow", ())  # the operator's LOOPWRIGHT_WEBHOOK_ALLOW
    sub = Webhooks(ws.store, ws.clock, allow=allow).subscribe(proj, body.url, body.events, who.name)
    return _out(sub, name, secret=sub.secret)


@router.get("", response_model=WebhookList)
def list_webhooks(name: str, ws: Ws, who: Caller) -> Any:
    proj = project(ws, name, who, Action.MANAGE).project
    return {"webhooks": [_out(s, name) for s in Webhooks(ws.store, ws.clock).list(proj)]}


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(name: str, webhook_id: Id, ws: Ws, who: Caller) -> Response:
    proj = project(ws, name, who, Action.MANAGE).project
    Webhooks(ws.store, ws.clock).unsubscribe(proj, webhook_id, who.name)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    name: str,
    webhook_id: Id,
    ws: Ws,
    who: Caller,
    status: Literal["pending", "delivered", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Before = None,
) -> Any:
    proj = project(ws, name, who, Action.MANAGE).project
    rows = Webhooks(ws.store, ws.clock).deliveries(proj, webhook_id, status, limit, before)
    return {
        "deliveries": [_delivery(d) for d in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", response_model=DeliveryOut)
def retry_delivery(name: str, webhook_id: Id, delivery_id: Id, ws: Ws, who: Caller) -> Any:
    proj = project(ws, name, who, Action.MANAGE).project
    return _delivery(Webhooks(ws.store, ws.clock).retry(proj, webhook_id, delivery_id))
