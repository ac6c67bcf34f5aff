"""The review queue follows the project's active-learning strategy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from loopwright import Loop, Workspace
from loopwright.active import STRATEGIES
from loopwright.config import StrategyName
from loopwright.store.sql import SqlStore
from test_loop import CONFIG, ManualClock, label_all, points


def trained(store: SqlStore, strategy: str) -> Loop:
    loop = Workspace(store, ManualClock()).create_project({**CONFIG, "active": {"strategy": strategy}})
    data = points(45)
    loop.ingest([r for r, _ in data])
    label_all(loop, {r["external_id"]: label for r, label in data})
    assert loop.maybe_retrain() is not None
    return loop


def between(n: int) -> list[dict[str, Any]]:
    """Points on the line between blobs a and b: the model is unsure about the middle ones."""
    xs = np.linspace(4.6, 8.0, n)
    return [{"external_id": f"m{i}", "payload": {"x": float(x), "y": 0.0}} for i, x in enumerate(xs)]


def queued(loop: Loop) -> list[tuple[str, float, float]]:
    """(external id, task priority, prediction margin) of the open tasks, by priority."""
    rows = []
    with loop._ctx.store.unit_of_work() as uow:
        for i in range(9):
            item = uow.items.by_external_ids(loop.project.id, [f"m{i}"])[f"m{i}"]
            (task,) = uow.tasks.for_item(item.id)
            p = sorted(uow.predictions.for_item(item.id)[-1].probabilities.values(), reverse=True)
            rows.append((item.external_id, task.priority, p[0] - p[1]))
    return sorted(rows, key=lambda r: -r[1])


def test_margin_orders_the_queue_by_smallest_margin(store: SqlStore) -> None:
    loop = trained(store, "margin")
    report = loop.ingest(between(9))
    assert all(o.reason == "low_confidence" for o in report.outcomes)  # all queued by the model
    rows = queued(loop)
    assert [p for _, p, _ in rows] == pytest.approx([1 - r / 9 for r in range(9)])
    margins = [m for _, _, m in rows]
    assert margins == sorted(margins)  # first in the queue: the most ambiguous
    first = loop.next_task("ann1")
    assert first is not None and first.item.external_id == rows[0][0]


def test_hybrid_ranks_every_queued_item_once(store: SqlStore) -> None:
    loop = trained(store, "hybrid")
    loop.ingest(between(9))
    rows = queued(loop)
    assert sorted(p for _, p, _ in rows) == pytest.approx(sorted(1 - r / 9 for r in range(9)))


def test_least_confidence_keeps_the_routers_priority(store: SqlStore) -> None:
    loop = trained(store, "least-confidence")
    report = loop.ingest(between(9))
    rows = dict((ext, p) for ext, p, _ in queued(loop))
    for o in report.outcomes:
        assert o.confidence is not None and rows[o.external_id] == pytest.approx(1 - o.confidence)


def test_config_strategies_match_the_registry() -> None:
    assert set(StrategyName.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]
