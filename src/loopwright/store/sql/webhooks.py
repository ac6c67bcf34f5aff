"""Webhook subscriptions and deliveries: the event log is the outbox.

A subscription keeps a cursor (``last_event_id``) into the ``events`` table. The dispatcher
(:mod:`loopwright.service.webhooks`) turns the events after the cursor that match the
subscription's filter into ``pending`` delivery rows and moves the cursor, in one transaction;
then it sends the deliveries that are due and records each outcome here.

Claiming for several server processes: a dispatcher leases a whole subscription
(``locked_until``), in a transaction that selects the due subscriptions ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` serialises that transaction anyway). While
the lease runs, no other process sends that subscription's deliveries, which keeps them in
event order; no database transaction stays open during an HTTP request; and a lease left by a
crashed process runs out, so its deliveries are sent again (at least once).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from loopwright.domain import Event
from loopwright.errors import Conflict
from loopwright.store.sql.repositories import Repo
from loopwright.store.sql.tables import events, projects, webhook_deliveries, webhook_subscriptions

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, DEAD)

subs, deliveries = webhook_subscriptions, webhook_deliveries


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    project_id: int
    url: str
    secret: str
    events: tuple[str, ...]  # action prefixes; empty: every event
    active: bool
    last_event_id: int
    locked_until: datetime | None
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    subscription_id: int
    event_id: int
    action: str  # the event's
    status: str  # pending, delivered, dead
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed delivery with what its request is made of."""

    delivery: Delivery
    event: Event
    project: str


def _subscription(m: Mapping[Any, Any]) -> Subscription:
    return Subscription(**{**m, "events": tuple(m["events"])})


_DELIVERY = (*deliveries.c, events.c.action)


def _delivery(m: Mapping[Any, Any]) -> Delivery:
    return Delivery(**{k: m[k] for k in Delivery.__slots__})


