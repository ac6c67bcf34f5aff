"""Near-duplicate band keys: the persisted LSH index (key → items), looked up per batch."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select

from loopwright.store.sql.repositories import Repo, chunks
from loopwright.store.sql.tables import duplicate_keys


class SqlDuplicateKeyRepo(Repo):
    def add_many(self, project_id: int, rows: Sequence[tuple[str, int]]) -> None:
        """Index ``(band_key, item_id)`` pairs (each pair once)."""
        values = [{"project_id": project_id, "band_key": k, "item_id": i} for k, i in dict.fromkeys(rows)]
        for part in chunks(values, 1_000):
            self._conn.execute(insert(duplicate_keys), list(part))

    def find(self, project_id: int, keys: Sequence[str]) -> dict[str, list[int]]:
        """The items indexed under each of ``keys`` (those with any), oldest item first."""
        found: dict[str, list[int]] = {}
        for part in chunks(sorted(set(keys))):
            stmt = (
                select(duplicate_keys.c.band_key, duplicate_keys.c.item_id)
                .where(duplicate_keys.c.project_id == project_id, duplicate_keys.c.band_key.in_(part))
                .order_by(duplicate_keys.c.item_id)
            )
            for key, item_id in self._conn.execute(stmt):
                found.setdefault(key, []).append(item_id)
        return found
