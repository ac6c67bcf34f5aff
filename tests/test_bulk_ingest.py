"""The bulk statements ingest writes with (``store/sql/bulk.py``), on both databases: rows read
back exactly as written, ids mapped to their rows, clashes and dangling keys refused whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from loopwright import Workspace
from loopwright.domain import Route
from loopwright.errors import Conflict, NotFound
from loopwright.store.sql import SqlStore

CONFIG = {
    "name": "bulk",
    "labels": ["pos", "neg"],
    "features": ["x"],
    "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": 300}],
}
PAYLOADS = [
    {"x": 1.5, "text": "naïve café ✓", "nested": {"list": [1, None, 'a"b'], "flag": True}},
    {"x": -2.0, "text": "line\nbreak, comma {brace}", "nested": {}},
    {"x": 0.0, "text": "", "nested": {"quote": "'\\"}},
]


def test_bulk_rows_read_back_as_written(store: SqlStore) -> None:
    project = Workspace(store).create_project(CONFIG).project
    rows = [(f"e{i}", f"h{i}", p, {"source": ["a", i]}) for i, p in enumerate(PAYLOADS)]
    before = datetime.now(UTC)
    with store.unit_of_work() as uow:
        ids = uow.items.add_many(project.id, rows)
        pred_ids = uow.predictions.add_many(
            [(item_id, None, {"pos": 0.25, "neg": 0.75}, "neg", 0.75, None) for item_id in ids]
        )
        uow.decisions.add_many(
            [
                (i, p, Route.REVIEW, 1, "low_confidence", False, None)
                for i, p in zip(ids, pred_ids, strict=True)
            ]
        )
    with store.unit_of_work() as uow:
        items = uow.items.get_many(ids)
        found = uow.items.by_external_ids(project.id, ["e2", "missing", "e0"])
        predictions = [uow.predictions.for_item(i) for i in ids]
        decisions = [uow.decisions.for_item(i) for i in ids]
    assert [(i.external_id, i.content_hash, i.payload, i.metadata) for i in items] == [
        (e, h, p, m) for e, h, p, m in rows
    ]
    assert all(before <= i.created_at <= datetime.now(UTC) and i.created_at.tzinfo is UTC for i in items)
    assert sorted(found) == ["e0", "e2"] and found["e2"].id == ids[2] and found["e2"].payload == PAYLOADS[2]
    assert [[(p.id, p.probabilities, p.label, p.confidence, p.error) for p in ps] for ps in predictions] == [
        [(pid, {"pos": 0.25, "neg": 0.75}, "neg", 0.75, None)] for pid in pred_ids
    ]
    assert [[(d.prediction_id, d.route, d.tier, d.audit, d.threshold) for d in ds] for ds in decisions] == [
        [(pid, Route.REVIEW, 1, False, None)] for pid in pred_ids
    ]


def test_one_statement_per_table_for_a_chunk(store: SqlStore) -> None:
    project = Workspace(store).create_project(CONFIG).project
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT"):
            statements.append(statement.split()[2])

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.unit_of_work() as uow:
            uow.items.add_many(project.id, [(f"e{i}", "h", {"x": float(i)}, {}) for i in range(500)])
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert statements == ["items"]  # INSERT INTO items …: one statement for 500 rows


def test_a_clash_refuses_the_whole_chunk(store: SqlStore) -> None:
    project = Workspace(store).create_project(CONFIG).project
    with store.unit_of_work() as uow:
        uow.items.add_many(project.id, [("e1", "h", {"x": 1.0}, {})])
    with pytest.raises(Conflict, match="ingested into project"), store.unit_of_work() as uow:
        uow.items.add_many(project.id, [("e0", "h", {"x": 0.0}, {}), ("e1", "h", {"x": 1.0}, {})])
    with store.unit_of_work() as uow:
        assert sorted(uow.items.by_external_ids(project.id, ["e0", "e1"])) == ["e1"]


def test_a_dangling_key_is_not_found(store: SqlStore) -> None:
    Workspace(store).create_project(CONFIG)
    with (
        pytest.raises(NotFound, match="an item or model version does not exist"),
        store.unit_of_work() as uow,
    ):
        uow.predictions.add_many([(999_999, None, {"pos": 1.0, "neg": 0.0}, "pos", 1.0, None)])
