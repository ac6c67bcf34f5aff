"""Per (project, annotator) counters read by every claim: work done and the gold fold (0017)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from loopwright.store.sql.repositories import Repo
from loopwright.store.sql.tables import annotator_stats, tasks


class SqlAnnotatorStatsRepo(Repo):
    def get(self, project_id: int, annotator: str, lock: bool = False) -> tuple[int, Any] | None:
        """``(work, gold)`` of the row, or None; ``lock``: hold it to the end of the transaction."""
        c = annotator_stats.c
        stmt = select(c.work, c.gold).where(c.project_id == project_id, c.annotator == annotator)
        if lock and self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = self._conn.execute(stmt).first()
        return None if row is None else (int(row.work), row.gold)

    def put(self, project_id: int, annotator: str, work: int, gold: Any) -> None:
        """Write the row whole (insert, or replace what is there)."""
        values = {"project_id": project_id, "annotator": annotator, "work": work, "gold": gold}
        stmt = self._upsertable(annotator_stats).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["project_id", "annotator"], set_={"work": work, "gold": gold}
        )
        self._conn.execute(stmt)

    def add_work(self, task_id: int, annotator: str) -> None:
        """One more piece of work on ``task_id``'s project; no row, no change (built on read)."""
        c = annotator_stats.c
        project = select(tasks.c.project_id).where(tasks.c.id == task_id).scalar_subquery()
        stmt = update(annotator_stats).where(c.project_id == project, c.annotator == annotator)
        self._conn.execute(stmt.values(work=c.work + 1))

    def forget(self, project_id: int) -> None:
        """Drop the project's rows (after an erasure); each is rebuilt on its next read."""
        self._conn.execute(delete(annotator_stats).where(annotator_stats.c.project_id == project_id))
