"""Review policy on both backends: claim order and exclusions, skip, gold tasks, fatigue, bad input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from loopwright import Capped, Conflict, Invalid, LeaseExpired, Loop, Paused, UnknownLabel, Workspace
from loopwright.config import GoldConfig
from loopwright.domain import GoldAnswer, LeaseStatus, TaskStatus
from loopwright.loop.gold import is_paused, skills
from loopwright.store.sql import SqlStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "name": "policy",
    "labels": ["a", "b", "c"],
    "features": ["x", "y"],
    "routing": {"audit_rate": 0.0},
    "tiers": [  # two people per tier-1 item (the default is one since issue 20)
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "uncertain"},
        {"tier": 3, "name": "expert"},
    ],
}
CENTRES = {"a": (0.0, 0.0), "b": (12.0, 0.0), "c": (0.0, 12.0)}


class ManualClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def record(ext: str, label: str = "a") -> dict[str, Any]:
    x, y = CENTRES[label]
    return {"external_id": ext, "payload": {"x": x, "y": y}}


def gold_record(ext: str, label: str) -> dict[str, Any]:
    return {**record(ext, label), "label": label}


def nearest_centre(X: Any) -> Any:
    """A model suggesting the nearest centre's label with confidence 0.6 (tier 1)."""
    centres = np.array(list(CENTRES.values()))
    nearest = ((np.asarray(X)[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    proba = np.full((len(X), 3), 0.2)
    proba[np.arange(len(X)), nearest] = 0.6
    return proba


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(store: SqlStore, clock: ManualClock, **overrides: Any) -> Loop:
    return Workspace(store, clock).create_project({**CONFIG, **overrides})


def counts(loop: Loop) -> tuple[int, int, int]:
    """(annotations, gold answers, resolutions) in the project."""
    with loop._ctx.store.unit_of_work() as uow:
        n_gold = sum(
            len(uow.gold_answers.for_project(loop.project.id, who)) for who in ("ann1", "ann2", "ann3")
        )
        return uow.annotations.count(loop.project.id), n_gold, uow.resolutions.count(loop.project.id)


def label(loop: Loop, who: str, answer: str = "a", **claim: Any) -> Any:
    a = loop.next_task(who, **claim)
    assert a is not None
    return loop.submit(a.lease.id, who, answer)


# --- claim semantics -------------------------------------------------------------------------


def test_nobody_resolves_higher_up_an_item_they_labelled(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock)
    loop.ingest([record("p0")])
    label(loop, "ann1", "a")
    up = label(loop, "ann2", "b").escalated_to
    assert up is not None and up.tier == 2
    assert loop.next_task("ann1") is None and loop.next_task("ann2") is None
    expert = loop.next_task("ann3")
    assert expert is not None and expert.task.id == up.id
    assert expert.why == f"tier 2 queue · priority {up.priority:.2f} · disputed"


def test_a_live_lease_on_an_item_blocks_its_other_tasks(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock)
    loop.ingest([record("p0")])
    with store.unit_of_work() as uow:
        (low,) = uow.tasks.for_item(1)
        high = uow.tasks.add(loop.project.id, low.item_id, None, 2, 5.0, "feedback", 1)
    first = loop.next_task("ann1")
    assert first is not None and first.task.id == high.id  # priority first
    assert loop.next_task("ann1") is None  # the tier-1 task is the same item
    loop.release(first.lease.id, "ann1")
    again = loop.next_task("ann1")
    assert again is not None and again.task.id == high.id


def test_tasks_with_annotations_go_first_among_equal_priority(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock)
    loop.ingest([record("p0"), record("p1"), record("p2")])
    first = loop.next_task("ann1")
    assert first is not None and first.item.external_id == "p0"
    assert first.why == f"tier 1 queue · priority {first.task.priority:.2f} · no_model"
    loop.skip(first.lease.id, "ann1")
    label(loop, "ann1")  # p1
    second = loop.next_task("ann2")
    assert second is not None and second.item.external_id == "p1"  # before the older p0
    assert second.why.endswith(" · no_model · 1/2 annotations already")


def test_a_skipped_task_is_not_offered_again(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock)
    loop.ingest([record("p0"), record("p1")])
    a = loop.next_task("ann1")
    assert a is not None
    skipped = loop.skip(a.lease.id, "ann1")
    assert skipped.status is LeaseStatus.SKIPPED
    with pytest.raises(Conflict, match="skipped"):
        loop.submit(a.lease.id, "ann1", "a")
    b = loop.next_task("ann1")
    assert b is not None and b.task.id != a.task.id
    loop.submit(b.lease.id, "ann1", "a")
    assert loop.next_task("ann1") is None  # only the skipped task is left for ann1
    first, second = loop.next_task("ann2"), loop.next_task("ann2")
    assert first is not None and second is not None
    assert (first.task.id, second.task.id) == (b.task.id, a.task.id)  # skipping is personal
    assert [e.action for e in loop.events(limit=100)].count("task.skipped") == 1


# --- gold tasks ------------------------------------------------------------------------------

GOLD = {"onboarding": 2, "min_answers": 2, "min_accuracy": 0.7, "expected_accuracy": 0.95}


def test_onboarding_gold_scores_and_pauses(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock, gold=GOLD)
    loop.ingest([record("p0"), record("p1")])
    tasks = loop.add_gold([gold_record("g0", "a"), gold_record("g1", "b"), gold_record("g2", "c")], tiers=[1])
    assert [(t.status, t.gold_label, t.tier) for t in tasks] == [
        (TaskStatus.GOLD, "a", 1),
        (TaskStatus.GOLD, "b", 1),
        (TaskStatus.GOLD, "c", 1),
    ]
    assert loop.status().open_tasks_by_tier == {1: 2}  # gold is not a queue to empty
    for who, answers in (("ann1", ["c", "c"]), ("ann2", ["a", "b"])):
        for n, answer in enumerate(answers, start=1):
            a = loop.next_task(who)
            assert a is not None and a.task.status is TaskStatus.GOLD
            assert a.why == f"tier 1 gold · priority 0.00 · gold · onboarding {n}/2"
            result = loop.submit(a.lease.id, who, answer)
            assert result.annotation is None and result.gold is not None
    # each wrong answer multiplies the likelihood ratio by 0.3 / 0.05 = 6: 36 ≥ 1 / 0.05
    pause = r"tier 1: 0 of 2 gold answers right; .* 0\.70 over 0\.95 by a likelihood ratio of 36\.0 "
    with pytest.raises(Paused, match=pause) as info:
        loop.next_task("ann1", tiers=[1])
    assert info.value.code == "paused"
    assert loop.next_task("ann1") is None  # paused tiers are left out when others are asked for
    good = loop.next_task("ann2")
    assert good is not None and good.item.external_id == "p0"  # onboarding done: real work
    stats = loop.annotator_stats("ann1")
    assert (stats.gold_answers, stats.gold_accuracy, stats.paused_tiers) == (2, 0.0, (1,))
    assert loop.annotator_stats("ann2").gold_accuracy == 1.0
    assert counts(loop) == (0, 4, 0)  # gold answers are scored, never resolved


def test_submitting_to_a_paused_tier_is_refused(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock, gold={"rate": 1.0, "min_answers": 2, "expected_accuracy": 0.95})
    loop.ingest([record("p0")])
    loop.add_gold([gold_record("g0", "a"), gold_record("g1", "b")], tiers=[1])
    g0 = loop.next_task("ann1")
    g1 = loop.next_task("ann1")
    work = loop.next_task("ann1")  # gold exhausted: a real task
    assert g0 is not None and g1 is not None and work is not None
    assert (g0.item.external_id, g1.item.external_id, work.item.external_id) == ("g0", "g1", "p0")
    assert g0.why.endswith("random gold check at rate 1.00")
    loop.submit(g0.lease.id, "ann1", "c")
    loop.submit(g1.lease.id, "ann1", "c")
    before = counts(loop)
    with pytest.raises(Paused, match="paused from tier 1"):
        loop.submit(work.lease.id, "ann1", "a")
    assert counts(loop) == before == (0, 2, 0)


def test_gold_draws_are_reproducible(store: SqlStore, clock: ManualClock) -> None:
    def gold_pattern(name: str) -> list[bool]:
        loop = make(store, clock, name=name, gold={"rate": 0.5})
        loop.ingest([record(f"p{i}") for i in range(12)])
        loop.add_gold([gold_record(f"g{i}", "a") for i in range(12)], tiers=[1])
        pattern = []
        for _ in range(12):
            result = label(loop, "ann1")
            pattern.append(result.gold is not None)
        return pattern

    first = gold_pattern("one")
    assert first == gold_pattern("two") and 0 < sum(first) < 12


def test_gold_items_never_reach_a_dataset(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock, gold={"rate": 1.0})
    loop.add_gold([gold_record("g0", "a")])
    loop.ingest([record("p0")])
    for who in ("ann1", "ann2"):
        assert label(loop, who).gold is not None
        assert label(loop, who).gold is None
    with store.unit_of_work() as uow:
        assert [t.status for t in uow.tasks.for_item(1)] == [TaskStatus.GOLD] * 3  # one per tier
        assert uow.resolutions.for_item(1) == []
    assert [e.item_id for e in loop.snapshot().entries] == [2]


# --- fatigue ---------------------------------------------------------------------------------


def test_hourly_cap_says_when_to_resume(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock, fatigue={"max_per_hour": 2})
    loop.ingest([record(f"p{i}") for i in range(3)])
    label(loop, "ann1")
    clock.advance(600)
    label(loop, "ann1")
    resume = T0 + timedelta(hours=1)
    expected = f"cap of 2 annotations per hour; work can resume at {resume.isoformat()}"
    with pytest.raises(Capped, match=re.escape(expected)):
        loop.next_task("ann1")
    assert loop.annotator_stats("ann1").annotations_last_hour == 2
    clock.now = resume
    assert loop.next_task("ann1") is not None


def test_session_cap(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock, fatigue={"max_per_session": 1})
    loop.ingest([record(f"p{i}") for i in range(3)])
    label(loop, "ann1", session_id="s1")
    with pytest.raises(Capped, match="cap of 1 annotations in session 's1'") as info:
        loop.next_task("ann1", session_id="s1")
    assert info.value.code == "capped"
    assert loop.annotator_stats("ann1", "s1").annotations_this_session == 1
    assert loop.next_task("ann1", session_id="s2") is not None


@pytest.mark.parametrize("run", [None, 2])
def test_rotation_after_a_run_of_one_suggested_label(store: SqlStore, clock: ManualClock, run: int) -> None:
    loop = make(store, clock, fatigue={"max_same_label_run": run})
    loop.use_model(nearest_centre, force=True, persist=False)
    loop.ingest([record("q0", "a"), record("q1", "a"), record("q2", "a"), record("q3", "b")])
    label(loop, "ann1")
    label(loop, "ann1")
    a = loop.next_task("ann1")
    assert a is not None and a.suggestion is not None
    if run is None:
        assert a.item.external_id == "q2"
    else:
        assert (a.item.external_id, a.suggestion.label) == ("q3", "b")
        assert a.why.endswith(" · rotation: the last 2 suggested 'a'")


@pytest.mark.parametrize("run", [None, 3])
def test_rotation_across_sources(store: SqlStore, clock: ManualClock, run: int) -> None:
    loop = make(store, clock, fatigue={"max_same_source_run": run, "source_key": "camera"})
    cameras = ["north"] * 5 + ["south"]
    loop.ingest([{**record(f"q{i}"), "metadata": {"camera": c}} for i, c in enumerate(cameras)])
    for _ in range(3):
        label(loop, "ann1")
    a = loop.next_task("ann1")
    assert a is not None
    if run is None:
        assert a.item.external_id == "q3"
    else:
        assert (a.item.external_id, a.item.metadata) == ("q5", {"camera": "south"})
        assert a.why.endswith(" · rotation: the last 3 came from camera 'north'")
        loop.submit(a.lease.id, "ann1", "a")
        after = loop.next_task("ann1")  # the run is broken: back to the queue order
        assert after is not None and after.item.external_id == "q3" and "rotation" not in after.why


# --- bad input writes nothing ----------------------------------------------------------------


def test_bad_submissions_write_nothing(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock)
    loop.ingest([record("p0"), record("p1")])
    a = loop.next_task("ann1")
    assert a is not None
    cases: list[tuple[type[Exception], str, Any]] = [
        (Conflict, "another annotator", lambda: loop.submit(a.lease.id, "ann2", "a")),
        (UnknownLabel, "'zebra'", lambda: loop.submit(a.lease.id, "ann1", "zebra")),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
        assert counts(loop) == (0, 0, 0)
    clock.advance(loop.config.tier(1).lease_seconds)
    with pytest.raises(LeaseExpired):
        loop.submit(a.lease.id, "ann1", "a")
    assert counts(loop) == (0, 0, 0)
    b = loop.next_task("ann1")
    assert b is not None
    loop.submit(b.lease.id, "ann1", "a")
    with pytest.raises(Conflict, match="submitted"):
        loop.submit(b.lease.id, "ann1", "a")
    assert counts(loop) == (1, 0, 0)


def test_bad_gold_items_are_refused_whole(store: SqlStore, clock: ManualClock) -> None:
    loop = make(store, clock)
    loop.ingest([record("p0")])
    with pytest.raises(Invalid) as info:
        loop.add_gold([gold_record("g0", "a"), {**record("g1"), "label": "zebra"}])
    assert info.value.errors == [("[1].label", "must be one of ['a', 'b', 'c']")]
    with pytest.raises(Conflict, match=r"\['p0'\] already exist"):
        loop.add_gold([gold_record("g0", "a"), gold_record("p0", "a")])
    assert loop.status().items == 1


@pytest.mark.parametrize(
    ("record", "paused"),
    [
        ("RRRRW", False),  # one slip: ratio 3 (per answer: right *7/9, wrong *3; pause at 20)
        ("RRWWW", True),  # ratio 27
        ("RWWW", False),  # ratio 27, but fewer than min_answers
        ("WWWRR", False),  # 27 · (7/9)² = 16.3: right answers wear the evidence down
        ("WWWWR", True),  # 81 · 7/9 = 63
        ("RRRRRRRRRRWWW", True),  # careless after a clean start: the CUSUM floors at 0, so 27
        ("WRWRWRWRWR", True),  # 50 % right: ratio 69
        ("RRRRRRRRRRRRRRRRRRWR", False),  # 95 % right: ratio 2.3
    ],
)
def test_pausing_needs_a_likelihood_ratio_of_1_over_alpha(record: str, paused: bool) -> None:
    config = GoldConfig(min_accuracy=0.7, expected_accuracy=0.9, min_answers=5, alpha=0.05)
    answers = [
        GoldAnswer(i, 1, i, i, "ann", 1, "a" if r == "R" else "b", r == "R", T0) for i, r in enumerate(record)
    ]
    assert is_paused(config, skills(config, answers)[1]) is paused
