"""Blind review and hidden gold, through the REST face on SQLite and PostgreSQL.

A gold task must look, to the annotator it measures, exactly like any other task: the same keys
(recursively) in every body of ``tasks/next``, ``context``, ``submit``, ``session``,
``explanation`` and ``guidelines``, and no "gold" anywhere in them. A tier-1 annotator sees no
earlier vote on a task; an expert on an escalated tier-2 task and a lead do.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from loopwright import Loop, Workspace
from loopwright.learning import default_estimator
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.service.auth import Action, Membership, Principal
from loopwright.store.sql import SqlStore

CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b", "c"],
    "features": ["x", "y"],
    "routing": {"accept_threshold": 1.0, "audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "disputed", "required_annotations": 1},
    ],
    "consensus": {"method": "majority"},
    "gold": {"onboarding": 1},  # every reviewer's first claim is a gold task
    "guidelines": "# Toy\n- a: x large\n- b: y large",
}
USERS = [
    ("ann1", Role.ANNOTATOR, [1]),
    ("ann2", Role.ANNOTATOR, [1]),
    ("exp", Role.EXPERT, None),
    ("lead", Role.LEAD, None),
]
H = dict[str, dict[str, str]]


def _world(store: SqlStore) -> tuple[Loop, TestClient, H]:
    ws = Workspace(store)
    loop = ws.create_project(CONFIG)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = np.where(X[:, 0] > 0.5, "a", np.where(X[:, 1] > 0, "b", "c"))
    loop.use_model(default_estimator(loop.config, 0).fit(X, y), force=True)
    auth = SqlAuthenticator(store)
    headers = {}
    for name, role, tiers in USERS:
        auth.add_user(name)
        auth.add_membership(name, "toy", role, tiers)
        headers[name] = {"Authorization": f"Bearer {auth.issue_token(name)}"}
    client = TestClient(create_app(ws, authenticator=auth))
    gold = {
        "items": [
            {
                "external_id": "gold-1",
                "payload": {"x": 2.0, "y": 0.0},
                "label": "a",
                "metadata": {"set": "gold"},
            }
        ],
        "tiers": [1],
    }
    assert client.post("/v1/projects/toy/gold", json=gold, headers=headers["lead"]).status_code == 201
    loop.ingest(
        {"external_id": f"p{i}", "payload": {"x": float(i), "y": 0.5}, "metadata": {"source": "cam"}}
        for i in range(4)
    )
    return loop, client, headers


def _shape(value: Any) -> Any:
    """The keys of a JSON value, recursively (lists: the union of their elements' shapes)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted({json.dumps(_shape(v), sort_keys=True) for v in value})
    return "null" if value is None else "leaf"


def _everything(client: TestClient, h: dict[str, str], label: str) -> dict[str, Any]:
    """Every body an annotator sees around one task: claim, context, explanation, guidelines,
    submit, session, and the project's status before the claim and after the submit."""
    before = client.get("/v1/projects/toy", headers=h).json()
    r = client.post("/v1/projects/toy/tasks/next", json={"session_id": "s"}, headers=h)
    assert r.status_code == 200, r.text
    task = r.json()
    bodies = {"next": task}
    for key, path in [
        ("context", f"/v1/projects/toy/tasks/{task['task']['id']}/context"),
        ("explanation", f"/v1/projects/toy/items/{task['item']['id']}/explanation"),
        ("guidelines", "/v1/projects/toy/guidelines"),
    ]:
        r = client.get(path, headers=h)
        assert r.status_code == 200, r.text
        bodies[key] = r.json()
    r = client.post(f"/v1/leases/{task['lease']['id']}/submit", json={"label": label}, headers=h)
    assert r.status_code == 200, r.text
    bodies["submit"] = r.json()
    bodies["session"] = client.get("/v1/projects/toy/session?session_id=s", headers=h).json()
    bodies["status"] = client.get("/v1/projects/toy", headers=h).json()
    assert bodies["status"] == before  # no count moves on a submit the annotator could compare
    return bodies


def test_the_status_hides_the_counts_a_submit_moves_from_measured_reviewers(store: SqlStore) -> None:
    """Open tasks, answers, resolutions and the audits waiting for another answer would tell a
    reviewer whether the task just answered was gold or an audit; a lead sees them."""
    _, client, h = _world(store)
    hidden = ("open_tasks_by_tier", "annotations", "resolutions", "audits_waiting")
    mine = client.get("/v1/projects/toy", headers=h["ann1"]).json()
    assert [mine[k] for k in hidden] == [None] * 4
    lead = client.get("/v1/projects/toy", headers=h["lead"]).json()
    assert [lead[k] for k in hidden] == [{"1": 4}, 0, 0, 0]


def test_a_gold_task_looks_like_any_other_task_to_the_annotator(store: SqlStore) -> None:
    _, client, h = _world(store)
    gold = _everything(client, h["ann1"], "b")  # onboarding: the gold item, answered wrong
    normal = _everything(client, h["ann1"], "a")
    with store.unit_of_work() as uow:
        assert uow.tasks.get(gold["next"]["task"]["id"]).gold_label == "a"  # it was the gold task
        assert uow.tasks.get(normal["next"]["task"]["id"]).gold_label is None
    for key in gold:
        assert _shape(gold[key]) == _shape(normal[key]), key
        for body in (gold[key], normal[key]):
            assert "gold" not in json.dumps(body).lower(), (key, body)
    task = gold["next"]
    assert task["task"]["status"] == "open" and task["why"] == "tier 1 queue"
    assert "external_id" not in task["item"] and "metadata" not in task["item"]
    assert task["suggestion"]["label"] == "a"  # the champion's, as on every task
    assert (
        gold["submit"] == normal["submit"] == {"annotation": None, "resolution": None, "escalated_to": None}
    )
    assert gold["session"]["done_this_session"] == 1 and normal["session"]["done_this_session"] == 2
    # the expert (measured too) gets the same blind view of a gold task
    exp = client.post("/v1/projects/toy/tasks/next", json={"tiers": [1]}, headers=h["exp"]).json()
    assert exp["task"]["id"] == task["task"]["id"] and exp["task"]["status"] == "open"
    assert "gold" not in json.dumps(exp).lower()
    for path in ("events", "dashboard", "annotators/ann1", "annotations"):  # they would tell
        assert client.get(f"/v1/projects/toy/{path}", headers=h["exp"]).status_code == 403, path
    # a lead still sees gold: the task, the scored answer and the annotator's record
    mine = client.post("/v1/projects/toy/tasks/next", headers=h["lead"]).json()
    assert (mine["task"]["status"], mine["task"]["gold_label"], mine["item"]["external_id"]) == (
        "gold",
        "a",
        "gold-1",
    )
    assert "gold" in mine["why"]
    done = client.post(f"/v1/leases/{mine['lease']['id']}/submit", json={"label": "a"}, headers=h["lead"])
    assert done.json()["gold"]["correct"] is True
    record = client.get("/v1/projects/toy/annotators/ann1", headers=h["lead"]).json()
    assert (record["gold_answers"], record["gold_accuracy"]) == (1, 0.0)
    session = client.get("/v1/projects/toy/session", headers=h["lead"]).json()
    assert (session["gold_answers"], session["gold_accuracy"]) == (1, 1.0)


def test_review_is_blind_below_the_escalation_tiers(store: SqlStore) -> None:
    _, client, h = _world(store)
    for who in ("ann1", "ann2"):  # onboarding gold first
        first = client.post("/v1/projects/toy/tasks/next", headers=h[who]).json()
        client.post(f"/v1/leases/{first['lease']['id']}/submit", json={"label": "a"}, headers=h[who])
    t1 = client.post("/v1/projects/toy/tasks/next", headers=h["ann1"]).json()
    client.post(f"/v1/leases/{t1['lease']['id']}/submit", json={"label": "a"}, headers=h["ann1"])
    t2 = client.post("/v1/projects/toy/tasks/next", headers=h["ann2"]).json()
    assert t2["task"]["id"] == t1["task"]["id"]  # overlap: the second annotator holds the same task
    ctx = client.get(f"/v1/projects/toy/tasks/{t2['task']['id']}/context", headers=h["ann2"]).json()
    assert ctx["annotations"] == [] and ctx["posterior"] == {} and ctx["why"] == "tier 1"
    assert "ann1" not in json.dumps(ctx) and "already" not in t2["why"]
    lead_ctx = client.get(f"/v1/projects/toy/tasks/{t2['task']['id']}/context", headers=h["lead"]).json()
    assert [(a["annotator"], a["label"]) for a in lead_ctx["annotations"]] == [("ann1", "a")]
    assert lead_ctx["posterior"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    r = client.post(f"/v1/leases/{t2['lease']['id']}/submit", json={"label": "c"}, headers=h["ann2"])
    assert r.json() == {"annotation": None, "resolution": None, "escalated_to": None}  # disputed, unsaid
    up = client.post("/v1/projects/toy/tasks/next", json={"tiers": [2]}, headers=h["exp"])
    assert up.status_code == 200, up.text  # the expert's onboarding gold is on tier 1 only
    escalated = up.json()
    assert escalated["task"]["parent_task_id"] == t1["task"]["id"]
    ctx2 = client.get(f"/v1/projects/toy/tasks/{escalated['task']['id']}/context", headers=h["exp"]).json()
    assert [(a["annotator"], a["label"]) for a in ctx2["annotations"]] == [("ann1", "a"), ("ann2", "c")]
    assert ctx2["posterior"] == {"a": 0.5, "b": 0.0, "c": 0.5}
    assert ctx2["why"].startswith("escalated from tier 1 to 2")
    # the expert on tier 1 is blind like any annotator
    ctx1 = client.get(f"/v1/projects/toy/tasks/{t1['task']['id']}/context", headers=h["exp"]).json()
    assert ctx1["annotations"] == [] and ctx1["posterior"] == {}
    r = client.post(f"/v1/leases/{escalated['lease']['id']}/submit", json={"label": "a"}, headers=h["exp"])
    assert r.json()["resolution"]["label"] == "a"  # reviewers of disputes see what they resolved


def test_the_permission_rows() -> None:
    ann = Principal("a", memberships={"p": Membership(Role.ANNOTATOR, (1,))})
    exp = Principal("e", memberships={"p": Membership(Role.EXPERT)})
    lead = Principal("l", memberships={"p": Membership(Role.LEAD)})
    admin = Principal("root", admin=True)
    for tier in (1, 2, 3):
        assert not ann.may("p", Action.SEE_VOTES, tier) and not ann.may("p", Action.SEE_GOLD)
        assert exp.may("p", Action.SEE_VOTES, tier) is (tier >= 2) and not exp.may("p", Action.SEE_GOLD)
        assert lead.may("p", Action.SEE_VOTES, tier) and lead.may("p", Action.SEE_GOLD)
        assert admin.may("p", Action.SEE_VOTES, tier) and admin.may("q", Action.SEE_GOLD)
    assert not lead.may("q", Action.SEE_VOTES, 2)  # not a member there


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.EXPERT])
def test_me_lists_no_gold_action_for_measured_roles(store: SqlStore, role: Role) -> None:
    ws = Workspace(store)
    ws.create_project(CONFIG)
    auth = SqlAuthenticator(store)
    auth.add_user("u")
    auth.add_membership("u", "toy", role, None)
    client = TestClient(create_app(ws, authenticator=auth))
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {auth.issue_token('u')}"}).json()
    assert "see_gold" not in me["projects"]["toy"]["actions"]


