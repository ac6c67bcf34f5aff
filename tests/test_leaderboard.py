"""Gamified annotation (issue 20, item b): streaks and the accuracy-weighted leaderboard, their
definitions checked on hand-made answers, then on a real project over REST with exact figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwright import Workspace
from loopwright.loop.leaderboard import Answer, checked, quality, score, streaks
from loopwright.service import SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

DAY1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _answer(day: int, right: bool | None = None, minute: int = 0, who: str = "ann") -> Answer:
    at = DAY1 + timedelta(days=day - 1, minutes=minute)
    return Answer(who, 1, day * 100 + minute, "a", at, right, False)


def test_day_streaks_run_to_today_or_yesterday() -> None:
    mine = [_answer(d) for d in (1, 2, 3, 5, 6)] + [_answer(6, minute=5)]
    assert streaks(mine, date(2026, 11, 6)) == streaks(mine, date(2026, 11, 7))  # today not over yet
    got = streaks(mine, date(2026, 11, 7))
    assert (got.days, got.best_days) == (2, 3)
    assert streaks(mine, date(2026, 11, 8)).days == 0  # a whole day missed
    assert streaks([], date(2026, 11, 8)).days == 0


def test_agreement_streak_counts_checked_answers_since_the_last_wrong_one() -> None:
    verdicts = [True, True, True, True, False, True, None, True, True]
    mine = [_answer(1, v, minute=k) for k, v in enumerate(verdicts)]
    got = streaks(list(reversed(mine)), date(2026, 11, 1))  # any order in, time order used
    assert (got.agreeing, got.best_agreeing) == (3, 4)


def test_an_answer_is_checked_against_gold_or_a_pooled_resolution() -> None:
    at = DAY1
    found = checked(
        [("ann", 1, 1, "a", at), ("ann", 1, 2, "a", at), ("ann", 1, 3, "a", at), ("bo", 1, 2, "b", at)],
        {1: ("a", 1), 2: ("b", 2)},  # item 1 resolved by one person, item 2 by two, item 3 open
        [("ann", 1, 9, "b", at, False)],
    )
    assert [(a.annotator, a.item_id, a.right, a.gold) for a in found] == [
        ("ann", 1, None, False),  # a lone answer agrees with itself: not evidence
        ("ann", 2, False, False),
        ("ann", 3, None, False),
        ("ann", 9, False, True),
        ("bo", 2, True, False),
    ]


def test_speed_alone_never_wins() -> None:
    assert score(100, 0.95, 0.5) == pytest.approx(81.0)  # careful
    assert score(300, 0.6, 0.5) == pytest.approx(12.0)  # three times as fast, sloppy
    assert score(1_000_000, 0.5, 0.5) == 0.0  # guessing, at any speed
    assert score(1_000_000, 0.2, 0.25) == 0.0  # worse than chance (4 labels)
    assert quality(0, 0, None, 0.5) == 0.5  # no evidence: chance, so no points
    assert quality(4, 4, 1.0, 0.5) == 1.0
    assert quality(3, 4, 0.75, 0.5) == pytest.approx(0.75)


# -- on a real project, over REST ------------------------------------------------------------

CONFIG = {
    "name": "lb",
    "labels": ["a", "b"],
    "features": ["x"],
    "gold": {"onboarding": 4, "min_answers": 1000},  # 4 gold tasks first; nobody is paused
}
GOLD = [{"external_id": f"g{i}", "payload": {"x": float(i)}, "label": "ab"[i % 2]} for i in range(4)]
# per person: how many of the 4 gold answers are right, how many ordinary items, on which days
PEOPLE = {"careful": (4, 6, (1, 2, 3)), "mid": (3, 8, (2, 3)), "fast": (2, 12, (1,))}


class Clock:
    def __init__(self) -> None:
        self.now = DAY1

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def played(tmp_path: Path) -> Any:
    store = SqlStore(f"sqlite:///{tmp_path / 'lb.db'}")
    clock = Clock()
    ws = Workspace(store, clock=clock)
    loop = ws.create_project(CONFIG)
    loop.add_gold(GOLD, tiers=[1])
    loop.ingest([{"external_id": f"i{k}", "payload": {"x": k / 10}} for k in range(26)])
    truth = {g["external_id"]: g["label"] for g in GOLD}
    for who, (right, ordinary, days) in PEOPLE.items():
        for k in range(4 + ordinary):
            clock.now = DAY1 + timedelta(days=days[k * len(days) // (4 + ordinary)] - 1, minutes=k)
            a = loop.next_task(who, [1])
            assert a is not None
            known = truth.get(a.item.external_id)  # a gold task: answered right `right` times
            label = "a" if known is None else known if k < right else "ab"[known == "a"]
            loop.submit(a.lease.id, who, label)
    clock.now = DAY1 + timedelta(days=2, hours=5)  # day 3
    auth = SqlAuthenticator(store, cache_seconds=0)
    auth.add_user("lee")
    auth.add_membership("lee", "lb", "lead")
    for who in PEOPLE:
        auth.add_user(who)
        auth.add_membership(who, "lb", "annotator", [1])
    heads = {u: {"Authorization": f"Bearer {auth.issue_token(u)}"} for u in ("lee", *PEOPLE)}
    return TestClient(create_app(ws, authenticator=auth, webhooks=False)), heads


def test_the_board_ranks_by_accuracy_weighted_score(played: Any) -> None:
    client, h = played
    got = client.get("/v1/projects/lb/leaderboard", headers=h["lee"])
    assert got.status_code == 200, got.text
    board = got.json()
    assert (board["chance"], board["prior_answers"], board["visible_to_annotators"]) == (0.5, 5.0, False)
    assert [t["tier"] for t in board["tiers"]] == [1, 2, 3]
    assert board["tiers"][1]["rows"] == [] and board["tiers"][2]["rows"] == []
    rows = {r["annotator"]: r for r in board["tiers"][0]["rows"]}
    table = [
        (
            r["rank"],
            r["annotator"],
            r["answers"],
            r["gold_answers"],
            r["gold_correct"],
            r["skill"],
            r["quality"],
            r["score"],
        )
        for r in board["tiers"][0]["rows"]
    ]
    # skill: one-coin Dawid-Skene on the 4 shared gold items (clamped): right / answered
    # quality (gold_correct + 5 * skill) / (4 + 5); score answers * ((q - 0.5) / 0.5) ** 2
    assert table == [
        (1, "careful", 10, 4, 4, 1.0, 1.0, 10.0),
        (2, "mid", 12, 4, 3, 0.75, 0.75, 3.0),
        (3, "fast", 16, 4, 2, 0.5, 0.5, 0.0),  # the most answers, no points: a coin does as well
    ]
    assert rows["careful"]["gold_accuracy"] == 1.0 and rows["fast"]["gold_accuracy"] == 0.5
    streak = {w: tuple(r["streaks"].values()) for w, r in rows.items()}
    # (days, best days, agreeing, best agreeing): lone answers are not checked, gold ones are
    assert streak == {"careful": (3, 3, 4, 4), "mid": (2, 2, 0, 3), "fast": (0, 1, 0, 2)}


def test_annotators_see_it_only_when_the_project_turns_it_on(played: Any) -> None:
    client, h = played
    refused = client.get("/v1/projects/lb/leaderboard", headers=h["fast"])
    assert refused.status_code == 403
    assert refused.json()["message"] == "project 'lb' does not show its leaderboard to annotators"
    assert client.get("/v1/me", headers=h["fast"]).json()["projects"]["lb"]["leaderboard"] is False
    assert client.get("/v1/me", headers=h["lee"]).json()["projects"]["lb"]["leaderboard"] is True
    version = client.get("/v1/projects/lb/settings", headers=h["lee"]).json()["version"]
    on = {"version": version, "leaderboard": {"visible_to_annotators": True}}
    assert client.put("/v1/projects/lb/settings", headers=h["lee"], json=on).status_code == 200
    assert client.get("/v1/me", headers=h["fast"]).json()["projects"]["lb"]["leaderboard"] is True
    seen = client.get("/v1/projects/lb/leaderboard", headers=h["fast"])
    assert seen.status_code == 200 and seen.json()["visible_to_annotators"] is True
    assert seen.json()["tiers"][0]["rows"][0]["annotator"] == "careful"
