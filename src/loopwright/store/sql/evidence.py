"""The version of each project's audit evidence (0020): a counter moved by every transaction that
changes what a certificate counts (an audited item answered or resolved, a drift alarm raised or
retracted, an item erased).

A certificate keeps the version it read before it read the evidence; another version now means
it may be stale. A look-up by time cannot promise that: a write stamped before the certificate
but committed after its read (PostgreSQL, two hosts) was never counted and never looked newer.
Writers only mark what they touched; the unit of work moves the counter as its last statement,
so the counter's row is the last lock a transaction takes and cannot close a deadlock cycle."""

from __future__ import annotations

from sqlalchemy import select

from loopwright.store.sql.repositories import EvidenceMarks, Repo, chunks
from loopwright.store.sql.tables import audit_evidence, decisions, items


class SqlEvidenceRepo(Repo):
    def move(self, marks: EvidenceMarks) -> None:
        """One step of the version of every project whose audit evidence ``marks`` changed:
        those marked outright, and those of the marked items that were audited."""
        projects = set(marks.projects)
        for part in chunks(sorted(marks.items), 500):
            audited = (
                select(items.c.project_id)
                .join(decisions, decisions.c.item_id == items.c.id)
                .where(items.c.id.in_(part), decisions.c.audit.is_(True))
                .distinct()
            )
            projects.update(self._conn.execute(audited).scalars())
        for project_id in sorted(projects):  # one order everywhere: two writers never cross
            stmt = (
                self._upsertable(audit_evidence)
                .values(project_id=project_id, version=1)
                .on_conflict_do_update(
                    index_elements=["project_id"], set_={"version": audit_evidence.c.version + 1}
                )
            )
            self._conn.execute(stmt)
        marks.items.clear()
        marks.projects.clear()
        marks.checked.clear()
