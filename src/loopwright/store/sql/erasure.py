"""Erasure on SQL: delete an item with every row that hangs off it, redact events, keep tombstones.

Which rows belong to an item is read from the schema's foreign keys, not listed by hand: a row
belongs when it references the item, or a row that belongs (a lease of one of its tasks). A
table added later with a foreign key to ``items`` is purged too, without changes here.
Rows are deleted dependents first, so no foreign key ever dangles.
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    Text,
    and_,
    cast,
    delete,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from loopwright.loop.erasure import Tombstone
from loopwright.store.sql.repositories import Repo, chunks, utcnow
from loopwright.store.sql.tables import (
    dataset_entries,
    dataset_versions,
    erased_entries,
    erasure_salts,
    erasures,
    events,
    items,
    metadata,
    model_versions,
)

log = logging.getLogger(__name__)
MAX_HINTS = 200  # strings to look for in the event log through the database; more: scan in Python
_OWN_TABLES = {erasure_salts.name, erasures.name, erased_entries.name}


def _tombstone(m: Mapping[Any, Any]) -> Tombstone:
    return Tombstone(**m)


def owned_where(
    table: Table, item_id: int, memo: dict[str, ColumnElement[bool] | None]
) -> ColumnElement[bool] | None:
    """Where rows of ``table`` belong to the item (None: rows of this table never do)."""
    if table.name in memo:
        return memo[table.name]
    memo[table.name] = None  # a cycle through this table adds nothing
    clauses: list[ColumnElement[bool]] = []
    for fk in table.foreign_keys:
        target = fk.column.table
        if target is items:
            clauses.append(fk.parent == item_id)
        elif isinstance(target, Table) and target is not table:
            inner = owned_where(target, item_id, memo)
            if inner is not None:
                clauses.append(fk.parent.in_(select(fk.column).where(inner)))
    found = or_(*clauses) if clauses else None
    memo[table.name] = found
    return found


def _candidates(subjects: Collection[tuple[str, str]], hints: Collection[str]) -> ColumnElement[bool]:
    """Events about one of ``subjects``, or whose stored JSON text holds a hint as JSON encodes it
    (``json.dumps``, as SQLAlchemy stores it: a substring's encoding is a substring of the whole)."""
    by_type: dict[str, list[str]] = {}
    for kind, ident in subjects:
        by_type.setdefault(kind, []).append(ident)
    clauses = [and_(events.c.subject_type == k, events.c.subject_id.in_(ids)) for k, ids in by_type.items()]
    body = cast(events.c.data, Text)
    clauses += [body.contains(json.dumps(h)[1:-1], autoescape=True) for h in sorted(hints)]
    return or_(false(), *clauses)


class SqlErasureRepo(Repo):
    def salt(self, project_id: int) -> str:
        """The project's salt for subject hashes, made (once, race-free) on first use."""
        stmt = select(erasure_salts.c.salt).where(erasure_salts.c.project_id == project_id)
        found = self._conn.execute(stmt).scalar()
        if found is None:
            values = {"project_id": project_id, "salt": secrets.token_hex(32)}
            self._conn.execute(self._upsertable(erasure_salts).values(values).on_conflict_do_nothing())
            found = self._conn.execute(stmt).scalar_one()
        return str(found)

    def redact_events(
        self,
        project_id: int,
        subjects: Sequence[tuple[str, str]],
        hints: Collection[str],
        matches: Callable[[dict[str, Any]], bool],
        actors: Collection[str],
        replacement: dict[str, Any],
        erased_actor: str,
    ) -> int:
        """The one exception to an append-only log: data about an erased item is replaced.

        The database picks the candidates (subject, or data text holding a hint as JSON spells
        it); ``matches`` decides on each. Beyond ``MAX_HINTS`` hints every event is a candidate.
        """
        about = set(subjects)
        stmt = select(events.c.id, events.c.subject_type, events.c.subject_id, events.c.actor, events.c.data)
        stmt = stmt.where(events.c.project_id == project_id).order_by(events.c.id)
        if len(hints) <= MAX_HINTS:
            stmt = stmt.where(_candidates(about, hints))
        doomed, unnamed = [], []
        for row in self._conn.execute(stmt):
            if (row.subject_type, row.subject_id) in about or matches(row.data):
                doomed.append(row.id)
                if row.actor in actors:
                    unnamed.append(row.id)
        for part in chunks(doomed):
            self._conn.execute(update(events).where(events.c.id.in_(part)).values(data=replacement))
        for part in chunks(unnamed):
            self._conn.execute(update(events).where(events.c.id.in_(part)).values(actor=erased_actor))
        return len(doomed)

    def versions_holding(self, item_id: int) -> dict[str, str]:
        stmt = select(dataset_entries.c.dataset_version_id, dataset_entries.c.split).where(
            dataset_entries.c.item_id == item_id
        )
        return {v: s for v, s in self._conn.execute(stmt)}

    def purge_item(self, item_id: int) -> dict[str, int]:
        """Delete every row that belongs to the item, dependents first, then the item."""
        memo: dict[str, ColumnElement[bool] | None] = {}
        counts: dict[str, int] = {}
        for table in reversed(metadata.sorted_tables):
            if table.name in _OWN_TABLES:
                continue
            where = items.c.id == item_id if table is items else owned_where(table, item_id, memo)
            if where is None:
                continue
            n = self._conn.execute(delete(table).where(where)).rowcount
            if n:
                counts[table.name] = n
        return counts

    def add(
        self,
        project_id: int,
        subject_hash: str,
        actor: str,
        reason: str | None,
        counts: dict[str, int],
    ) -> Tombstone:
        """A tombstone stamped by the store's clock (as models are: the two are compared)."""
        values = {
            "project_id": project_id,
            "subject_hash": subject_hash,
            "actor": actor,
            "reason": reason,
            "erased_at": utcnow(),
            "counts": counts,
        }
        row = self._insert(erasures, values, missing=f"project id {project_id}")
        return _tombstone(row._mapping)

    def mark(self, erasure_id: int, versions: Mapping[str, str]) -> None:
        rows = [{"erasure_id": erasure_id, "dataset_version_id": v, "split": s} for v, s in versions.items()]
        if rows:
            self._conn.execute(erased_entries.insert(), rows)

    def erased_by_dataset(self, project_id: int) -> dict[str, int]:
        stmt = (
            select(erased_entries.c.dataset_version_id, func.count())
            .join(dataset_versions, dataset_versions.c.id == erased_entries.c.dataset_version_id)
            .where(dataset_versions.c.project_id == project_id)
            .group_by(erased_entries.c.dataset_version_id)
        )
        return {v: int(n) for v, n in self._conn.execute(stmt)}

    def trained_on_erased(self, project_id: int) -> dict[int, int]:
        """Model version → erased items in the train split of its dataset, erased after training."""
        stmt = (
            select(model_versions.c.version, func.count())
            .join(erased_entries, erased_entries.c.dataset_version_id == model_versions.c.dataset_version_id)
            .join(erasures, erasures.c.id == erased_entries.c.erasure_id)
            .where(
                model_versions.c.project_id == project_id,
                erased_entries.c.split == "train",
                erasures.c.erased_at >= model_versions.c.created_at,
            )
            .group_by(model_versions.c.version)
        )
        return {int(v): int(n) for v, n in self._conn.execute(stmt)}

    def list(self, project_id: int) -> builtins.list[Tombstone]:
        stmt = select(erasures).where(erasures.c.project_id == project_id).order_by(erasures.c.id)
        return [_tombstone(r._mapping) for r in self._conn.execute(stmt)]

    def has(self, project_id: int, subject_hash: str) -> bool:
        stmt = select(erasures.c.id).where(
            erasures.c.project_id == project_id, erasures.c.subject_hash == subject_hash
        )
        return self._conn.execute(stmt.limit(1)).first() is not None


def reclaim(engine: Engine, tables: Sequence[str]) -> None:
    """Make deleted rows unrecoverable from the files, best effort, outside any transaction.

    SQLite (``secure_delete`` zeroes deleted cells; see engine.py): a TRUNCATE checkpoint copies
    the WAL into the database and empties it, so no older copy of a page is left there.
    PostgreSQL: ``VACUUM`` each table, so dead tuples stop being readable from its pages.
    """
    try:
        if engine.dialect.name == "sqlite":
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                cursor.close()
            finally:
                raw.close()
            if busy:
                log.warning("erasure: the WAL checkpoint was blocked by a reader; it runs again later")
        elif engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                quote = conn.dialect.identifier_preparer.quote
                for name in sorted(set(tables)):
                    if name in metadata.tables:
                        conn.exec_driver_sql(f"VACUUM {quote(name)}")
    except DBAPIError as exc:
        log.warning("erasure: reclaiming space failed (%s); deleted rows go at the next vacuum", exc.orig)
