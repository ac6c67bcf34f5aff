"""The annotator_stats row (0017) a claim reads equals the old fold over the rows, exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from loopwright import Loop, Workspace
from loopwright.loop import gold
from loopwright.loop.gold import EPOCH
from loopwright.store.sql import SqlStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "name": "stats",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {"audit_rate": 0.0},
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "uncertain"}],
    "gold": {"rate": 0.5, "onboarding": 2, "min_answers": 10_000},
}


def rec(ext: str, label: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"external_id": ext, "payload": {"x": 0.0 if label == "a" else 1.0}}
    return out if label is None else {**out, "label": label}


def state(loop: Loop, who: str) -> tuple[Any, Any, Any, Any]:
    """(stored record, fold over the rows, stored work, counted work)."""
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        stored = gold.record(ctx, uow, who)
        fold = gold.skills(ctx.config.gold, uow.gold_answers.for_project(ctx.project.id, who))
        counted = uow.annotations.count_work(ctx.project.id, who, EPOCH)
    return stored.by_tier, fold, stored.work, counted


def test_the_stored_fold_and_work_equal_the_rows_after_every_write(store: SqlStore) -> None:
    clock = [T0]
    loop = Workspace(store, lambda: clock[0]).create_project(CONFIG)
    loop.ingest([rec(f"p{i}") for i in range(40)])
    loop.add_gold([rec(f"g{i}", "ab"[i % 2]) for i in range(12)], tiers=[1])
    loop.add_gold([rec(f"h{i}", "ab"[i % 2]) for i in range(12)], tiers=[2])
    rng = random.Random(0)
    kinds = []
    for step in range(40):
        who = ("ann1", "ann2")[step % 2]
        a = loop.next_task(who, tiers=[rng.choice([1, 2])])
        if a is None:
            continue
        right = a.task.gold_label if a.task.gold_label else "a"
        loop.submit(a.lease.id, who, right if rng.random() < 0.7 else ("b" if right == "a" else "a"))
        kinds.append(a.task.gold_label is not None)
        clock[0] += timedelta(seconds=5)
        stored, fold, work, counted = state(loop, who)
        assert stored == fold and work == counted
    assert 10 < sum(kinds) < len(kinds)  # both kinds of work were done
    stored, fold, work, counted = state(loop, "ann1")
    assert sum(s.answers for s in stored.values()) > 5 and any(s.evidence > 0 for s in stored.values())


def test_a_missing_or_stale_row_is_rebuilt_and_gives_the_same_draws(store: SqlStore) -> None:
    loop = Workspace(store, lambda: T0).create_project(CONFIG)
    loop.ingest([rec(f"p{i}") for i in range(6)])
    loop.add_gold([rec(f"g{i}", "a") for i in range(6)], tiers=[1])
    reasons = []
    for _ in range(6):
        a = loop.next_task("ann1")
        assert a is not None
        reasons.append(a.why)
        loop.submit(a.lease.id, "ann1", "b")
    before = state(loop, "ann1")
    with loop._ctx.store.unit_of_work() as uow:
        uow.annotator_stats.forget(loop.project.id)
        assert uow.annotator_stats.get(loop.project.id, "ann1") is None
    assert state(loop, "ann1") == before  # rebuilt from the rows, identical
    with loop._ctx.store.unit_of_work() as uow:  # folded under other settings: refolded
        work, stored = uow.annotator_stats.get(loop.project.id, "ann1") or (0, {})
        uow.annotator_stats.put(loop.project.id, "ann1", work, {**stored, "params": [0.5, 0.6]})
    assert state(loop, "ann1") == before
    assert before[0][1].answers >= 2 and before[2] == 6


def test_erasure_drops_the_rows_and_the_rebuild_forgets_the_item(store: SqlStore) -> None:
    loop = Workspace(store, lambda: T0).create_project({**CONFIG, "gold": {"rate": 1.0, "min_answers": 99}})
    loop.add_gold([rec("g0", "a"), rec("g1", "a")], tiers=[1])
    for _ in range(2):
        a = loop.next_task("ann1")
        assert a is not None
        loop.submit(a.lease.id, "ann1", "b")
    assert state(loop, "ann1")[0][1].answers == 2
    loop.erase("g0", actor="lead")
    stored, fold, work, counted = state(loop, "ann1")
    assert stored == fold and (stored[1].answers, stored[1].correct, work, counted) == (1, 0, 1, 1)