class SqlWebhookRepo(Repo):
    # -- what the API does -----------------------------------------------------------------

    def add(
        self, project_id: int, url: str, secret: str, prefixes: Sequence[str], created_by: str, now: datetime
    ) -> Subscription:
        """A new active subscription; it gets the events written after this moment."""
        cursor = self._conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
        values = {
            "project_id": project_id,
            "url": url,
            "secret": secret,
            "events": list(prefixes),
            "active": True,
            "last_event_id": cursor,
            "locked_until": None,
            "created_by": created_by,
            "created_at": now,
        }
        return _subscription(self._insert(subs, values, missing=f"project id {project_id}")._mapping)

    def get(self, project_id: int, subscription_id: int) -> Subscription:
        """An active subscription of the project (others: NotFound, as if they did not exist)."""
        stmt = select(subs).where(
            subs.c.id == subscription_id, subs.c.project_id == project_id, subs.c.active.is_(True)
        )
        return _subscription(self._one(stmt, f"webhook id {subscription_id}")._mapping)

    def list(self, project_id: int) -> builtins.list[Subscription]:
        stmt = (
            select(subs).where(subs.c.project_id == project_id, subs.c.active.is_(True)).order_by(subs.c.id)
        )
        return [_subscription(r._mapping) for r in self._conn.execute(stmt)]

    def deactivate(self, project_id: int, subscription_id: int) -> Subscription:
        """Stop a subscription: nothing more is queued or sent; its deliveries stay listed in the DB."""
        sub = self.get(project_id, subscription_id)
        self._conn.execute(update(subs).where(subs.c.id == sub.id).values(active=False))
        return sub

    def deliveries(
        self,
        subscription_id: int,
        status: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> builtins.list[Delivery]:
        """The subscription's deliveries, newest first (``before``: ids below it, for paging)."""
        stmt = (
            select(*_DELIVERY)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.subscription_id == subscription_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            stmt = stmt.where(deliveries.c.status == status)
        if before is not None:
            stmt = stmt.where(deliveries.c.id < before)
        return [_delivery(r._mapping) for r in self._conn.execute(stmt)]

    def delivery(self, subscription_id: int, delivery_id: int) -> Delivery:
        stmt = (
            select(*_DELIVERY)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id == delivery_id, deliveries.c.subscription_id == subscription_id)
        )
        return _delivery(self._one(stmt, f"delivery id {delivery_id}")._mapping)

    def requeue(self, subscription_id: int, delivery_id: int, now: datetime) -> Delivery:
        """A dead delivery back to pending, due now, with a fresh set of attempts."""
        found = self.delivery(subscription_id, delivery_id)
        if found.status != DEAD:
            raise Conflict(f"delivery {delivery_id} is {found.status}; only a dead delivery can be retried")
        stmt = (
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.status == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=now)
        )
        if not self._conn.execute(stmt).rowcount:  # pragma: no cover - a concurrent retry won
            raise Conflict(f"delivery {delivery_id} was retried already")
        return self.delivery(subscription_id, delivery_id)

    # -- what the dispatcher does ----------------------------------------------------------

    def active(self) -> builtins.list[Subscription]:
        stmt = select(subs).where(subs.c.active.is_(True)).order_by(subs.c.id)
        return [_subscription(r._mapping) for r in self._conn.execute(stmt)]

    def project_events(self, project_id: int, after: int, upto: int, limit: int) -> builtins.list[Event]:
        stmt = (
            select(events)
            .where(events.c.project_id == project_id, events.c.id > after, events.c.id <= upto)
            .order_by(events.c.id)
            .limit(limit)
        )
        return [Event(**r._mapping) for r in self._conn.execute(stmt)]

    def enqueue(self, subscription_id: int, event_ids: Sequence[int], now: datetime) -> int:
        """A pending delivery per event (due now); one already there is left alone."""
        if not event_ids:
            return 0
        rows = [
            {
                "subscription_id": subscription_id,
                "event_id": event_id,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event_id in event_ids
        ]
        stmt = self._upsertable(deliveries).values(rows).on_conflict_do_nothing()
        return len(self._conn.execute(stmt.returning(deliveries.c.id)).all())

    def advance(self, subscription_id: int, event_id: int) -> None:
        """Move the cursor forward (never back, whoever else moved it meanwhile)."""
        self._conn.execute(
            update(subs)
            .where(subs.c.id == subscription_id, subs.c.last_event_id < event_id)
            .values(last_event_id=event_id)
        )

    def claim_due(self, now: datetime, until: datetime, limit: int) -> builtins.list[Subscription]:
        """Lease the active subscriptions whose oldest pending delivery is due and that no other
        dispatcher holds; the lease lasts until ``until`` unless released first."""
        head = (
            select(deliveries.c.subscription_id, func.min(deliveries.c.event_id).label("event_id"))
            .where(deliveries.c.status == PENDING)
            .group_by(deliveries.c.subscription_id)
            .subquery()
        )
        due = (
            select(head.c.subscription_id)
            .join(
                deliveries,
                and_(
                    deliveries.c.subscription_id == head.c.subscription_id,
                    deliveries.c.event_id == head.c.event_id,
                ),
            )
            .where(deliveries.c.next_attempt_at <= now)
        )
        stmt = (
            select(subs)
            .where(
                subs.c.active.is_(True),
                subs.c.id.in_(due),
                or_(subs.c.locked_until.is_(None), subs.c.locked_until <= now),
            )
            .order_by(subs.c.id)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=subs)
        found = [_subscription(r._mapping) for r in self._conn.execute(stmt)]
        if found:
            ids = [s.id for s in found]
            self._conn.execute(update(subs).where(subs.c.id.in_(ids)).values(locked_until=until))
        return found

    def release(self, subscription_id: int) -> None:
        self._conn.execute(update(subs).where(subs.c.id == subscription_id).values(locked_until=None))

    def pending(self, subscription_id: int, limit: int) -> builtins.list[Outgoing]:
        """The subscription's oldest pending deliveries, in event order, with their events."""
        stmt = (
            select(*_DELIVERY, *[c.label(f"e_{c.name}") for c in events.c], projects.c.name.label("project"))
            .join(events, events.c.id == deliveries.c.event_id)
            .join(projects, projects.c.id == events.c.project_id)
            .where(deliveries.c.subscription_id == subscription_id, deliveries.c.status == PENDING)
            .order_by(deliveries.c.event_id)
            .limit(limit)
        )
        found = []
        for row in self._conn.execute(stmt):
            m = row._mapping
            event = Event(**{c.name: m[f"e_{c.name}"] for c in events.c})
            found.append(Outgoing(_delivery(m), event, m["project"]))
        return found

    def record(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime | None,
        status_code: int | None,
        error: str | None,
        delivered_at: datetime | None,
    ) -> None:
        """The outcome of one attempt on a pending delivery."""
        self._conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.status == PENDING)
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_status_code=status_code,
                last_error=error,
                delivered_at=delivered_at,
            )
        )