AUDITED: dict[str, Any] = {
    "name": "audited",
    "labels": ["a", "b", "c"],
    "features": ["x", "y"],
    "routing": {
        "accept_threshold": 1.0,
        "audit_rate": 0.5,
        "audit_tier": 2,  # the audits: tier 2's queue; tier 1 takes the rest
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "audit"}],
    "consensus": {"method": "majority"},
}
HIDDEN = "the model's answer is hidden on this item's task: answer it on your own"


def _audited_world(store: SqlStore, onboarding: int) -> tuple[TestClient, H]:
    """A project whose audits go to tier 2, with eight items ingested (four audited) and, with
    ``onboarding``, gold on both tiers that every reviewer's first claims meet."""
    ws = Workspace(store)
    loop = ws.create_project({**AUDITED, "gold": {"onboarding": onboarding}})
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    loop.use_model(default_estimator(loop.config, 0).fit(X, np.where(X[:, 0] > 0, "a", "b")), force=True)
    auth = SqlAuthenticator(store)
    headers = {}
    for name, role, tiers in [
        ("ann", Role.ANNOTATOR, [1]),
        ("exp", Role.EXPERT, None),
        ("lead", Role.LEAD, None),
    ]:
        auth.add_user(name)
        auth.add_membership(name, "audited", role, tiers)
        headers[name] = {"Authorization": f"Bearer {auth.issue_token(name)}"}
    client = TestClient(create_app(ws, authenticator=auth))
    if onboarding:
        for tier, x in ((1, 2.0), (2, 3.0)):
            gold = {"items": [{"external_id": f"gold-{tier}", "payload": {"x": x, "y": 0.0}, "label": "a"}]}
            r = client.post(
                "/v1/projects/audited/gold", json={**gold, "tiers": [tier]}, headers=headers["lead"]
            )
            assert r.status_code == 201, r.text
    report = loop.ingest({"external_id": f"p{i}", "payload": {"x": 1.0 + i / 8, "y": 0.0}} for i in range(8))
    reasons = sorted(o.reason for o in report.outcomes)
    assert reasons == ["audit"] * 4 + ["low_confidence"] * 4  # seeded by the item hashes
    return client, headers


