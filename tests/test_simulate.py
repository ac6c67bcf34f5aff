"""Simulated annotators: seeded, accurate as configured, systematic in their errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from loopwright import Workspace
from loopwright.simulate import SimulatedAnnotator, team, work
from loopwright.store.sql import SqlStore

LABELS = [str(d) for d in range(10)]


def test_accuracy_and_confusion_rows() -> None:
    ann = SimulatedAnnotator("a", (1,), 0.9, LABELS, random_state=3)
    np.testing.assert_allclose(ann.confusion_.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(ann.confusion_), 0.9)
    answers = [ann.answer("4")[0] for _ in range(5000)]
    assert 0.88 < answers.count("4") / 5000 < 0.92
    wrong = Counter(a for a in answers if a != "4")
    top_share = wrong.most_common(1)[0][1] / sum(wrong.values())
    assert top_share > 0.2  # Dirichlet(0.5) rows concentrate errors: systematic, not uniform (0.11)


def test_same_seed_same_answers() -> None:
    a = [SimulatedAnnotator("a", (1,), 0.7, LABELS, 5).answer("1") for _ in range(50)]
    b = [SimulatedAnnotator("a", (1,), 0.7, LABELS, 5).answer("1") for _ in range(50)]
    assert a == b


def test_team_members_and_unsure_only_when_wrong() -> None:
    members = team(LABELS, {1: 2, 3: 1}, {1: 0.5, 3: 0.99}, random_state=1, unsure_rate=1.0)
    assert [(m.name, m.tiers) for m in members] == [("t1-0", (1,)), ("t1-1", (1,)), ("t3-0", (3,))]
    for label, unsure in (members[0].answer("7") for _ in range(200)):
        assert unsure == (label != "7")


def test_work_goes_through_the_review_api(store: SqlStore) -> None:
    loop = Workspace(store).create_project(
        {"name": "p", "labels": ["a", "b"], "features": ["x"], "routing": {"audit_rate": 0.0}}
    )
    loop.ingest([{"external_id": str(i), "payload": {"x": float(i)}} for i in range(10)])
    perfect = team(["a", "b"], {1: 3, 2: 1, 3: 1}, {1: 1.0, 2: 1.0, 3: 1.0})
    log = work(loop, perfect, lambda ext: "a" if int(ext) < 5 else "b")
    assert log.annotations == 10 and log.by_tier == {1: 10}  # 10 items, overlap 1 (the default), no disputes
    assert loop.status().resolutions == 10 and loop.status().open_tasks_by_tier == {}
    assert sum(log.by_annotator.values()) == 10 and len(log.by_annotator) == 3


@pytest.mark.parametrize("limit", [0, 7])
def test_work_stops_at_the_cap(store: SqlStore, limit: int) -> None:
    loop = Workspace(store).create_project({"name": "p", "labels": ["a", "b"], "features": ["x"]})
    loop.ingest([{"external_id": str(i), "payload": {"x": float(i)}} for i in range(10)])
    log = work(loop, team(["a", "b"], {1: 2}, {1: 1.0}), lambda ext: "a", max_annotations=limit)
    assert log.annotations == limit == loop.status().annotations
