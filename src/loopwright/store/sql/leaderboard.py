"""The leaderboard's reads: every answer of a project with its tier, and each item's latest
resolution (three queries, one transaction; see :mod:`loopwright.loop.leaderboard`)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from loopwright.loop.leaderboard import Answer, checked
from loopwright.store.sql import tables


def answers(conn: Connection, project_id: int) -> list[Answer]:
    """The project's annotations and gold answers with their verdicts, oldest first."""
    a, g, t, r, items = (
        tables.annotations,
        tables.gold_answers,
        tables.tasks,
        tables.resolutions,
        tables.items,
    )
    rows = conn.execute(
        select(a.c.annotator, t.c.tier, a.c.item_id, a.c.label, a.c.created_at)
        .join(t, t.c.id == a.c.task_id)
        .where(t.c.project_id == project_id)
        .order_by(a.c.id)
    )
    marked = [(x[0], x[1], x[2], x[3], x[4]) for x in rows]
    latest: dict[int, tuple[str, int]] = {}
    for item_id, label, pooled in conn.execute(
        select(r.c.item_id, r.c.label, r.c.n_annotations)
        .join(items, items.c.id == r.c.item_id)
        .where(items.c.project_id == project_id)
        .order_by(r.c.id)
    ):
        latest[item_id] = (label, pooled)  # later rows win: the item's latest resolution
    gold = conn.execute(
        select(g.c.annotator, g.c.tier, g.c.item_id, g.c.label, g.c.created_at, g.c.correct)
        .join(t, t.c.id == g.c.task_id)
        .where(t.c.project_id == project_id)
        .order_by(g.c.id)
    )
    return checked(marked, latest, [(x[0], x[1], x[2], x[3], x[4], x[5]) for x in gold])
