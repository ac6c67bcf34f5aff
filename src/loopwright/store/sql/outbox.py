"""The event log read as an outbox: how far every event id is settled, for every sink.

Webhooks and the broker publisher both read the ``events`` table after a cursor. On PostgreSQL
a transaction takes its event id before it commits, so a later id can be visible before an
earlier one: a sink that moved past the missing id would never send that event. An
:class:`OutboxReader` moves its *horizon* (every id up to it is committed, or never will be)
over the ids that are there, and over a missing id only once every transaction that was running
when it saw the gap has ended (``min_gap_age`` later, so the writer surely holds a transaction
id by then), or after ``gap_timeout`` should one of them hang. SQLite commits one writer at a
time, so it never leaves a gap behind a committed id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, select, text

from loopwright.store.sql.tables import events

log = logging.getLogger(__name__)


def event_ids_after(conn: Connection, after: int, limit: int) -> list[int]:
    """Ids of every project's events after ``after``, in order."""
    stmt = select(events.c.id).where(events.c.id > after).order_by(events.c.id).limit(limit)
    return list(conn.execute(stmt).scalars())


def in_progress(conn: Connection) -> frozenset[int] | None:
    """PostgreSQL: the ids of the transactions running now (in any database of the server).
    None elsewhere (SQLite commits one writer at a time)."""
    if conn.dialect.name != "postgresql":
        return None
    rows = conn.execute(text("SELECT pg_snapshot_xip(pg_current_snapshot())::text"))
    return frozenset(int(x) for x in rows.scalars())


class OutboxReader:
    """The settled horizon of the event log for one sink, with the gaps it is waiting on.

    Keep one per sink and process (it remembers when it first saw each gap); ``name`` only
    labels the log line of a skipped id. ``monotonic`` is the clock gaps age by.
    """

    def __init__(
        self,
        name: str,
        min_gap_age: float = 1.0,
        gap_timeout: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.min_gap_age = min_gap_age
        self.gap_timeout = gap_timeout
        self._monotonic = monotonic
        self._gaps: dict[int, tuple[float, frozenset[int] | None]] = {}  # first missing id -> (seen, txs)

    def settle(self, conn: Connection, after: int, limit: int) -> int:
        """The highest id, looking at most ``limit`` ids past ``after``, up to which every event
        is committed or never will be (``after`` itself when the next id is a gap still open)."""
        horizon = after
        for event_id in event_ids_after(conn, after, limit):
            if event_id > horizon + 1 and not self.gap_is_final(conn, horizon + 1):
                break
            horizon = event_id
        self._gaps = {k: v for k, v in self._gaps.items() if k > horizon}
        return horizon

    def gap_is_final(self, conn: Connection, first_missing: int) -> bool:
        """Whether the missing id ``first_missing`` can no longer turn up."""
        running = in_progress(conn)
        if running is None:
            return True
        now = self._monotonic()
        first_seen, waited_for = self._gaps.setdefault(first_missing, (now, None))
        age = now - first_seen
        if age >= self.gap_timeout:
            log.warning("%s: skipping event id %d, still missing after %.0f s", self.name, first_missing, age)
            return True
        if age < self.min_gap_age:
            return False
        if waited_for is None:  # the transactions that might hold the id
            waited_for = running
            self._gaps[first_missing] = (first_seen, waited_for)
        return not (waited_for & running)

    @property
    def waiting_on(self) -> list[int]:
        """The first missing ids of the gaps seen and not yet settled."""
        return sorted(self._gaps)