def _claim(client: TestClient, h: dict[str, str], tier: int) -> dict[str, Any]:
    r = client.post("/v1/projects/audited/tasks/next", json={"tiers": [tier]}, headers=h)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _around(client: TestClient, h: dict[str, str], task: dict[str, Any]) -> tuple[Any, Any, int]:
    """The task's context, and the item's explanation with its status code."""
    context = client.get(f"/v1/projects/audited/tasks/{task['task']['id']}/context", headers=h).json()
    explanation = client.get(f"/v1/projects/audited/items/{task['item']['id']}/explanation", headers=h)
    return context, explanation.json(), explanation.status_code


def test_an_audit_is_answered_without_the_model(store: SqlStore) -> None:
    client, h = _audited_world(store, onboarding=0)
    audit = _claim(client, h["exp"], 2)
    assert (audit["model_hidden"], audit["suggestion"], audit["prelabels"]) == (True, None, [])
    context, explanation, code = _around(client, h["exp"], audit)
    assert (context["model_hidden"], context["suggestion"]) == (True, None)
    assert (code, explanation) == (403, {"code": "forbidden", "message": HIDDEN})
    # the bulk queue's tasks keep their suggestion and explanation
    bulk = _claim(client, h["ann"], 1)
    assert bulk["model_hidden"] is False and bulk["suggestion"]["label"] == "a"
    context, explanation, code = _around(client, h["ann"], bulk)
    assert (context["model_hidden"], context["suggestion"]["label"], code) == (False, "a", 200)
    assert explanation["label"] == "a"
    # a lead sees the model on an audit too
    led = _claim(client, h["lead"], 2)
    assert led["task"]["reason"] == "audit" and led["model_hidden"] is False
    assert led["suggestion"]["label"] == "a"
    context, explanation, code = _around(client, h["lead"], audit)
    assert (context["model_hidden"], context["suggestion"]["label"], code) == (False, "a", 200)
    # once the audit is answered, nothing on the item is hidden any more
    done = client.post(f"/v1/leases/{audit['lease']['id']}/submit", json={"label": "a"}, headers=h["exp"])
    assert done.status_code == 200, done.text
    assert _around(client, h["exp"], audit)[2] == 200


