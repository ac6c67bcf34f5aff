"""Gold checks that look like the work: the unseen gold item the champion is about as sure of
as the item the reviewer labelled last (``gold.lookalike``), on SQLite and PostgreSQL.

The world: the model is sure of the gold items added first (far from its boundary) and unsure of
every item in the queue (on the a/b boundary), like a tier below a certified threshold. Five gold
items, added last, sit on that boundary too, and the model gets them wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from loopwright import Loop, Workspace
from loopwright.errors import Paused
from loopwright.learning import default_estimator
from loopwright.loop import gold
from loopwright.store.sql import SqlStore

EASY = [(4.0 + i / 10, 0.0, "a") for i in range(10)] + [(0.0, 4.0 + i / 10, "b") for i in range(10)]
HARD = [(1.0 + 0.05 * i, 0.95 - 0.05 * i, "b") for i in range(5)]  # the model says a: it is wrong


def _config(rate: float) -> dict[str, Any]:
    return {
        "name": "toy",
        "labels": ["a", "b", "c"],
        "features": ["x", "y"],
        "routing": {"accept_threshold": 1.0, "audit_rate": 0.0, "bands": [{"min_confidence": 0, "tier": 1}]},
        "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
        "consensus": {"method": "majority"},
        "gold": {"rate": rate, "min_answers": 5},
    }


def _world(store: SqlStore, rate: float = 0.0) -> Loop:
    loop = Workspace(store).create_project(_config(rate))
    X = np.array([[2, 0], [3, 0], [0, 2], [0, 3], [-2, -2], [-3, -3]], dtype=float)
    loop.use_model(default_estimator(loop.config, 0).fit(X, ["a", "a", "b", "b", "c", "c"]), force=True)
    loop.add_gold(
        {"external_id": f"g{i}", "payload": {"x": x, "y": y}, "label": label}
        for i, (x, y, label) in enumerate(EASY + HARD)
    )
    rng = np.random.default_rng(0)
    loop.ingest(
        {"external_id": f"p{i}", "payload": {"x": 1.0 + d, "y": 1.0 - d}}
        for i, d in enumerate(rng.uniform(-0.1, 0.1, size=60))
    )
    return loop


def test_the_gold_check_is_the_unseen_item_the_model_is_as_sure_of(store: SqlStore) -> None:
    loop = _world(store)
    ctx, now = loop._ctx, datetime.now(UTC)
    with store.unit_of_work() as uow:
        assert gold.lookalike(ctx, uow, "ann", [1], now) is None  # no label yet: the oldest is served
    a = loop.next_task("ann")
    assert a is not None and a.task.status.value == "open"
    loop.submit(a.lease.id, "ann", "a")
    target = float(loop.predict([a.item.payload])[0].max())
    with store.unit_of_work() as uow:
        pool = uow.tasks.gold_unseen(ctx.project.id, "ann", [1], now, 100)
        assert [t.item_id for t in pool] == sorted(t.item_id for t in pool)  # oldest first
        assert len(pool) == len(EASY) + len(HARD)
        payloads = [i.payload for i in uow.items.get_many([t.item_id for t in pool])]
        chosen = gold.lookalike(ctx, uow, "ann", [1], now)
    confidence = loop.predict(payloads).max(axis=1)
    expected = pool[int(np.argmin(np.abs(confidence - target)))].id
    assert chosen == expected
    assert pool[-len(HARD)].id <= chosen  # one of the boundary items added last, not an easy one
    assert abs(confidence.max() - target) > 0.3  # the easy gold would have stood out

    later = now + timedelta(hours=1)
    with store.unit_of_work() as uow:  # the store leases the task preferred, else the oldest
        task, _ = uow.tasks.claim_gold(ctx.project.id, "ann", [1], now, later, None, prefer=chosen)
        assert task.id == chosen
        task, _ = uow.tasks.claim_gold(ctx.project.id, "ann", [1], now, later, None, prefer=chosen)
        assert task.id == pool[0].id  # the preferred one is held by ann now: the oldest instead


def test_a_reviewer_who_only_accepts_the_suggestion_is_paused(store: SqlStore) -> None:
    loop = _world(store, rate=0.3)
    stamped = gold_seen = 0
    with pytest.raises(Paused):
        for _ in range(60):
            a = loop.next_task("stamper", score_now=True)
            assert a is not None and a.live is not None
            gold_seen += a.task.status.value == "gold"
            loop.submit(a.lease.id, "stamper", max(a.live, key=a.live.__getitem__))
            stamped += 1
    assert gold_seen == 5  # each a boundary item the model gets wrong: five misses pause
    assert stamped < 30


def test_a_careful_reviewer_is_not_paused_by_hard_gold(store: SqlStore) -> None:
    loop = _world(store, rate=0.3)
    truth = {f"g{i}": label for i, (_, _, label) in enumerate(EASY + HARD)}
    served: list[str] = []
    while (a := loop.next_task("careful")) is not None:
        if a.task.status.value == "gold":
            served.append(a.item.external_id)
        loop.submit(a.lease.id, "careful", truth.get(a.item.external_id, "a"))
    assert loop.annotator_stats("careful").paused_tiers == ()
    assert served[:5] == [f"g{len(EASY) + i}" for i in range(5)]  # like the work first
