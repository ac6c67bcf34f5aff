"""Deference: a reviewer who agrees with the model's suggestion far more often than everyone
else is flagged on the dashboard; a careful one is not; answers given blind do not count."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from loopwright import Loop, Workspace
from loopwright.domain import Annotation
from loopwright.learning import default_estimator
from loopwright.loop.deference import MIN_ANSWERS, deference
from loopwright.store.sql import SqlStore

AT = datetime(2026, 12, 4, tzinfo=UTC)


def _answers(who: str, items: range, agree: int, shown: str | None = "a") -> list[Annotation]:
    """``who`` answers ``items`` shown ``shown``: the first ``agree`` with it, the rest "other"."""
    return [
        Annotation(i, i, i, i, who, "a" if k < agree else "other", False, AT, shown)
        for k, i in enumerate(items)
    ]


def test_the_reviewer_who_always_agrees_is_flagged_against_the_others() -> None:
    stamp = _answers("stamp", range(0, 50), 50)
    careful = _answers("care1", range(50, 90), 34)
    careful += _answers("care2", range(90, 130), 34)
    audited = _answers("stamp", range(130, 140), 0, shown=None)  # answered blind: never counted
    out = deference(stamp + careful + audited)
    s = out["stamp"]
    assert (s.answers, s.agreed, s.share, s.peers) == (50, 50, 1.0, 68 / 80)
    assert s.p_value == pytest.approx(0.85**50, rel=1e-9) and s.flagged
    c = out["care1"]
    assert (c.answers, c.agreed, c.flagged) == (40, 34, False)
    assert c.peers == 84 / 90 and c.p_value is not None and c.p_value > 0.5
    half = _answers("care3", range(150, 190), 20)
    early = deference(stamp[: MIN_ANSWERS - 1] + half)["stamp"]
    assert early.p_value == pytest.approx(0.5 ** (MIN_ANSWERS - 1)) and not early.flagged  # too few yet
    assert deference(stamp)["stamp"].peers is None  # no one else to compare


def stamped_world(store: SqlStore) -> tuple[Loop, dict[str, int]]:
    """A project whose model errs on about 16 % of 160 items, reviewed by "stamp", who only
    accepts the suggestion, and "care", who answers the truth; their answers by name."""
    loop = Workspace(store).create_project(
        {
            "name": "toy",
            "labels": ["a", "b"],
            "features": ["x"],
            "routing": {
                "accept_threshold": 1.0,
                "audit_rate": 0,
                "bands": [{"min_confidence": 0, "tier": 1}],
            },
            "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
            "consensus": {"method": "majority"},
        }
    )
    model = default_estimator(loop.config, 0).fit([[-1.0], [-2.0], [1.0], [2.0]], list("aabb"))
    loop.use_model(model, force=True)
    rng = np.random.default_rng(0)
    truth = rng.choice(["a", "b"], size=160)
    x = np.where(truth == "a", -1.0, 1.0) + rng.normal(scale=1.0, size=160)
    loop.ingest({"external_id": f"p{i}", "payload": {"x": float(v)}} for i, v in enumerate(x))
    gold = [(-3.0, "a"), (3.0, "b"), (0.5, "a")]  # never served (no gold rate); the model misses one
    loop.add_gold({"external_id": f"g{i}", "payload": {"x": v}, "label": y} for i, (v, y) in enumerate(gold))
    answered = {"stamp": 0, "care": 0}
    while True:
        claims = [(who, loop.next_task(who)) for who in answered]
        if not any(a for _, a in claims):
            return loop, answered
        for who, a in claims:
            if a is None:
                continue
            label = a.suggestion.label if who == "stamp" else truth[int(a.item.external_id[1:])]
            loop.submit(a.lease.id, who, label)
            answered[who] += 1


def test_the_dashboard_flags_a_reviewer_who_only_accepts_suggestions(store: SqlStore) -> None:
    loop, answered = stamped_world(store)
    rows = {r.name: r.deference for r in loop.dashboard().annotators}
    assert rows["stamp"] is not None and rows["care"] is not None
    assert (rows["stamp"].agreed, rows["stamp"].answers) == (answered["stamp"], 80)
    assert rows["stamp"].flagged and not rows["care"].flagged
    assert 0.75 < rows["care"].share < 0.95  # the careful one agrees where the model is right
    totals = loop.dashboard().totals
    assert (totals["gold_scored"], totals["gold_missed"]) == (3, 1)
