"""The workspace endpoints behind the annotator and reviewer pages, through the REST face."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from loopwright import Loop, Workspace
from loopwright.learning import default_estimator
from loopwright.learning.explain import explain
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b", "c"],
    "features": ["x", "y"],
    "routing": {"accept_threshold": 1.0, "audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "fatigue": {"max_per_session": 5, "max_per_hour": 50},
    "guidelines": "# Toy\n- a: x large\n- b: y large",
    "tiers": [  # two people per tier-1 item, so they can disagree (the default is one)
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "uncertain"},
        {"tier": 3, "name": "expert"},
    ],
}
USERS = [("ann1", Role.ANNOTATOR, [1]), ("ann2", Role.ANNOTATOR, [1]), ("exp", Role.EXPERT, [2, 3])]


def _world(store: SqlStore, **overrides: Any) -> tuple[Loop, TestClient, dict[str, dict[str, str]]]:
    ws = Workspace(store)
    loop = ws.create_project({**CONFIG, **overrides})
    ws.create_project({**CONFIG, "name": "other"})
    auth = SqlAuthenticator(store)
    headers = {}
    for name, role, tiers in [*USERS, ("view", Role.VIEWER, None)]:
        auth.add_user(name)
        auth.add_membership(name, "toy", role, tiers)
        headers[name] = {"Authorization": f"Bearer {auth.issue_token(name)}"}
    return loop, TestClient(create_app(ws, authenticator=auth)), headers


def _fit(loop: Loop) -> Any:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = np.where(X[:, 0] > 0.5, "a", np.where(X[:, 1] > 0, "b", "c"))
    model = default_estimator(loop.config, 0).fit(X, y)
    loop.use_model(model, force=True)
    return model


def _claim_submit(
    client: TestClient, h: dict[str, str], label: str, comment: str | None = None, **body: Any
) -> dict[str, Any]:
    task = client.post("/v1/projects/toy/tasks/next", json=body, headers=h).json()
    submit = {"label": label, "comment": comment}
    r = client.post(f"/v1/leases/{task['lease']['id']}/submit", json=submit, headers=h)
    assert r.status_code == 200, r.text
    return {"task": task, "result": r.json()}


def test_guidelines_explanation_and_session(store: SqlStore) -> None:
    loop, client, h = _world(store)
    r = client.get("/v1/projects/toy/guidelines", headers=h["view"])
    assert r.json() == {"project": "toy", "guidelines": CONFIG["guidelines"], "labels": ["a", "b", "c"]}
    assert client.get("/v1/projects/other/guidelines", headers=h["view"]).status_code == 404
    loop.ingest([{"external_id": "i0", "payload": {"x": 2.0, "y": -1.0}}])
    item_id = loop.lineage_of_item("i0")["item"]["id"]
    r = client.get(f"/v1/projects/toy/items/{item_id}/explanation", headers=h["ann1"])
    assert (r.status_code, r.json()["code"]) == (409, "not_fitted")
    model = _fit(loop)
    r = client.get(f"/v1/projects/toy/items/{item_id}/explanation?k=2", headers=h["ann1"])
    expected = explain(model, loop.config, {"x": 2.0, "y": -1.0}, k=2)
    got = r.json()
    assert got["label"] == expected.label == "a" and got["method"] == "linear"
    assert [c["feature"] for c in got["top"]] == [c.feature for c in expected.top] == ["x", "y"]
    assert [c["weight"] for c in got["top"]] == pytest.approx([c.weight for c in expected.top])
    assert client.get(f"/v1/projects/toy/items/{item_id}/explanation", headers=h["view"]).status_code == 403
    loop.ingest([{"external_id": f"j{i}", "payload": {"x": float(i), "y": 0.0}} for i in range(3)])
    for _ in range(2):
        _claim_submit(client, h["ann1"], "a", session_id="s1")
    r = client.get("/v1/projects/toy/session?session_id=s1", headers=h["ann1"])
    assert r.json() == {
        "annotator": "ann1",
        "session_id": "s1",
        "done_this_session": 2,
        "max_per_session": 5,
        "remaining_session": 3,
        "done_last_hour": 2,
        "max_per_hour": 50,
        "remaining_hour": 48,
        "paused_tiers": [],  # no gold record: annotators are measured by it (service.blind)
    }
    assert client.get("/v1/projects/toy/session", headers=h["ann2"]).json()["done_this_session"] is None


@pytest.mark.parametrize("method", ["majority", "one_coin_dawid_skene"])
def test_reviewer_context_of_a_dispute_and_the_reason(store: SqlStore, method: str) -> None:
    loop, client, h = _world(store, consensus={"method": method, "min_posterior": 0.99})
    loop.ingest([{"external_id": "d", "payload": {"x": 0.0, "y": 0.0}}])
    _claim_submit(client, h["ann1"], "a")
    blind = _claim_submit(client, h["ann2"], "b")["result"]  # tier 1 sees no escalation (service.blind)
    assert blind == {"annotation": None, "resolution": None, "escalated_to": None}
    with store.unit_of_work() as uow:
        escalated = next(t for t in uow.tasks.for_item(uow.items.get(1).id) if t.tier == 2)
    assert escalated.reason == "disputed"
    task = escalated.id
    assert client.get(f"/v1/projects/toy/tasks/{task}/context", headers=h["ann1"]).status_code == 403
    assert client.get("/v1/projects/toy/tasks/999/context", headers=h["exp"]).status_code == 404
    r = client.get(f"/v1/projects/toy/tasks/{task}/context", headers=h["exp"])
    ctx = r.json()
    assert [(a["annotator"], a["label"], a["tier"], a["unsure"]) for a in ctx["annotations"]] == [
        ("ann1", "a", 1, False),
        ("ann2", "b", 1, False),
    ]
    assert ctx["method"] == method and ctx["suggestion"] is None  # no model yet
    assert ctx["why"] == "escalated from tier 1 to 2 · disputed · votes ann1: a, ann2: b"
    assert sum(ctx["posterior"].values()) == pytest.approx(1.0) and set(ctx["posterior"]) == {"a", "b", "c"}
    if method == "majority":
        assert ctx["posterior"] == {"a": 0.5, "b": 0.5, "c": 0.0}
        assert [a["estimated_accuracy"] for a in ctx["annotations"]] == [None, None]
    else:
        assert ctx["posterior"]["a"] == pytest.approx(ctx["posterior"]["b"])
        assert all(0.0 < a["estimated_accuracy"] <= 1.0 for a in ctx["annotations"])
    assert [a["gold_accuracy"] for a in ctx["annotations"]] == [None, None]
    done = _claim_submit(client, h["exp"], "a", tiers=[2], comment="x is clearly the larger one")
    assert done["task"]["task"]["id"] == task and done["result"]["escalated_to"] is None
    submitted = [e for e in loop.events(0, 1000) if e.action == "annotation.submitted"]
    assert (submitted[-1].actor, submitted[-1].data["comment"]) == ("exp", "x is clearly the larger one")
    assert "comment" not in submitted[0].data