def test_gold_beside_the_audits_is_answered_without_the_model_too(store: SqlStore) -> None:
    client, h = _audited_world(store, onboarding=1)
    gold, audit = _claim(client, h["exp"], 2), _claim(client, h["exp"], 2)
    with store.unit_of_work() as uow:
        assert uow.tasks.get(gold["task"]["id"]).gold_label == "a"  # onboarding: gold first
        assert uow.tasks.get(audit["task"]["id"]).reason == "audit"
    assert _shape(gold) == _shape(audit) and gold["model_hidden"] is audit["model_hidden"] is True
    for g, a in zip(_around(client, h["exp"], gold), _around(client, h["exp"], audit), strict=True):
        assert _shape(g) == _shape(a)
    assert _around(client, h["exp"], gold)[1:] == ({"code": "forbidden", "message": HIDDEN}, 403)
    for task in (gold, audit):  # whether an answer resolved an audit would tell them apart
        r = client.post(f"/v1/leases/{task['lease']['id']}/submit", json={"label": "a"}, headers=h["exp"])
        assert r.json() == {"annotation": None, "resolution": None, "escalated_to": None}
    # on the tier without audits, gold shows the model as every task there does
    gold1, bulk = _claim(client, h["ann"], 1), _claim(client, h["ann"], 1)
    assert _shape(gold1) == _shape(bulk) and gold1["model_hidden"] is bulk["model_hidden"] is False
    assert gold1["suggestion"]["label"] == bulk["suggestion"]["label"] == "a"
    assert _around(client, h["ann"], gold1)[2] == 200


