"""The REST face (``loopwright.service``) through FastAPI's TestClient on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

import loopwright.errors as lw_errors
from loopwright import Loop, Workspace
from loopwright.service import Role, SqlAuthenticator, TokenAuthenticator, create_app, serve
from loopwright.service.errors import STATUS_BY_ERROR, status_for
from loopwright.store.sql import SqlStore
from people import bearer, members


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b", "c"],
    "modality": "tabular",
    "features": ["x", "y"],
    "routing": {"accept_threshold": 0.9, "audit_rate": 0.0},
    "tiers": [  # two people per tier-1 item (the default is one since issue 20)
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "uncertain"},
        {"tier": 3, "name": "expert"},
    ],
}
ITEMS = [{"external_id": f"p{i}", "payload": {"x": float(i), "y": 1.0}} for i in range(2)]
USERS = {  # name -> (admin, role in "toy", tiers)
    "root": (True, None, None),
    "svc": (False, Role.SERVICE, None),
    "ann1": (False, Role.ANNOTATOR, [1]),
    "ann2": (False, Role.ANNOTATOR, [1]),
    "ann2t": (False, Role.ANNOTATOR, [2]),
    "exp": (False, Role.EXPERT, None),
    "view": (False, Role.VIEWER, None),
    "stranger": (False, None, None),
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ws(store: SqlStore, clock: ManualClock) -> Workspace:
    workspace = Workspace(store, clock)
    workspace.create_project(CONFIG)
    workspace.create_project({**CONFIG, "name": "secret"})
    return workspace


@pytest.fixture(params=["memory", "sql"])
def tokens(
    request: pytest.FixtureRequest, ws: Workspace, store: SqlStore
) -> tuple[TokenAuthenticator | SqlAuthenticator, dict[str, dict[str, str]]]:
    auth = TokenAuthenticator() if request.param == "memory" else SqlAuthenticator(store)
    admins = tuple(name for name, (admin, _, _) in USERS.items() if admin)
    roles = {n: None if role is None else (role, tiers) for n, (_, role, tiers) in USERS.items()}
    auth, issued = members("toy", roles, admins, auth)
    return auth, bearer(issued)


@pytest.fixture
def client(
    ws: Workspace, tokens: tuple[TokenAuthenticator | SqlAuthenticator, dict[str, dict[str, str]]]
) -> TestClient:
    return TestClient(create_app(ws, authenticator=tokens[0]), raise_server_exceptions=False)


@pytest.fixture
def h(
    tokens: tuple[TokenAuthenticator | SqlAuthenticator, dict[str, dict[str, str]]],
) -> dict[str, dict[str, str]]:
    return tokens[1]


def test_happy_path_ingest_review_resolve(client: TestClient, h: dict[str, dict[str, str]]) -> None:
    r = client.post("/v1/projects/toy/items", json={"items": ITEMS}, headers=h["svc"])
    assert r.status_code == 200, r.text
    assert [(o["route"], o["tier"], o["reason"]) for o in r.json()["outcomes"]] == [
        ("review", 1, "no_model")
    ] * 2
    first = client.post("/v1/projects/toy/tasks/next", headers=h["ann1"])
    second = client.post("/v1/projects/toy/tasks/next", json={"tiers": [1]}, headers=h["ann2"])
    assert first.status_code == second.status_code == 200, first.text
    a1, a2 = first.json(), second.json()
    assert a1["task"]["id"] == a2["task"]["id"] and a1["lease"]["annotator"] == "ann1"
    assert "external_id" not in a1["item"] and a1["why"] == "tier 1 queue"  # blind (service.blind)
    r = client.post(f"/v1/leases/{a1['lease']['id']}/submit", json={"label": "a"}, headers=h["ann1"])
    assert r.status_code == 200 and r.json()["resolution"] is None
    r = client.post(f"/v1/leases/{a2['lease']['id']}/submit", json={"label": "a"}, headers=h["ann2"])
    assert r.status_code == 200 and r.json()["resolution"] is None  # resolved, but tier 1 is blind
    status = client.get("/v1/projects/toy", headers=h["view"]).json()
    assert status["project"] == "toy" and status["resolutions"] == 1 and status["items"] == 2
    assert "routing" in status and "certification" in status and "automation_rate" in status
    events = client.get("/v1/projects/toy/events?limit=2", headers=h["view"]).json()
    assert len(events["events"]) == 2 and events["next_after"] == events["events"][-1]["id"]
    rest = client.get(f"/v1/projects/toy/events?after={events['next_after']}", headers=h["view"]).json()
    assert rest["events"] and rest["events"][0]["id"] > events["next_after"]
    # the second item: extend, skip; then nothing left for ann1 → 204
    nxt = client.post("/v1/projects/toy/tasks/next", headers=h["ann1"]).json()
    lease = nxt["lease"]["id"]
    r = client.post(f"/v1/leases/{lease}/extend", json={"seconds": 60}, headers=h["ann1"])
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert client.post(f"/v1/leases/{lease}/skip", headers=h["ann1"]).status_code == 200
    assert client.post("/v1/projects/toy/tasks/next", headers=h["ann1"]).status_code == 204
    nxt = client.post("/v1/projects/toy/tasks/next", headers=h["ann2"]).json()
    r = client.post(f"/v1/leases/{nxt['lease']['id']}/release", headers=h["ann2"])
    assert r.status_code == 200 and r.json()["status"] != "active"


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and "/v1/leases/{lease_id}/submit" in spec.json()["paths"]
    assert client.get("/docs").status_code == 200


def test_error_bodies(
    client: TestClient, h: dict[str, dict[str, str]], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = client.get("/v1/projects/nope", headers=h["root"])
    assert (r.status_code, r.json()) == (
        404,
        {"code": "not_found", "message": "project 'nope' does not exist"},
    )
    r = client.post("/v1/projects/toy/items", json={"things": []}, headers=h["svc"])
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    assert "body.items" in [e["field"] for e in r.json()["errors"]]
    bad = {"items": [{"external_id": "q", "payload": {"x": "one", "y": 2}}]}
    r = client.post("/v1/projects/toy/items", json=bad, headers=h["svc"])
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    assert [e["field"] for e in r.json()["errors"]] == ["[0].payload"]
    client.post("/v1/projects/toy/items", json={"items": ITEMS}, headers=h["svc"])
    lease = client.post("/v1/projects/toy/tasks/next", headers=h["ann1"]).json()["lease"]["id"]
    r = client.post(f"/v1/leases/{lease}/submit", json={"label": "zebra"}, headers=h["ann1"])
    assert r.status_code == 422 and r.json()["code"] == "unknown_label"
    r = client.post(f"/v1/leases/{lease}/submit", json={"label": "a"}, headers=h["ann2"])
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    clock.now += timedelta(days=2)
    r = client.post(f"/v1/leases/{lease}/submit", json={"label": "a"}, headers=h["ann1"])
    assert r.status_code == 409 and r.json()["code"] == "lease_expired"
    r = client.post("/v1/leases/99999/submit", json={"label": "a"}, headers=h["ann1"])
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.post(
        "/v1/projects/toy/feedback",
        json={"prediction_id": 424242, "kind": "thumbs_down", "idempotency_key": "k1"},
        headers=h["svc"],
    )
    assert r.status_code == 404 and r.json()["code"] == "not_found"

    def boom(self: Loop) -> None:
        raise RuntimeError("secret detail at /etc/passwd")

    monkeypatch.setattr(Loop, "status", boom)
    r = client.get("/v1/projects/toy", headers=h["root"])
    assert (r.status_code, r.json()) == (500, {"code": "internal", "message": "internal error"})
    assert "Traceback" not in r.text and "secret" not in r.text


def test_error_table_covers_every_error() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(lw_errors, inspect.isclass)
        if issubclass(c, lw_errors.LoopwrightError)
    ]
    assert set(classes) <= set(STATUS_BY_ERROR)
    expected = {
        "not_found": 404,
        "conflict": 409,
        "lease_expired": 409,
        "paused": 403,
        "capped": 429,
        "invalid": 422,
        "unknown_label": 422,
        "not_fitted": 409,
        "store_unavailable": 503,
    }
    for cls in classes:
        if cls.code in expected:
            assert status_for(cls("x")) == expected[cls.code], cls


def test_authentication(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        r = client.get("/v1/projects", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"


def test_tokens_are_stored_hashed() -> None:
    auth = TokenAuthenticator()
    auth.add_user("u")
    token = auth.issue_token("u")
    assert len(token) >= 40 and token not in repr(vars(auth))
    resolved = auth.resolve(token)
    assert resolved is not None and resolved.name == "u" and auth.resolve(token + "x") is None


def test_sql_tokens_are_hashed_and_revocable(store: SqlStore, ws: Workspace) -> None:
    auth = SqlAuthenticator(store)
    auth.add_user("u")
    auth.add_membership("u", "toy", "annotator", [1, 2])
    token = auth.issue_token("u")
    with store.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()] and token not in stored
    who = auth.resolve(token)
    assert who is not None and who.memberships["toy"].role is Role.ANNOTATOR
    assert who.memberships["toy"].tiers == (1, 2) and not who.admin
    with pytest.raises(lw_errors.Conflict):
        auth.add_membership("u", "toy", "viewer")
    with pytest.raises(lw_errors.NotFound):
        auth.issue_token("nobody")
    assert auth.revoke_token(token) and auth.resolve(token) is None


FEEDBACK = {"prediction_id": 424242, "kind": "thumbs_down", "idempotency_key": "k"}
# (user, method, path, body) -> status; 404 for strangers on a project, never 403
MATRIX: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("root", "GET", "/v1/projects/secret", None, 200),
    ("view", "GET", "/v1/projects/toy", None, 200),
    ("ann1", "GET", "/v1/projects/toy", None, 200),
    ("stranger", "GET", "/v1/projects/toy", None, 404),
    ("view", "GET", "/v1/projects/secret", None, 404),
    ("svc", "POST", "/v1/projects/toy/items", {"items": ITEMS}, 200),
    ("ann1", "POST", "/v1/projects/toy/items", {"items": ITEMS}, 403),
    ("view", "POST", "/v1/projects/toy/items", {"items": ITEMS}, 403),
    ("stranger", "POST", "/v1/projects/toy/items", {"items": ITEMS}, 404),
    ("svc", "POST", "/v1/projects/toy/feedback", FEEDBACK, 404),  # allowed; no such prediction
    ("ann1", "POST", "/v1/projects/toy/feedback", FEEDBACK, 403),
    ("view", "GET", "/v1/projects/toy/events", None, 200),
    ("ann1", "GET", "/v1/projects/toy/events", None, 403),
    ("stranger", "GET", "/v1/projects/toy/events", None, 404),
    ("ann1", "POST", "/v1/projects/toy/tasks/next", None, 200),
    ("ann1", "POST", "/v1/projects/toy/tasks/next", {"tiers": [2]}, 403),
    ("ann2t", "POST", "/v1/projects/toy/tasks/next", None, 204),  # tier 2 only: no tier-1 work
    ("exp", "POST", "/v1/projects/toy/tasks/next", {"tiers": [9]}, 422),  # no tier 9
    ("exp", "POST", "/v1/projects/toy/tasks/next", None, 200),
    ("svc", "POST", "/v1/projects/toy/tasks/next", None, 403),
    ("view", "POST", "/v1/projects/toy/tasks/next", None, 403),
    ("stranger", "POST", "/v1/projects/toy/tasks/next", None, 404),
]


def test_role_matrix(client: TestClient, h: dict[str, dict[str, str]]) -> None:
    got = []
    for user, method, path, body, _ in MATRIX:
        r = client.request(method, path, json=body, headers=h[user])
        got.append((user, method, path, r.status_code))
    assert got == [(u, m, p, s) for u, m, p, _, s in MATRIX]
    listed = {
        name: [p["name"] for p in client.get("/v1/projects", headers=h[name]).json()["projects"]]
        for name in ("root", "view", "stranger")
    }
    assert listed == {"root": ["toy", "secret"], "view": ["toy"], "stranger": []}
    # leases of a project: members without review rights 403, strangers 404, other annotators 409
    lease = client.post("/v1/projects/toy/tasks/next", headers=h["ann2"]).json()["lease"]["id"]
    statuses = {
        u: client.post(f"/v1/leases/{lease}/release", headers=h[u]).status_code
        for u in ("stranger", "view", "svc", "ann1")
    }
    assert statuses == {"stranger": 404, "view": 403, "svc": 403, "ann1": 409}


def test_open_mode_and_serve(store_url: str) -> None:
    with TestClient(create_app(store_url, open_access=True)) as c:
        assert c.get("/v1/projects").json() == {"projects": []}
        assert c.get("/v1/projects/toy").status_code == 404
    with TestClient(create_app(store_url)) as c:  # default: tokens from the same store
        assert c.get("/v1/projects").status_code == 401
    calls: list[tuple[Any, dict[str, Any]]] = []
    serve(store_url, port=8123, run=lambda app, **kw: calls.append((app, kw)))
    assert calls and calls[0][1] == {"host": "127.0.0.1", "port": 8123}
