"""The REST resources beyond review (projects, predict, labels, datasets, models, monitoring,
gold) through FastAPI's TestClient on SQLite and PostgreSQL, on a seeded toy project."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import test_loop
from loopwright import Workspace
from loopwright.config import ProjectConfig
from loopwright.service import Role, TokenAuthenticator, create_app
from loopwright.service.routes import datasets, gold, labels, models, monitoring, projects, review
from loopwright.store.sql import SqlStore
from loopwright.store.sql.jobs import JobWorker, SqlJobs
from people import bearer, members

CONFIG: dict[str, Any] = {
    **test_loop.CONFIG,
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "uncertain"}],  # one label per item
    "drift": {"window": 30},
}
ROLES = {"lead": Role.LEAD, "svc": Role.SERVICE, "ann1": Role.ANNOTATOR, "view": Role.VIEWER}
H = dict[str, dict[str, str]]
P = "/v1/projects/toy"


def label(ws: Workspace, n: int, start: int = 0) -> dict[str, str]:
    """Ingest ``n`` points from ``start`` and label them truthfully (ann1 and ann2 take turns)."""
    loop = ws.project("toy")
    points = test_loop.points(n, seed=start, start=start)
    loop.ingest([r for r, _ in points])
    truth = {r["external_id"]: lab for r, lab in points}
    test_loop.label_all(loop, truth, annotators=("ann1", "ann2"))
    return truth


def retrain(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """POST retrain (202, a job), run the job on a worker, and the outcome: promoted, the model
    version and its gate evidence, the dataset version."""
    r = client.post(f"{P}/retrain", headers=headers)
    assert r.status_code == 202, r.text
    JobWorker(client.app.state.workspace, client.app.state.jobs).run_once()
    job = client.get(f"/v1/jobs/{r.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded", job
    model = client.get(f"{P}/models/v{job['result']['model_version']}", headers=headers).json()
    dataset = client.get(f"{P}/datasets/{job['result']['dataset_version']}", headers=headers).json()
    return {"promoted": job["result"]["promoted"], "model": model, "gate": model["gate"], "dataset": dataset}


@pytest.fixture
def clock() -> test_loop.ManualClock:
    return test_loop.ManualClock()


@pytest.fixture
def ws(store: SqlStore, clock: test_loop.ManualClock) -> Workspace:
    workspace = Workspace(store, clock)
    workspace.create_project(CONFIG)
    label(workspace, 30)
    return workspace


@pytest.fixture
def auth() -> tuple[TokenAuthenticator, H]:
    tokens, issued = members("toy", {**ROLES, "stranger": None}, admins=("root",))
    return tokens, bearer(issued)


@pytest.fixture
def client(ws: Workspace, auth: tuple[TokenAuthenticator, H]) -> TestClient:
    app = create_app(ws, authenticator=auth[0], jobs=SqlJobs(ws.store.engine))  # jobs run by retrain()
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def h(auth: tuple[TokenAuthenticator, H]) -> H:
    return auth[1]


def test_create_project_and_config(client: TestClient, h: H) -> None:
    other = {**CONFIG, "name": "other"}
    r = client.post("/v1/projects", json=other, headers=h["root"])
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["config"]) == (
        "other",
        ProjectConfig.from_dict(other).model_dump(mode="json"),
    )
    assert client.get("/v1/projects/other/config", headers=h["root"]).json() == r.json()["config"]
    r = client.post("/v1/projects", json={**CONFIG, "name": "third"}, headers=h["lead"])
    assert (r.status_code, r.json()) == (
        403,
        {"code": "forbidden", "message": "only admins may create projects"},
    )
    r = client.post("/v1/projects", json=other, headers=h["root"])
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    r = client.post("/v1/projects", json={"name": "bad", "labels": ["a"]}, headers=h["root"])
    assert (r.status_code, r.json()["code"]) == (422, "invalid")
    assert r.json()["errors"] == [
        {"field": "labels", "message": "List should have at least 2 items after validation, not 1"}
    ]
    assert [p["name"] for p in client.get("/v1/projects", headers=h["root"]).json()["projects"]] == [
        "toy",
        "other",
    ]
    assert client.get("/v1/projects/other/config", headers=h["view"]).status_code == 404


def test_predict_needs_a_champion(client: TestClient, h: H) -> None:
    body = {"payloads": [{"x": 0.0, "y": 0.0}, {"x": 12.0, "y": 0.0}, {"x": 0.0, "y": 12.0}]}
    r = client.post(f"{P}/predict", json=body, headers=h["svc"])
    assert (r.status_code, r.json()) == (
        409,
        {"code": "not_fitted", "message": "project 'toy' has no champion model yet"},
    )
    assert retrain(client, h["lead"])["promoted"] is True
    r = client.post(f"{P}/predict", json=body, headers=h["svc"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["labels"] == ["a", "b", "c"]
    assert [p["label"] for p in out["predictions"]] == ["a", "b", "c"]
    for p in out["predictions"]:
        assert p["confidence"] == max(p["probabilities"].values()) > 0.9
        assert sorted(p["probabilities"]) == ["a", "b", "c"]
        assert sum(p["probabilities"].values()) == pytest.approx(1.0)
    r = client.post(f"{P}/predict", json={"payloads": [{"x": 1.0}]}, headers=h["svc"])
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "[0]", "message": "payload lacks feature field(s) ['y']"}]
    assert client.post(f"{P}/predict", json={"payloads": []}, headers=h["svc"]).status_code == 422
    assert client.post(f"{P}/predict", json=body, headers=h["view"]).status_code == 403
    assert client.get(f"{P}/config", headers=h["view"]).json()["labels"] == ["a", "b", "c"]


def test_annotations_and_resolutions_are_paged(client: TestClient, h: H) -> None:
    pages, after = [], 0
    while True:
        r = client.get(f"{P}/annotations?after={after}&limit=12", headers=h["view"]).json()
        pages.append(len(r["annotations"]))
        if not r["annotations"]:
            assert r["next_after"] == after
            break
        assert r["next_after"] == r["annotations"][-1]["id"] > after
        after = r["next_after"]
    assert pages == [12, 12, 6, 0]
    everything = client.get(f"{P}/annotations?limit=1000", headers=h["view"]).json()["annotations"]
    assert [a["id"] for a in everything] == list(range(1, 31))
    assert sorted(a["annotator"] for a in everything) == ["ann1"] * 15 + ["ann2"] * 15
    resolutions = client.get(f"{P}/resolutions?limit=1000", headers=h["lead"]).json()["resolutions"]
    assert len(resolutions) == 30 and {r["method"] for r in resolutions} == {"majority"}
    assert {r["label"]: sum(x["label"] == r["label"] for x in resolutions) for r in resolutions} == {
        "a": 10,
        "b": 10,
        "c": 10,
    }
    page = client.get(f"{P}/resolutions?after=28", headers=h["lead"]).json()
    assert [r["id"] for r in page["resolutions"]] == [29, 30] and page["next_after"] == 30
    assert client.get(f"{P}/annotations", headers=h["ann1"]).status_code == 403  # monitor: not annotators
    assert client.get(f"{P}/annotations?limit=0", headers=h["view"]).status_code == 422
    assert client.get(f"{P}/resolutions", headers=h["stranger"]).status_code == 404


def test_datasets_snapshot_diff_export(
    client: TestClient, h: H, ws: Workspace, clock: test_loop.ManualClock
) -> None:
    assert client.get(f"{P}/datasets", headers=h["view"]).json() == {"datasets": []}
    assert client.post(f"{P}/datasets", headers=h["view"]).status_code == 403
    r = client.post(f"{P}/datasets", headers=h["lead"])
    assert r.status_code == 200, r.text
    v1 = r.json()
    assert (v1["n_items"], v1["parent_id"], v1["label_counts"]) == (30, None, {"a": 10, "b": 10, "c": 10})
    clock.advance(60)  # "latest" is the newest by creation time
    label(ws, 6, start=30)
    v2 = client.post(f"{P}/datasets", headers=h["lead"]).json()
    assert (v2["n_items"], v2["parent_id"]) == (36, v1["id"])
    listed = client.get(f"{P}/datasets", headers=h["view"]).json()["datasets"]
    assert [d["id"] for d in listed] == [v1["id"], v2["id"]] and "entries" not in listed[0]
    detail = client.get(f"{P}/datasets/{v1['id'][:8]}", headers=h["view"]).json()
    assert detail["id"] == v1["id"] and len(detail["entries"]) == 30
    assert {e["split"] for e in detail["entries"]} == {"train", "eval"}
    assert client.get(f"{P}/datasets/latest", headers=h["view"]).json()["id"] == v2["id"]
    diff = client.get(f"{P}/datasets/{v1['id']}/diff/latest", headers=h["view"]).json()
    assert diff["counts"] == {"added": 6, "relabelled": 0, "removed": 0, "unchanged": 30}
    assert sorted(r["external_id"] for r in diff["added"]) == [f"p{i}" for i in range(30, 36)]
    assert all(r["old"] is None and r["new"] in "abc" for r in diff["added"])
    assert (diff["a"], diff["b"], diff["relabelled"], diff["removed"]) == (v1["id"], v2["id"], [], [])
    r = client.get(f"{P}/datasets/latest/export?format=jsonl", headers=h["view"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["content-disposition"] == f'attachment; filename="{v2["id"][:12]}.jsonl"'
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert len(rows) == 36 and sorted(x["external_id"] for x in rows) == sorted(f"p{i}" for i in range(36))
    again = client.get(f"{P}/datasets/{v2['id']}/export", headers=h["view"])
    assert again.content == r.content  # deterministic: the same bytes
    r = client.get(f"{P}/datasets/{v1['id']}/export?format=csv", headers=h["view"])
    table = list(csv.reader(io.StringIO(r.text)))
    assert r.headers["content-type"].startswith("text/csv")
    assert table[0] == [
        "item_id",
        "external_id",
        "item_hash",
        "label",
        "source",
        "split",
        "resolution_id",
        "payload",
    ]
    assert len(table) == 31
    r = client.get(f"{P}/datasets/latest/export?format=parquet", headers=h["view"])
    assert r.status_code == 200 and r.content[:4] == b"PAR1" and r.content[-4:] == b"PAR1"
    assert client.get(f"{P}/datasets/latest/export?format=dvc", headers=h["view"]).status_code == 422
    r = client.get(f"{P}/datasets/ffffffff", headers=h["view"])
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert client.get(f"{P}/datasets/abc", headers=h["view"]).status_code == 422  # prefix too short


def test_models_retrain_promote_rollback(client: TestClient, h: H) -> None:
    assert client.get(f"{P}/models", headers=h["view"]).json() == {"models": []}
    r = client.post(f"{P}/models/rollback", headers=h["lead"])
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    assert client.post(f"{P}/retrain", headers=h["svc"]).status_code == 403
    first = retrain(client, h["lead"])
    assert (first["promoted"], first["gate"]["test"], first["model"]["version"]) == (True, "baseline", 1)
    assert first["model"]["aliases"] == ["champion"] and first["dataset"]["n_items"] == 30
    assert first["model"]["metrics"] == {
        "train_size": 22,
        "eval_size": 8,
        "eval_accuracy": 1.0,
        "resolutions_seen": 30,
    }
    second = retrain(client, h["lead"])  # same data: not worse → promoted
    assert (second["promoted"], second["gate"]["test"]) == (True, "not_significantly_worse")
    models = client.get(f"{P}/models", headers=h["view"]).json()["models"]
    assert [(m["version"], m["status"], m["aliases"]) for m in models] == [
        (1, "retired", ["previous"]),
        (2, "champion", ["champion"]),
    ]
    champion = client.get(f"{P}/models/champion", headers=h["view"]).json()
    assert champion["version"] == 2 and champion["gate"]["accuracy_interval_95"] == [0.6756, 1.0]
    assert client.get(f"{P}/models/v1", headers=h["view"]).json()["gate"]["reason"] == (
        "accuracy 1.000 beats the majority-class baseline 0.625"
    )
    back = client.post(f"{P}/models/rollback", headers=h["lead"]).json()
    assert (back["champion"]["version"], back["champion"]["status"]) == (1, "champion")
    assert (back["replaced"]["version"], back["replaced"]["status"]) == (2, "retired")
    again = client.post(f"{P}/models/2/promote", headers=h["lead"]).json()
    assert (again["version"], again["status"], again["aliases"]) == (2, "champion", ["champion"])
    assert client.post(f"{P}/models/2/promote", headers=h["view"]).status_code == 403
    r = client.post(f"{P}/models/9/promote", headers=h["lead"])
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert client.get(f"{P}/models/v9", headers=h["view"]).status_code == 404
    assert client.get(f"{P}/models/newest", headers=h["view"]).status_code == 422
    lineage = client.get(f"{P}/lineage/models/1", headers=h["view"]).json()
    assert (lineage["version"], lineage["train_items"], lineage["eval_items"]) == (1, 22, 8)
    assert lineage["labels_by_source"] == {"review": 22} and sum(lineage["label_counts"].values()) == 22
    assert lineage["annotations_by_tier"] == {"1": 22}
    item = client.get(f"{P}/lineage/items/p0", headers=h["view"]).json()
    assert item["item"]["external_id"] == "p0" and item["annotations"][0]["label"] == "a"
    assert [r["label"] for r in item["resolutions"]] == ["a"] and len(item["dataset_versions"]) == 1
    assert client.get(f"{P}/lineage/items/nope", headers=h["view"]).status_code == 404
    assert client.get(f"{P}/lineage/models/1", headers=h["ann1"]).status_code == 403


def test_monitoring(client: TestClient, h: H, ws: Workspace) -> None:
    assert client.get(f"{P}/drift", headers=h["view"]).json() == {"drift": None, "last_check": None}
    r = client.post(f"{P}/drift/check", headers=h["lead"])
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    ws.project("toy").ingest([r for r, _ in test_loop.points(30, seed=30, start=30)])
    check = client.post(f"{P}/drift/check", headers=h["lead"]).json()
    assert check["window"] == [31, 60] and check["data"]["drifted"] == [] and check["drift"] is False
    last = client.get(f"{P}/drift", headers=h["view"]).json()
    assert last["drift"] is False and last["last_check"]["action"] == "drift.checked"
    assert last["last_check"]["data"]["window_start_item_id"] == 31
    assert client.post(f"{P}/drift/check", headers=h["view"]).status_code == 403
    assert client.get(f"{P}/thresholds", headers=h["view"]).json() == {
        "routing": "fixed threshold 0.900",
        "accept_threshold": 0.9,
        "audit_rate": 0.0,
        "certify": None,
        "certification": None,
        "bands": [{"min_confidence": 0.5, "tier": 1}, {"min_confidence": 0.0, "tier": 2}],
        "fallback_tier": 1,
    }
    r = client.post(f"{P}/certify", headers=h["lead"])
    assert (r.status_code, r.json()) == (200, None)  # the project does not certify
    stats = client.get(f"{P}/annotators/ann1", headers=h["lead"]).json()
    assert stats == {
        "annotator": "ann1",
        "gold_answers": 0,
        "gold_accuracy": None,
        "by_tier": [],
        "paused_tiers": [],
        "annotations_last_hour": 15,
        "annotations_this_session": None,
    }


def test_gold_then_scored(client: TestClient, h: H) -> None:
    gold = {"items": [{"external_id": "g1", "payload": {"x": 0.0, "y": 0.0}, "label": "a"}], "tiers": [1]}
    assert client.post(f"{P}/gold", json=gold, headers=h["ann1"]).status_code == 403
    r = client.post(f"{P}/gold", json=gold, headers=h["lead"])
    assert r.status_code == 201, r.text
    assert [(t["tier"], t["status"], t["gold_label"]) for t in r.json()["tasks"]] == [(1, "gold", "a")]
    assert client.post(f"{P}/gold", json=gold, headers=h["lead"]).status_code == 409  # items must be new
    bad = {"items": [{"external_id": "g2", "payload": {"x": 0.0, "y": 0.0}, "label": "zebra"}]}
    r = client.post(f"{P}/gold", json=bad, headers=h["lead"])
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["[0].label"]
    # a project whose annotators answer one gold task first (onboarding): scored, never resolved
    g = {**CONFIG, "name": "g", "gold": {"onboarding": 1}}
    assert client.post("/v1/projects", json=g, headers=h["root"]).status_code == 201
    assert client.post("/v1/projects/g/gold", json=gold, headers=h["root"]).status_code == 201
    assert (
        client.post(
            "/v1/projects/g/items",
            json={"items": [{"external_id": "q", "payload": {"x": 1, "y": 1}}]},
            headers=h["root"],
        ).status_code
        == 200
    )
    task = client.post("/v1/projects/g/tasks/next", headers=h["root"]).json()
    assert (task["task"]["status"], task["item"]["external_id"]) == ("gold", "g1")
    assert task["why"].endswith("onboarding 1/1")
    lease = task["lease"]["id"]
    done = client.post(f"/v1/leases/{lease}/submit", json={"label": "b"}, headers=h["root"]).json()
    assert done["annotation"] is None and (done["gold"]["label"], done["gold"]["correct"]) == ("b", False)
    stats = client.get("/v1/projects/g/annotators/root", headers=h["root"]).json()
    assert (stats["gold_answers"], stats["gold_accuracy"], stats["paused_tiers"]) == (1, 0.0, [])
    assert stats["by_tier"] == [
        {
            "tier": 1,
            "answers": 1,
            "correct": 0,
            "evidence": pytest.approx(math.log(0.3 / 0.1)),
            "accuracy": 0.0,
        }
    ]


def test_every_route_documents_its_response(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    mine = [
        r for m in (projects, review, labels, gold, datasets, models, monitoring) for r in m.router.routes
    ]
    assert len(mine) == 39  # 33 + register, upload predictions, gate, eval split (external models), backlog,
    # gold from the audits
    for route in mine:
        assert isinstance(route, APIRoute)
        for method in route.methods or ():
            op = spec["paths"][route.path][method.lower()]
            ok = op["responses"][str(route.status_code or 200)]
            assert ok["content"], (route.path, method)
            if not route.path.endswith("/export"):
                assert route.response_model is not None and ok["content"]["application/json"]["schema"]
    schema = spec["paths"]["/v1/projects/{name}/models/{ref}"]["get"]["responses"]["200"]["content"]
    assert schema["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelVersion"}
