"""Multi-label task type: value schema, per-label consensus and agreement, set routing, gate and
export — in the core and through the loop on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest

from loopwright import Workspace
from loopwright.errors import Invalid, UnknownLabel
from loopwright.store.sql import SqlStore
from loopwright.tasks import MultiLabel, task_type
from loopwright.tasks.gate import paired_bootstrap, set_gate
from loopwright.tasks.multilabel import (
    LabelwiseDawidSkene,
    agreement,
    canonical,
    f1_scores,
    masi_distance,
    multi_hot,
    predict_sets,
    set_alpha,
    set_confidence,
)
from people import bearer, members

LABELS = ["billing", "bug", "urgent"]
ML = MultiLabel()


def test_canonical_text_is_sorted_unique_compact_json() -> None:
    assert canonical(["urgent", "billing", "urgent"]) == '["billing","urgent"]'
    assert ML.parse(["urgent", "billing", "billing"], LABELS) == '["billing","urgent"]'
    assert ML.parse('[ "bug" ,"billing"]', LABELS) == '["billing","bug"]'
    assert ML.parse([], LABELS) == "[]"  # none applies is an answer
    assert task_type("multilabel") is not task_type("single")


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (["billing", "refund"], UnknownLabel, "label: unknown label 'refund'"),
        (["x", "y"], UnknownLabel, "label: unknown label ['x', 'y']"),
        ("billing", Invalid, "label: a label set must be a JSON array"),
        ({"billing": 1}, Invalid, "label: a label set must be a list of label names, not dict"),
        ('{"a": 1}', Invalid, "not dict"),
        ([1, 2], Invalid, "a list of label names"),
    ],
)
def test_bad_label_sets_are_refused_naming_the_field(value: object, error: type, words: str) -> None:
    with pytest.raises(error) as caught:
        ML.parse(value, LABELS)
    assert words in str(caught.value)


def test_unknown_task_type() -> None:
    with pytest.raises(Invalid, match="task: unknown task type 'polygons'"):
        task_type("polygons")


def test_vote_is_per_label_majority_and_a_split_label_is_a_tie() -> None:
    three = ['["billing","urgent"]', '["billing"]', '["billing","bug","urgent"]']
    vote = ML.vote(three, LABELS)
    assert vote.label == '["billing","urgent"]' and not vote.tie
    assert vote.agreement == pytest.approx((3 + 2 + 2) / 9)  # per label: 3/3, 2/3, 2/3
    split = ML.vote(['["billing"]', '["billing","bug"]'], LABELS)
    assert split.tie and split.label == '["billing"]' and split.agreement == pytest.approx((2 + 1 + 2) / 6)


def test_multi_hot_and_predicted_sets() -> None:
    Y = multi_hot(['["urgent"]', "[]", '["billing","bug"]'], LABELS)
    assert Y.tolist() == [[0, 0, 1], [0, 0, 0], [1, 1, 0]]
    P = np.array([[0.9, 0.2, 0.6], [0.1, 0.05, 0.5]])
    assert predict_sets(P, LABELS) == ['["billing","urgent"]', '["urgent"]']
    assert set_confidence(P).tolist() == pytest.approx([0.6, 0.5])  # the least certain decision
    with pytest.raises(Invalid, match="2-d"):
        set_confidence([0.5, 0.5])


def test_masi_distance_hand_values() -> None:
    assert masi_distance({"a"}, {"a"}) == 0.0
    assert masi_distance({"a"}, {"a", "b"}) == pytest.approx(1 - 0.5 * 2 / 3)
    assert masi_distance({"a", "b"}, {"b", "c"}) == pytest.approx(1 - (1 / 3) * (1 / 3))
    assert masi_distance({"a"}, {"b"}) == 1.0
    assert masi_distance(set(), set()) == 0.0


def test_set_alpha_hand_worked_and_equal_to_the_package_for_nominal_distance() -> None:
    # three items, two coders: {a}{a}, {a,b}{a,b}, {a}{a,b}: D_o = 2/9, D_e = 2/5, alpha = 4/9
    items = ["1", "1", "2", "2", "3", "3"]
    answers = ['["a"]', '["a"]', '["a","b"]', '["a","b"]', '["a"]', '["a","b"]']
    assert set_alpha(items, answers) == pytest.approx(4 / 9)
    rng = np.random.default_rng(3)
    sets = ['["a"]', '["a","b"]', '["b"]', "[]"]
    items = [str(i) for i in range(40) for _ in range(3)]
    answers = [sets[int(k)] for k in rng.integers(0, 4, 120)]
    nominal = set_alpha(items, answers, distance=lambda x, y: float(x != y))
    codes = np.array([sets.index(a) for a in answers], dtype=float).reshape(40, 3).T
    assert nominal == pytest.approx(
        krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal")
    )
    assert set_alpha(["1", "1"], ['["a"]', '["a"]']) is None  # one value: undefined


def test_agreement_per_label_and_masi() -> None:
    items = ["1", "1", "2", "2", "3", "3", "4", "4"]
    workers = ["w1", "w2"] * 4
    answers = ['["bug"]', '["bug"]', '["billing"]', '["billing"]', "[]", '["urgent"]', '["bug"]', '["bug"]']
    report = agreement(items, workers, answers, LABELS)
    assert report["per_label"]["bug"]["fleiss_kappa"] == pytest.approx(1.0)
    assert report["per_label"]["billing"]["fleiss_kappa"] == pytest.approx(1.0)
    # urgent: one "yes" against seven "no"; the only disagreement
    assert report["per_label"]["urgent"]["fleiss_kappa"] == pytest.approx(-1 / 7)
    assert report["masi_alpha"] is not None and 0.5 < report["masi_alpha"] < 1.0


def test_labelwise_dawid_skene_learns_who_is_wrong_on_which_label() -> None:
    truth = {str(i): ["billing"] if i % 2 else ["bug", "urgent"] for i in range(30)}
    items, workers, answers = [], [], []
    for i, held in truth.items():
        flipped = sorted(set(held) ^ {"urgent"})  # w3 is always wrong about urgent only
        for worker, said in (("w1", held), ("w2", held), ("w3", flipped)):
            items.append(i)
            workers.append(worker)
            answers.append(canonical(said))
    ds = LabelwiseDawidSkene(LABELS).fit(items, workers, answers)
    assert [ds.labels_[int(np.searchsorted(ds.items_, i))] for i in truth] == [
        canonical(s) for s in truth.values()
    ]
    assert ds.skills_["urgent"]["w3"] < 0.05 and ds.skills_["billing"]["w3"] > 0.95
    with pytest.raises(Invalid):
        LabelwiseDawidSkene(LABELS).fit([], [], [])


def test_f1_and_the_paired_bootstrap_gate() -> None:
    T = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    P = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    micro, macro = f1_scores(T, P)
    assert micro == pytest.approx(2 * 4 / (2 * 4 + 0 + 2))  # tp 4, fp 0, fn 2
    assert macro == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))
    rng = np.random.default_rng(0)
    truth = rng.random((200, 3)) < 0.4
    good = truth ^ (rng.random((200, 3)) < 0.05)
    bad = truth ^ (rng.random((200, 3)) < 0.30)
    worse = set_gate(truth, bad, good, n_boot=300)
    assert not worse.passed and worse.p_worse is not None and worse.p_worse < 0.05 and worse.delta < 0
    better = set_gate(truth, good, bad, metric="macro_f1", n_boot=300)
    assert better.passed and better.p_worse == pytest.approx(1.0) and better.metric == "macro_f1"
    assert set_gate(truth, good, None).reason == "first model: no champion"
    few = set_gate(truth[:5], good[:5], bad[:5])
    assert not few.passed and few.reason == "5 evaluation items, need 10"
    same = paired_bootstrap(lambda t, p: f1_scores(t, p)[0], truth, good, good, n_boot=50)
    assert same == pytest.approx(0.5)  # every draw exactly level: half counts
    with pytest.raises(Invalid, match="shape"):
        set_gate(truth, good[:, :2], None)


CONFIG = {
    "name": "tickets",
    "labels": LABELS,
    "task": "multilabel",
    "features": ["x"],
    "model": {"kind": "external"},
    "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "lead", "required_annotations": 1},
    ],
}


def _answer(loop, who: str, label: str):  # type: ignore[no-untyped-def]
    a = loop.next_task(who)
    assert a is not None
    return loop.submit(a.lease.id, who, label)


def test_label_sets_through_review_resolve_and_export(store: SqlStore, tmp_path: Path) -> None:
    loop = Workspace(store).create_project(CONFIG)
    loop.ingest([{"external_id": "t1", "payload": {"x": 1.0}}, {"external_id": "t2", "payload": {"x": 2.0}}])
    # bad answers first: refused, nothing written, the lease still usable
    a = loop.next_task("ann1")
    assert a is not None
    with pytest.raises(UnknownLabel, match="label: unknown label 'refund'"):
        loop.submit(a.lease.id, "ann1", '["billing","refund"]')
    with pytest.raises(Invalid, match="label: a label set must be a JSON array"):
        loop.submit(a.lease.id, "ann1", "billing")
    assert loop.annotations() == [] and loop.events()[-1].action == "task.claimed"
    loop.submit(a.lease.id, "ann1", '["urgent","billing"]')
    second = _answer(loop, "ann2", '["billing","urgent","urgent"]')
    assert second.resolution is not None and second.resolution.label == '["billing","urgent"]'
    assert second.resolution.agreement == pytest.approx(1.0)
    assert [x.label for x in loop.annotations()] == ['["billing","urgent"]'] * 2
    # t2: the two disagree on "bug" → a tie → one tier up, where the lead's set is final
    _answer(loop, "ann1", '["bug"]')
    split = _answer(loop, "ann2", "[]")
    assert split.resolution is None and split.escalated_to is not None and split.escalated_to.tier == 2
    final = _answer(loop, "lead", '["bug"]')
    assert final.resolution is not None and final.resolution.label == '["bug"]'
    version = loop.snapshot()
    rows = [
        json.loads(x)
        for x in loop.export_dataset(version.id, "jsonl", tmp_path / "d.jsonl").read_text().splitlines()
    ]
    hot = {r["external_id"]: (r["labels"], r["billing"], r["bug"], r["urgent"]) for r in rows}
    assert hot == {"t1": (["billing", "urgent"], 1, 0, 1), "t2": (["bug"], 0, 1, 0)}
    header = loop.export_dataset(version.id, "csv", tmp_path / "d.csv").read_text().splitlines()[0]
    assert header.endswith(",labels,billing,bug,urgent")


def test_dawid_skene_consensus_per_label_in_the_loop(store: SqlStore) -> None:
    loop = Workspace(store).create_project(
        {**CONFIG, "consensus": {"method": "dawid_skene", "min_posterior": 0.6}}
    )
    loop.ingest([{"external_id": f"t{i}", "payload": {"x": float(i)}} for i in range(3)])
    answers = {"t0": '["bug"]', "t1": '["billing"]', "t2": '["billing","urgent"]'}
    resolved = {}
    for _ in range(3):
        for who in ("ann1", "ann2"):
            a = loop.next_task(who)
            assert a is not None
            result = loop.submit(a.lease.id, who, answers[a.item.external_id])
            if result.resolution is not None:
                resolved[a.item.external_id] = result.resolution.label
    assert resolved == answers


def test_the_rest_face_takes_a_list_and_answers_422_naming_the_field(store: SqlStore) -> None:
    from fastapi.testclient import TestClient

    from loopwright.service import Role, create_app

    ws = Workspace(store)
    loop = ws.create_project(CONFIG)
    loop.ingest([{"external_id": "t1", "payload": {"x": 1.0}}])
    auth, tokens = members("tickets", {"ann": (Role.ANNOTATOR, [1])})
    h = bearer(tokens)["ann"]
    client = TestClient(create_app(ws, authenticator=auth), raise_server_exceptions=False)
    lease = client.post("/v1/projects/tickets/tasks/next", headers=h).json()["lease"]["id"]
    for bad, code, words in (
        (["billing", "refund"], "unknown_label", "label: unknown label 'refund'"),
        ("bug", "invalid", "label: a label set must be a JSON array"),
    ):
        r = client.post(f"/v1/leases/{lease}/submit", json={"label": bad}, headers=h)
        assert r.status_code == 422 and r.json()["code"] == code and words in r.json()["message"], r.text
    r = client.post(f"/v1/leases/{lease}/submit", json={"label": [1, 2]}, headers=h)
    assert r.status_code == 422  # not strings: refused by the body schema
    assert loop.annotations() == []
    r = client.post(f"/v1/leases/{lease}/submit", json={"label": ["urgent", "bug"]}, headers=h)
    assert r.status_code == 200, r.text
    assert [a.label for a in loop.annotations()] == ['["bug","urgent"]']
