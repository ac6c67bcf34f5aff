"""Conversations: the payload schema, rubric ratings with corrections, pairwise preferences with
Bradley-Terry and the preference-tuning export — in the core and through the loop."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from loopwright import Workspace
from loopwright.errors import Invalid, UnknownLabel
from loopwright.store.sql import SqlStore
from loopwright.tasks import Preference, Rubric
from loopwright.tasks.conversation import check_conversation
from loopwright.tasks.preference import bradley_terry, preference_pair

TURNS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my parcel?"}]
RUBRIC = ["correct", "partially_correct", "wrong", "unsafe"]


@pytest.mark.parametrize(
    ("payload", "pairwise", "words"),
    [
        ({"turns": [], "answer": "hi"}, False, "turns: a conversation needs at least one turn"),
        ({"answer": "hi"}, False, "turns: a conversation needs at least one turn"),
        (
            {"turns": [{"role": "bot", "content": "x"}], "answer": "hi"},
            False,
            "turns[0].role: must be one of",
        ),
        (
            {"turns": [{"role": "user", "content": 3}], "answer": "hi"},
            False,
            "turns[0].content: must be text",
        ),
        ({"turns": TURNS, "answer": "  "}, False, "answer: the model's answer must be non-empty text"),
        ({"turns": TURNS, "answer_a": "x"}, True, "answer_b: the model's answer must be non-empty text"),
        ([1, 2], False, "a conversation must be an object"),
    ],
)
def test_bad_conversations_name_the_field(payload: Any, pairwise: bool, words: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_conversation(payload, pairwise)
    assert words in str(caught.value)


def test_good_conversations_pass() -> None:
    check_conversation({"turns": TURNS * 15, "answer": "It is on its way."})  # 30 turns
    check_conversation({"turns": TURNS, "answer_a": "a", "answer_b": "b"}, pairwise=True)


def test_rubric_rating_and_correction() -> None:
    rubric = Rubric()
    assert rubric.parse("wrong", RUBRIC) == "wrong"
    with pytest.raises(UnknownLabel, match="label: unknown label 'meh'"):
        rubric.parse("meh", RUBRIC)
    assert rubric.check_correction("  It ships Monday. ", True) == "It ships Monday."
    assert rubric.check_correction("   ", False) is None
    with pytest.raises(Invalid, match="comment: this rubric takes no free-text correction"):
        rubric.check_correction("It ships Monday.", False)
    assert rubric.vote(["wrong", "unsafe", "wrong"], RUBRIC).label == "wrong"


def test_preference_values() -> None:
    pref = Preference()
    assert [pref.parse(v, ["A", "B", "tie"]) for v in ("a", " B ", "tie")] == ["A", "B", "tie"]
    for bad in ("C", "", 1, None):
        with pytest.raises(Invalid, match="label: a preference is 'A', 'B' or 'tie'"):
            pref.parse(bad, ["A", "B", "tie"])
    vote = pref.vote(["A", "B", "A"], ["A", "B", "tie"])
    assert vote.label == "A" and vote.agreement == pytest.approx(2 / 3)


def test_bradley_terry_two_sources_closed_form() -> None:
    # A beats B twice, B beats A once: the MLE has s_A / s_B = 2; geometric mean 1 → √2 and 1/√2
    s = bradley_terry([("A", "B", "A"), ("B", "A", "B"), ("A", "B", "B")])
    assert s["A"] == pytest.approx(math.sqrt(2)) and s["B"] == pytest.approx(1 / math.sqrt(2))
    # a tie counts half to each side: 1.5 to 0.5 → ratio 3
    t = bradley_terry([("A", "B", "A"), ("A", "B", "tie")])
    assert t["A"] / t["B"] == pytest.approx(3.0)


def test_bradley_terry_three_sources_satisfy_the_likelihood_equations() -> None:
    # hand-worked games: A-B 3:1, B-C 2:2, A-C 1:1 (with a tie as half each: A-C tie twice → 1:1)
    games = [("A", "B", "A")] * 3 + [("A", "B", "B")] + [("B", "C", "A")] * 2 + [("B", "C", "B")] * 2
    games += [("A", "C", "tie")] * 2
    s = bradley_terry(games)
    wins = {"A": 4.0, "B": 3.0, "C": 3.0}
    n = {("A", "B"): 4, ("B", "C"): 4, ("A", "C"): 2}
    for i in "ABC":  # at the MLE, W_i = Σ_j n_ij s_i / (s_i + s_j)
        expected = sum(k * s[i] / (s[i] + s[b if a == i else a]) for (a, b), k in n.items() if i in (a, b))
        assert expected == pytest.approx(wins[i], abs=1e-8)
    assert math.prod(s.values()) == pytest.approx(1.0)
    assert s["A"] > s["C"] > s["B"]  # C held A level where B lost 1:3, and B-C was even


def test_bradley_terry_needs_a_prior_for_an_undefeated_source() -> None:
    with pytest.raises(Invalid, match="pass prior > 0"):
        bradley_terry([("A", "B", "A"), ("A", "B", "A")])
    s = bradley_terry([("A", "B", "A"), ("A", "B", "A")], prior=1.0)  # 2.5 : 0.5
    assert s["A"] / s["B"] == pytest.approx(5.0)
    with pytest.raises(Invalid, match="at least two sources"):
        bradley_terry([])


def test_preference_pair_is_trl_conversational_form() -> None:
    payload = {"turns": TURNS, "answer_a": "Tomorrow.", "answer_b": "No idea."}
    assert preference_pair(payload, "B") == {
        "prompt": TURNS,
        "chosen": [{"role": "assistant", "content": "No idea."}],
        "rejected": [{"role": "assistant", "content": "Tomorrow."}],
    }
    assert preference_pair(payload, "tie") is None


def _config(task: str, labels: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": task,
        "labels": labels,
        "task": task,
        "modality": "text",
        "input_field": "text",
        "model": {"kind": "external"},
        "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
        "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
        **extra,
    }


def _conversation(k: int, **answer: str) -> dict[str, Any]:
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} of chat {k}"} for i in range(30)
    ]
    return {"external_id": f"c{k}", "payload": {"turns": turns, "text": f"chat {k}", **answer}}


def test_a_conversation_with_no_turns_is_refused_at_ingest(store: SqlStore) -> None:
    loop = Workspace(store).create_project(_config("rubric", RUBRIC))
    bad = {"external_id": "c9", "payload": {"turns": [], "answer": "hi", "text": "hi"}}
    with pytest.raises(Invalid) as caught:
        loop.ingest([_conversation(0, answer="fine"), bad])
    assert caught.value.errors == [
        ("[1].payload", "turns: a conversation needs at least one turn [{role, content}]")
    ]
    assert loop.status().items == 0  # nothing written, not even the good one


def test_rubric_project_keeps_the_correction(store: SqlStore) -> None:
    loop = Workspace(store).create_project(_config("rubric", RUBRIC))
    loop.ingest([_conversation(0, answer="Your parcel is lost."), _conversation(1, answer="Monday.")])
    a = loop.next_task("ann")
    assert a is not None and len(a.item.payload["turns"]) == 30
    with pytest.raises(UnknownLabel):
        loop.submit(a.lease.id, "ann", "meh")
    result = loop.submit(a.lease.id, "ann", "wrong", comment="It arrives on Monday.")
    assert result.resolution is not None and result.resolution.label == "wrong"
    submitted = [e for e in loop.events() if e.action == "annotation.submitted"]
    assert submitted[-1].data["comment"] == "It arrives on Monday."
    strict = Workspace(store).create_project(
        {**_config("rubric", RUBRIC), "name": "strict", "rubric": {"corrections": False}}
    )
    strict.ingest([_conversation(0, answer="x")])
    b = strict.next_task("ann")
    assert b is not None
    with pytest.raises(Invalid, match="no free-text correction"):
        strict.submit(b.lease.id, "ann", "wrong", comment="better")
    assert strict.annotations() == []


def test_preference_project_exports_chosen_and_rejected(store: SqlStore, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="invalid project configuration") as bad:
        Workspace(store).create_project(_config("preference", ["A", "B"]))
    assert "task preference needs labels: [A, B, tie]" in str(bad.value.errors)
    loop = Workspace(store).create_project(_config("preference", ["A", "B", "tie"]))
    with pytest.raises(Invalid) as caught:
        loop.ingest([_conversation(5, answer="only one")])
    assert caught.value.errors == [("[0].payload", "answer_a: the model's answer must be non-empty text")]
    loop.ingest([_conversation(k, answer_a=f"good {k}", answer_b=f"bad {k}") for k in range(3)])
    verdicts = {"c0": "a", "c1": "tie", "c2": "B"}
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", verdicts[a.item.external_id])
    version = loop.snapshot()
    rows = {
        r["external_id"]: r
        for r in map(
            json.loads,
            loop.export_dataset(version.id, "jsonl", tmp_path / "p.jsonl").read_text().splitlines(),
        )
    }
    assert {k: r["preference"] for k, r in rows.items()} == {"c0": "A", "c1": "tie", "c2": "B"}
    assert rows["c0"]["chosen"] == [{"role": "assistant", "content": "good 0"}]
    assert rows["c2"]["rejected"] == [{"role": "assistant", "content": "good 2"}]
    assert len(rows["c0"]["prompt"]) == 30 and "chosen" not in rows["c1"]


def test_an_end_user_report_on_a_chat_answer_comes_back_first(store: SqlStore) -> None:
    loop = Workspace(store).create_project(
        {
            **_config("rubric", RUBRIC),
            "routing": {
                "accept_threshold": 0.9,
                "audit_rate": 0.0,
                "bands": [{"min_confidence": 0.0, "tier": 1}],
            },
        }
    )
    sure = {"correct": 0.97, "partially_correct": 0.01, "wrong": 0.01, "unsafe": 0.01}
    unsure = {"correct": 0.4, "partially_correct": 0.2, "wrong": 0.2, "unsafe": 0.2}
    records = [_conversation(0, answer="It left today."), _conversation(1, answer="Monday.")]
    records[0]["prediction"] = {"model": "grader@1", "probabilities": sure}
    records[1]["prediction"] = {"model": "grader@1", "probabilities": unsure}
    report = loop.ingest(records)
    assert [o.route.value for o in report.outcomes if o.route] == ["auto_accept", "review"]
    prediction = loop.lineage_of_item("c0")["predictions"][-1]["id"]
    loop.feedback(prediction, "report", "user-42-c0", comment="the bot got this wrong")
    first = loop.next_task("ann")
    assert first is not None and first.item.external_id == "c0" and first.task.priority == 2.0