def test_a_blind_claim_is_not_scored(store: SqlStore) -> None:
    """The champion scores a claimed item for those gold measures, except where they answer blind."""
    _audited_world(store, onboarding=1)
    loop = Workspace(store).project("audited")
    for tier, blind in ((2, True), (2, True), (1, False), (1, False)):  # gold first, then the work
        a = loop.next_task("someone", [tier], score_now=True)
        assert a is not None and a.scored
        assert (a.live is None) is blind, (a.task.reason, a.task.status)


def test_the_suggestion_shown_is_kept_with_the_answer(store: SqlStore) -> None:
    """Each answer keeps the label its page offered: the champion's now for a reviewer gold
    measures, the stored prediction for a lead, none on an audit answered blind."""
    client, h = _audited_world(store, onboarding=0)
    loop = Workspace(store).project("audited")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))  # a new champion that answers the other way round from the stored one
    loop.use_model(default_estimator(loop.config, 0).fit(X, np.where(X[:, 0] > 0, "b", "a")), force=True)
    claims = {
        "ann": _claim(client, h["ann"], 1),  # scored now: "b" shown
        "lead": _claim(client, h["lead"], 1),  # the stored prediction: "a"
        "exp": _claim(client, h["exp"], 2),  # an audit: no suggestion
    }
    shown = {who: c["suggestion"] and c["suggestion"]["label"] for who, c in claims.items()}
    assert shown == {"ann": "b", "lead": "a", "exp": None}
    for who, c in claims.items():
        r = client.post(f"/v1/leases/{c['lease']['id']}/submit", json={"label": "a"}, headers=h[who])
        assert r.status_code == 200, r.text
    with store.unit_of_work() as uow:
        kept = {who: uow.annotations.for_task(c["task"]["id"])[0] for who, c in claims.items()}
        leases = {who: uow.leases.get(c["lease"]["id"]).suggested for who, c in claims.items()}
    assert {who: a.suggested for who, a in kept.items()} == shown == leases
    assert {who: a.annotator for who, a in kept.items()} == {"ann": "ann", "lead": "lead", "exp": "exp"}
    traced = loop.lineage_of_item(claims["lead"]["item"]["external_id"])["annotations"]
    assert [(a["annotator"], a["suggested"]) for a in traced] == [("lead", "a")]
