"""Cursors of event sinks over the event log (the outbox), each leased by one publisher.

A sink (``nats:LOOPWRIGHT``) keeps ``last_event_id``: every event up to it is published and
acknowledged. A publisher leases the row (``owner``, ``locked_until``) in a short transaction
that reads it ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` serialises
that transaction anyway), publishes without holding a transaction, then advances the cursor
only while it still owns the lease: two publishers never both advance one cursor, and a lease
left by a killed publisher runs out, so its batch is published again (at least once).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from loopwright.domain import Event
from loopwright.store.sql import outbox
from loopwright.store.sql.repositories import Repo
from loopwright.store.sql.tables import event_cursors, events, projects

cursors = event_cursors


class SqlEventCursors(Repo):
    """The cursor rows, and the reads a publisher needs from the event log."""

    def lease(self, sink: str, owner: str, now: datetime, until: datetime) -> int | None:
        """The cursor, leased to ``owner`` until ``until``; None while another owner holds it.
        A new sink starts before the first event."""
        insert = self._upsertable(cursors).values(sink=sink, last_event_id=0, updated_at=now)
        self._conn.execute(insert.on_conflict_do_nothing())
        stmt = select(cursors).where(cursors.c.sink == sink)
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = self._conn.execute(stmt).first()
        if row is None:  # another publisher is taking it right now
            return None
        held = row.owner not in (None, owner) and row.locked_until is not None and row.locked_until > now
        if held:
            return None
        self._conn.execute(
            update(cursors).where(cursors.c.sink == sink).values(owner=owner, locked_until=until)
        )
        return int(row.last_event_id)

    def advance(self, sink: str, owner: str, event_id: int, now: datetime) -> bool:
        """Move the cursor forward to ``event_id`` if ``owner`` still holds the lease (False: another
        publisher has taken it over)."""
        stmt = (
            update(cursors)
            .where(cursors.c.sink == sink, cursors.c.owner == owner, cursors.c.last_event_id <= event_id)
            .values(last_event_id=event_id, updated_at=now)
        )
        return bool(self._conn.execute(stmt).rowcount)

    def release(self, sink: str, owner: str) -> None:
        self._conn.execute(
            update(cursors)
            .where(cursors.c.sink == sink, cursors.c.owner == owner)
            .values(owner=None, locked_until=None)
        )

    def position(self, sink: str) -> int | None:
        """The cursor of ``sink`` (None: it never published)."""
        found = self._conn.execute(select(cursors.c.last_event_id).where(cursors.c.sink == sink)).scalar()
        return None if found is None else int(found)

    def event_ids_after(self, after: int, limit: int) -> list[int]:
        return outbox.event_ids_after(self._conn, after, limit)

    def events_between(self, after: int, upto: int, limit: int) -> list[tuple[Event, str]]:
        """Every project's events in ``(after, upto]`` in id order, each with its project's name
        (``"_"`` for events of no project)."""
        stmt = (
            select(events, projects.c.name.label("project_name"))
            .outerjoin(projects, projects.c.id == events.c.project_id)
            .where(events.c.id > after, events.c.id <= upto)
            .order_by(events.c.id)
            .limit(limit)
        )
        found: list[tuple[Event, str]] = []
        for r in self._conn.execute(stmt):
            m = dict(r._mapping)
            name = m.pop("project_name")
            found.append((Event(**m), name or "_"))
        return found
