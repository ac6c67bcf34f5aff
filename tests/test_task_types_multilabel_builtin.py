"""``task: multilabel`` through the built-in model: per-label probabilities at ingest, the
set-level confidence routing and certification use, retraining on multi-hot sets with the set
gate, multi-hot export; label sets for gold answers, end-user corrections and model annotators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.multiclass import OneVsRestClassifier

from loopwright import Workspace
from loopwright.domain import ModelStatus, Route
from loopwright.errors import Invalid, NotFound, UnknownLabel
from loopwright.learning import default_estimator, predict_proba_by_label
from loopwright.loop import Loop
from loopwright.loop.model_annotators import parse_set
from loopwright.store.sql import SqlStore
from loopwright.tasks.gate import SetGateResult
from loopwright.tasks.multilabel import canonical, decide, set_confidence, top
from people import bearer, members

LABELS = ["a", "b", "c"]
CONFIG: dict[str, Any] = {
    "name": "sets",
    "labels": LABELS,
    "task": "multilabel",
    "features": ["x0", "x1"],
    "routing": {
        "audit_rate": 0.3,
        "certify": {"epsilon": 0.1, "delta": 0.1},
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
    "active": {"strategy": "least-confidence"},
    "retrain": {"min_labels": 20, "every_n_labels": 50},
}


def truth(x0: float, x1: float) -> str:
    """a: x0 > 0; b: x1 > 0; c: x0 + x1 > 1."""
    return canonical([n for n, on in zip(LABELS, (x0 > 0, x1 > 0, x0 + x1 > 1), strict=True) if on])


def batch(rng: np.random.Generator, tag: str, n: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    X = rng.normal(size=(n, 2))
    records = [
        {"external_id": f"{tag}-{i}", "payload": {"x0": float(a), "x1": float(b)}}
        for i, (a, b) in enumerate(X)
    ]
    return records, {r["external_id"]: truth(*r["payload"].values()) for r in records}


def label_all(loop: Loop, answers: dict[str, str]) -> int:
    done = 0
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", answers[a.item.external_id])
        done += 1
    return done


def test_decide_and_top_single_and_multilabel() -> None:
    P = np.array([[0.9, 0.2, 0.6], [0.1, 0.45, 0.3]])
    assert decide("multilabel", LABELS, P) == (['["a","c"]', "[]"], pytest.approx([0.6, 0.55]))
    assert decide("single", LABELS, [[0.2, 0.5, 0.3]]) == (["b"], pytest.approx([0.5]))
    rows = [None, dict(zip(LABELS, P[0], strict=True))]
    assert top("multilabel", LABELS, rows) == ([None, '["a","c"]'], [None, pytest.approx(0.6)])
    assert top("single", LABELS, rows) == ([None, "a"], [None, pytest.approx(0.9)])


def test_default_estimator_is_one_vs_rest_with_per_label_probabilities(store: SqlStore) -> None:
    cfg = Workspace(store).create_project(CONFIG).config
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    Y = np.array([[x0 > 0, x1 > 0, x0 + x1 > 1] for x0, x1 in X], dtype=int)
    model = default_estimator(cfg, 0).fit(X, Y)
    P = predict_proba_by_label(model, X[:5], LABELS)
    assert P.shape == (5, 3) and not np.allclose(P.sum(axis=1), 1.0)  # per label, not one distribution
    assert ((P >= 0.5) == Y[:5].astype(bool)).all()
    with pytest.raises(
        Invalid, match=r"multi-label model returned probabilities of shape \(5, 3\), expected \(5, 2\)"
    ):
        predict_proba_by_label(model, X[:5], LABELS[:2])


def test_builtin_model_routes_certifies_retrains_and_exports_sets(store: SqlStore, tmp_path: Path) -> None:
    loop = Workspace(store).create_project(CONFIG)
    rng = np.random.default_rng(0)
    answers: dict[str, str] = {}
    auto: list[Any] = []
    outcomes = []
    for k in range(3):
        records, t = batch(rng, f"r{k}", 150)
        answers |= t
        report = loop.ingest(records)
        auto += [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
        label_all(loop, answers)
        if loop.retrain_due():
            outcomes.append(loop.retrain())
    # round 0: no model, all reviewed; then the built-in model scores, certification lets sets through
    assert (
        isinstance(outcomes[0].gate, SetGateResult) and outcomes[0].gate.reason == "first model: no champion"
    )
    assert outcomes[1].gate.metric == "micro_f1" and outcomes[1].gate.p_worse is not None
    assert all(o.promoted for o in outcomes)
    metrics = outcomes[1].model.metrics
    assert (
        set(metrics) >= {"eval_accuracy", "eval_micro_f1", "eval_macro_f1"}
        and metrics["eval_micro_f1"] > 0.95
    )
    assert [(o.model.metrics["train_size"], o.model.metrics["eval_size"]) for o in outcomes] == [
        (84, 66),
        (105, 115),
    ]
    assert round(metrics["eval_micro_f1"], 4) == 0.9887 and round(metrics["eval_accuracy"], 4) == 0.9739
    assert len(auto) == 190  # of the 300 items after the first round
    wrong = sum(o.label != answers[o.external_id] for o in auto)
    assert wrong / len(auto) <= 0.1  # the realised whole-set error within ε
    # the stored prediction: its label the set with p ≥ 0.5, its confidence the weakest decision
    o = auto[-1]
    p = loop.lineage_of_item(o.external_id)["predictions"][-1]
    (proba,) = loop.predict([records[int(o.external_id.split("-")[1])]["payload"]])
    assert o.label == p["label"] == canonical(n for n, q in zip(LABELS, proba, strict=True) if q >= 0.5)
    assert o.confidence == p["confidence"] == pytest.approx(float(set_confidence([proba])[0]))
    assert o.confidence >= loop.status().certification.threshold
    P = loop.predict([{"x0": 2.0, "x1": 2.0}, {"x0": -2.0, "x1": -2.0}])
    assert (P >= 0.5).tolist() == [[True, True, True], [False, False, False]]
    version = loop.snapshot()
    rows = [
        json.loads(x)
        for x in loop.export_dataset(version.id, "jsonl", tmp_path / "d.jsonl").read_text().splitlines()
    ]
    assert all(
        r["labels"] == json.loads(r["label"])
        and [r[n] for n in LABELS] == [int(n in r["labels"]) for n in LABELS]
        for r in rows
    )


def test_the_set_gate_rejects_a_worse_challenger(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    rng = np.random.default_rng(1)
    records, answers = batch(rng, "g", 200)
    loop.ingest(records)
    label_all(loop, answers)
    assert loop.retrain().promoted

    def constant(config: Any, seed: int) -> Any:  # the base rates: always the same set
        return OneVsRestClassifier(DummyClassifier(strategy="prior"))

    worse = loop.retrain(trainer=constant)
    assert not worse.promoted and worse.model.status is ModelStatus.REJECTED
    assert worse.gate.delta < -0.2 and "significantly worse" in worse.gate.reason


def test_gold_label_sets_exact_match(store: SqlStore) -> None:
    loop = Workspace(store).create_project({**CONFIG, "gold": {"onboarding": 1}})
    with pytest.raises(Invalid, match=r"\[1\].label: unknown label 'z'") as caught:
        loop.add_gold(
            [
                {"external_id": "g0", "payload": {"x0": 1.0, "x1": 1.0}, "label": ["b", "a"]},
                {"external_id": "g1", "payload": {"x0": 1.0, "x1": 1.0}, "label": ["a", "z"]},
            ]
        )
    assert "1 gold item(s) rejected; nothing was added" in str(caught.value)
    with pytest.raises(NotFound):
        loop.lineage_of_item("g0")
    (task,) = loop.add_gold([{"external_id": "g0", "payload": {"x0": 1.0, "x1": 1.0}, "label": ["b", "a"]}])
    assert task.gold_label == '["a","b"]'
    for who, said, right in (("ann1", '["b","a"]', True), ("ann2", '["a"]', False)):
        a = loop.next_task(who)
        assert a is not None and a.task.id == task.id
        assert loop.submit(a.lease.id, who, said).gold.correct is right


def test_an_end_user_correction_is_a_label_set(store: SqlStore) -> None:
    loop = Workspace(store).create_project(
        {**CONFIG, "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}}
    )
    rng = np.random.default_rng(2)
    records, answers = batch(rng, "f", 60)
    loop.ingest(records)
    label_all(loop, answers)
    loop.retrain()
    loop.ingest([{"external_id": "new", "payload": {"x0": 2.0, "x1": -2.0}}])
    prediction = loop.lineage_of_item("new")["predictions"][-1]["id"]
    with pytest.raises(UnknownLabel, match="correction: unknown label 'z'"):
        loop.feedback(prediction, "correction", "k1", correction='["a","z"]')
    with pytest.raises(Invalid, match="correction: a label set must be a JSON array"):
        loop.feedback(prediction, "correction", "k1", correction="a")
    stored = loop.feedback(prediction, "correction", "k1", correction='["c","a"]')
    assert stored.correction == '["a","c"]'
    assert loop.feedback(prediction, "correction", "k1", correction='["a","c"]').id == stored.id


def test_parse_set_reads_json_or_commas() -> None:
    assert parse_set('["b", "a"]', LABELS) == '["a","b"]'
    assert parse_set("A, 'c'.", LABELS) == '["a","c"]'
    assert parse_set("none", LABELS) == parse_set("[]", LABELS) == "[]"
    assert parse_set("a, zebra", LABELS) is None and parse_set("  ", LABELS) is None


def test_a_model_version_annotates_with_its_predicted_set(store: SqlStore) -> None:
    loop = Workspace(store).create_project(
        {**CONFIG, "model_annotators": [{"name": "v1", "kind": "model_version", "version": 1}]}
    )
    rng = np.random.default_rng(3)
    records, answers = batch(rng, "m", 60)
    loop.ingest(records)
    label_all(loop, answers)
    loop.retrain()
    loop.ingest([{"external_id": "q", "payload": {"x0": 0.05, "x1": 3.0}}])  # unsure on a: reviewed
    (row,) = [a for a in loop.lineage_of_item("q")["annotations"] if a["machine"]]
    assert (row["annotator"], row["status"]) == ("v1", "labelled")
    assert row["label"] == loop.lineage_of_item("q")["predictions"][-1]["label"]
    assert {"b", "c"} <= set(json.loads(row["label"]))  # x1 = 3: b and c surely apply


def test_a_reviewer_is_shown_and_keeps_the_champions_label_set(store: SqlStore) -> None:
    """Scored now for an annotator, the suggestion is the set of labels at p ≥ 0.5 with the set's
    confidence, as a stored prediction holds it; the answer keeps that set."""
    from fastapi.testclient import TestClient

    from loopwright.service import Role, create_app

    ws = Workspace(store)
    loop = ws.create_project({**CONFIG, "routing": {**CONFIG["routing"], "audit_rate": 0.0}})
    records, answers = batch(np.random.default_rng(0), "r", 150)
    loop.ingest(records)
    label_all(loop, answers)
    assert loop.retrain().promoted
    loop.ingest([{"external_id": "t1", "payload": {"x0": 2.0, "x1": 1.5}}])
    auth, tokens = members("sets", {"ann": (Role.ANNOTATOR, [1])})
    h = bearer(tokens)["ann"]
    client = TestClient(create_app(ws, authenticator=auth))
    claimed = client.post("/v1/projects/sets/tasks/next", headers=h).json()
    shown = claimed["suggestion"]
    probabilities = [shown["probabilities"][label] for label in LABELS]
    assert shown["label"] == '["a","b","c"]' == decide("multilabel", LABELS, [probabilities])[0][0]
    assert shown["confidence"] == pytest.approx(set_confidence(np.array([probabilities]))[0])
    assert claimed["lease"]["suggested"] == shown["label"]
    r = client.post(f"/v1/leases/{claimed['lease']['id']}/submit", json={"label": ["a", "b"]}, headers=h)
    assert r.status_code == 200, r.text
    with store.unit_of_work() as uow:
        kept = uow.annotations.for_task(claimed["task"]["id"])
    assert [(a.label, a.suggested) for a in kept] == [('["a","b"]', '["a","b","c"]')]
