"""Background jobs on both databases: the jobs table adapter (enqueue, claim under a lock,
lease expiry, retry, cancel), what each job kind runs, and the REST face (202 + Location,
GET /v1/jobs/{id}, 404/409 on bad input)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update

import test_loop
from loopwright import Workspace
from loopwright.errors import Conflict, Invalid, NotFound
from loopwright.loop import jobs as use_case
from loopwright.service import Role, create_app
from loopwright.store.sql import SqlStore
from loopwright.store.sql.jobs import JobWorker, SqlJobs
from loopwright.store.sql.tables import jobs as jobs_table
from people import bearer, members

H = dict[str, dict[str, str]]


def labelled(store: SqlStore, n: int = 30) -> Workspace:
    ws = Workspace(store)
    loop = ws.create_project(test_loop.CONFIG)
    points = test_loop.points(n)
    loop.ingest([r for r, _ in points])
    test_loop.label_all(loop, {r["external_id"]: lab for r, lab in points})
    return ws


def expire(store: SqlStore) -> None:
    """Every running job's lease ran out a second ago (its worker stopped heartbeating)."""
    with store.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(jobs_table).where(jobs_table.c.status == "running").values(lease_until=past))


def test_enqueue_dedupes_and_refuses_unknown_kinds(store: SqlStore) -> None:
    jobs = SqlJobs(store.engine)
    first = jobs.enqueue("toy", "retrain", actor="lead")
    assert (first.status, first.attempts, first.progress, first.logs, first.actor) == (
        "queued",
        0,
        0.0,
        [],
        "lead",
    )
    assert jobs.enqueue("toy", "retrain").id == first.id  # a queued twin is returned
    assert jobs.enqueue("toy", "snapshot").id != first.id
    with pytest.raises(Invalid, match="unknown job kind 'train'"):
        jobs.enqueue("toy", "train")
    with pytest.raises(Invalid, match="needs params format"):
        jobs.enqueue("toy", "export", {"format": "csv"})
    assert [j.kind for j in jobs.list("toy")] == ["snapshot", "retrain"]  # newest first
    assert jobs.active("toy", "retrain") == first and jobs.active("toy", "certify") is None


def test_one_retrain_per_project_at_once(store: SqlStore) -> None:
    """A running retrain holds the project's training lock: neither a second retrain nor a
    snapshot of that project is claimed until it ends; other projects and kinds are."""
    jobs = SqlJobs(store.engine)
    a = jobs.enqueue("toy", "retrain")
    claimed = jobs.claim("w1")
    assert claimed is not None and (claimed.id, claimed.status, claimed.attempts, claimed.worker) == (
        a.id, "running", 1, "w1",
    )  # fmt: skip
    b = jobs.enqueue("toy", "retrain")  # a new one: the first is running, not queued
    s = jobs.enqueue("toy", "snapshot")
    other = jobs.enqueue("other", "retrain")
    drift = jobs.enqueue("toy", "drift_check")
    assert [jobs.claim("w2").id, jobs.claim("w3").id, jobs.claim("w4")] == [other.id, drift.id, None]
    jobs.finish(a.id, "w1", {"ok": True})
    assert jobs.claim("w2").id == b.id and jobs.claim("w3") is None  # s waits for b
    jobs.finish(b.id, "w2", {})
    assert jobs.claim("w3").id == s.id


def test_a_lost_worker_s_job_is_taken_over_then_failed(store: SqlStore) -> None:
    """No heartbeat within the lease: the next claim queues the job again and runs it (attempt
    2); out of attempts it fails with the reason. The lost worker can no longer finish it."""
    jobs = SqlJobs(store.engine, max_attempts=2, lease_s=0.2)
    job = jobs.enqueue("toy", "retrain")
    assert jobs.claim("dead").id == job.id
    expire(store)
    again = jobs.claim("alive")
    assert (again.id, again.attempts, again.worker) == (job.id, 2, "alive")
    assert again.logs[-2].endswith("worker dead lost (lease expired) during attempt 1; queued again")
    jobs.finish(job.id, "dead", {"stale": True})  # the lost worker's late answer is ignored
    assert jobs.get(job.id).status == "running"
    expire(store)
    assert jobs.claim("third") is None
    failed = jobs.get(job.id)
    assert failed.status == "failed" and failed.error == (
        "worker alive lost (lease expired) during attempt 2; no attempts left"
    )


def test_cancel(store: SqlStore) -> None:
    jobs = SqlJobs(store.engine)
    queued = jobs.enqueue("toy", "snapshot")
    assert jobs.cancel(queued.id).status == "cancelled" and jobs.claim("w") is None
    with pytest.raises(Conflict, match=f"job {queued.id} is cancelled already"):
        jobs.cancel(queued.id)
    with pytest.raises(NotFound, match="job 999 does not exist"):
        jobs.cancel(999)
    running = jobs.enqueue("toy", "retrain")
    jobs.claim("w")
    asked = jobs.cancel(running.id)
    assert (asked.status, asked.cancel_requested) == ("running", True)


def test_worker_runs_retrain_to_a_promoted_champion(store: SqlStore) -> None:
    ws = labelled(store)
    jobs = SqlJobs(store.engine)
    job = jobs.enqueue("toy", "retrain", actor="lead")
    done = JobWorker(ws, jobs).run_once()
    assert done is not None and (done.status, done.progress, done.attempts, done.error) == (
        "succeeded",
        1.0,
        1,
        None,
    )
    model = ws.project("toy").model("champion")
    assert done.result == {
        "dataset_version": model.dataset_version_id,
        "model_version": 1,
        "promoted": True,
        "gate": "accuracy 1.000 beats the majority-class baseline 0.625",
    }
    assert [line.split(" ", 1)[1] for line in done.logs] == [
        f"claimed by {JobWorker(ws, jobs).name}/0",
        "retrain of toy started (attempt 1)",
        "snapshot and training",
        "retrain done",
        "succeeded",
    ]
    assert jobs.get(job.id) == done


def test_a_crash_is_retried_then_failed_and_a_domain_error_fails_at_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = labelled(store)
    jobs = SqlJobs(store.engine, max_attempts=2)
    calls: list[int] = []

    def crash(loop: Any, job: Any, report: Any) -> dict[str, Any]:
        calls.append(job.attempts)
        raise RuntimeError("out of memory")

    monkeypatch.setitem(use_case._RUNNERS, "snapshot", crash)
    job = jobs.enqueue("toy", "snapshot")
    worker = JobWorker(ws, jobs)
    assert worker.run_once().status == "queued"
    last = worker.run_once()
    assert (last.status, last.attempts, last.error, calls) == (
        "failed",
        2,
        "RuntimeError: out of memory",
        [1, 2],
    )
    assert worker.run_once() is None and jobs.get(job.id).status == "failed"
    # not enough labels is the project's state, not a crash: no second attempt
    empty = Workspace(store).create_project({**test_loop.CONFIG, "name": "empty"})
    failed = jobs.enqueue(empty.project.name, "retrain")
    out = worker.run_once()
    assert (out.id, out.status, out.attempts) == (failed.id, "failed", 1)
    assert out.error.startswith("dataset ") and "need ≥ 10 in ≥ 2 classes" in out.error


def test_a_job_whose_project_was_deleted_fails_with_the_reason(store: SqlStore) -> None:
    ws = Workspace(store)
    ws.create_project({**test_loop.CONFIG, "name": "gone"})
    jobs = SqlJobs(store.engine)
    job = jobs.enqueue("gone", "snapshot")
    with store.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM events WHERE project_id IN (SELECT id FROM projects WHERE name = 'gone')")
        )
        conn.execute(text("DELETE FROM projects WHERE name = 'gone'"))
    out = JobWorker(ws, jobs).run_once()
    assert (out.id, out.status, out.attempts) == (job.id, "failed", 1)
    assert out.error == "project 'gone' no longer exists (deleted or erased)"


def test_cancel_while_running_stops_at_the_next_report(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = labelled(store)
    jobs = SqlJobs(store.engine)

    def slow(loop: Any, job: Any, report: Any) -> dict[str, Any]:
        jobs.cancel(job.id)  # as if from the API while it runs
        report.progress(0.5, "halfway")
        raise AssertionError("not reached")

    monkeypatch.setitem(use_case._RUNNERS, "certify", slow)
    jobs.enqueue("toy", "certify")
    out = JobWorker(ws, jobs).run_once()
    assert (out.status, out.error, out.result) == ("cancelled", None, None)
    with pytest.raises(Conflict):
        jobs.cancel(out.id)


# -- REST ------------------------------------------------------------------------------------


@pytest.fixture
def rest(store: SqlStore) -> tuple[TestClient, H, Workspace]:
    ws = labelled(store)
    roles = {"lead": Role.LEAD, "view": Role.VIEWER, "svc": Role.SERVICE, "stranger": None}
    tokens, issued = members("toy", roles)
    h: H = bearer(issued)
    app = create_app(ws, authenticator=tokens, jobs=SqlJobs(store.engine), job_threads=0)
    return TestClient(app, raise_server_exceptions=False), h, ws


def test_retrain_answers_202_with_the_job_and_runs_on_a_worker(rest: tuple[TestClient, H, Workspace]) -> None:
    client, h, ws = rest
    assert client.post("/v1/projects/toy/retrain", headers=h["svc"]).status_code == 403
    r = client.post("/v1/projects/toy/retrain", headers=h["lead"])
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["project"], job["actor"]) == ("retrain", "queued", "toy", "lead")
    assert ws.project("toy").models() == []  # nothing trained inside the request
    assert client.post("/v1/projects/toy/retrain", headers=h["lead"]).json()["id"] == job["id"]
    JobWorker(ws, client.app.state.jobs).run_once()
    done = client.get(f"/v1/jobs/{job['id']}", headers=h["view"]).json()
    assert (done["status"], done["result"]["promoted"], done["result"]["model_version"]) == (
        "succeeded",
        True,
        1,
    )
    listed = client.get("/v1/projects/toy/jobs?status=succeeded", headers=h["view"]).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=h["lead"])
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    assert r.json()["message"] == f"job {job['id']} is succeeded already and cannot be cancelled"


def test_jobs_bad_input(rest: tuple[TestClient, H, Workspace]) -> None:
    client, h, _ = rest
    r = client.get("/v1/jobs/12345", headers=h["lead"])
    assert (r.status_code, r.json()) == (404, {"code": "not_found", "message": "job 12345 does not exist"})
    started = client.post("/v1/projects/toy/jobs", json={"kind": "snapshot"}, headers=h["lead"])
    assert started.status_code == 202
    job_id = started.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=h["stranger"]).status_code == 404  # not a member
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=h["view"]).status_code == 403
    assert client.post("/v1/projects/toy/jobs", json={"kind": "export"}, headers=h["lead"]).status_code == 422
    assert client.post("/v1/projects/toy/jobs", json={"kind": "x"}, headers=h["lead"]).status_code == 422
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=h["lead"]).json()
    assert cancelled["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=h["lead"]).status_code == 409


# -- command line ----------------------------------------------------------------------------


def test_cli_jobs_and_automation(
    store: SqlStore, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import sys

    from loopwright.cli.app import main

    Workspace(store).create_project(test_loop.CONFIG)
    jobs = SqlJobs(store.engine)
    job = jobs.enqueue("toy", "snapshot", actor="lead")

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["loopwright", *args, "--db", store_url])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("jobs", "list", "--json")
    assert code == 0 and [(j["id"], j["kind"], j["status"]) for j in json.loads(out)] == [
        (job.id, "snapshot", "queued")
    ]
    code, out, _ = run("jobs", "cancel", str(job.id))
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, _, err = run("jobs", "cancel", str(job.id))
    assert (code, " ".join(err.split())) == (
        2,
        f"error (conflict): job {job.id} is cancelled already and cannot be cancelled",
    )
    code, _, err = run("jobs", "show", "999")
    assert (code, " ".join(err.split())) == (2, "error (not_found): job 999 does not exist")
    code, out, _ = run("automation", "pause", "--project", "toy")
    assert code == 0 and json.loads(out) == {"project": "toy", "paused": True}
    assert [e.action for e in Workspace(store).project("toy").events(limit=100)][-1] == "automation.paused"


# -- pool scoring as a job ---------------------------------------------------------------------


def _pool(tmp_path: Path, n: int = 2_000, group: int = 250) -> Path:
    """A seeded unlabelled pool over the toy project's features, in row groups of ``group``."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(3)
    X = rng.uniform(-4.0, 16.0, size=(n, 2)).astype(np.float32)
    table = pa.table({"external_id": [f"q{i}" for i in range(n)], "x": X[:, 0], "y": X[:, 1]})
    tmp_path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, tmp_path / "pool.parquet", row_group_size=group)
    return tmp_path / "pool.parquet"


def _champion(ws: Workspace) -> Any:
    """Train the toy project's champion; the estimator its stored artifact holds."""
    from loopwright.learning.artifact import load_model

    loop = ws.project("toy")
    loop.retrain("lead")
    with ws.store.unit_of_work() as uow:
        return load_model(uow.models.artifact(uow.models.champion(loop.project.id).id))


def _expected(path: Path, model: Any, k: int, strategy: str = "margin") -> list[dict[str, Any]]:
    """The plain answer: the whole pool in one array, one predict_proba, the shared top_k."""
    import pyarrow.parquet as pq

    from loopwright.active.topk import top_k
    from loopwright.integrations.dask_select import SCORES

    table = pq.read_table(path)
    X = np.column_stack([table.column(c).to_numpy() for c in ("x", "y")]).astype(np.float32)
    scores = SCORES[strategy](model.predict_proba(X))
    return [
        {"rank": i + 1, "row": int(r), "id": f"q{r}", "score": float(scores[r])}
        for i, r in enumerate(top_k(scores, k))
    ]


def test_select_job_scores_the_pool_with_the_champion(store: SqlStore, tmp_path: Path) -> None:
    ws = labelled(store)
    model = _champion(ws)
    path = _pool(tmp_path)
    jobs = SqlJobs(store.engine)
    params = {
        "pool": str(path),
        "budget": 7,
        "single": True,
        "rows_per_part": 500,
        "id_column": "external_id",
    }
    job = jobs.enqueue("toy", "select", params, actor="lead")
    assert jobs.enqueue("toy", "select", params).id != job.id  # a selection of its own, not a twin
    done = JobWorker(ws, jobs).run_once()
    assert done is not None and (done.id, done.status, done.attempts, done.error) == (
        job.id, "succeeded", 1, None,
    )  # fmt: skip
    result = done.result
    assert result["rows"] == _expected(path, model, 7)
    assert {k: result[k] for k in ("model_version", "strategy", "pool", "pool_rows", "parts", "where")} == {
        "model_version": 1,
        "strategy": "margin",
        "pool": str(path),
        "pool_rows": 2_000,
        "parts": 4,
        "where": "single process",
    }
    assert [line.split(" ", 1)[1] for line in done.logs][1:] == [
        "select of toy started (attempt 1)",
        f"scoring {path} (margin)",
        "1/4 partitions scored",
        "2/4 partitions scored",
        "3/4 partitions scored",
        "4/4 partitions scored",
        "select done",
        "succeeded",
    ]


def test_a_kcenter_job_needs_no_model_and_matches_the_exact_greedy(store: SqlStore, tmp_path: Path) -> None:
    from loopwright.integrations import dask_select as ds

    Workspace(store).create_project(test_loop.CONFIG)  # no champion
    path = _pool(tmp_path, n=600, group=200)
    jobs = SqlJobs(store.engine)
    jobs.enqueue("toy", "select", {"pool": str(path), "budget": 5, "strategy": "kcenter", "single": True})
    done = JobWorker(Workspace(store), jobs).run_once()
    assert done.status == "succeeded", done.error
    exact = ds.select_single(ds.open_pool(str(path), ["x", "y"]), 5, "kcenter")
    assert [r["row"] for r in done.result["rows"]] == exact.rows.tolist()
    assert done.result["rows"][0]["score"] is None  # the first pick: no pick before it (JSON has no inf)
    assert done.result["model_version"] is None


def test_select_job_bad_input(store: SqlStore, tmp_path: Path) -> None:
    """Bad parameters queue nothing; a missing champion or pool fails the job at once with the reason."""
    Workspace(store).create_project(test_loop.CONFIG)
    jobs = SqlJobs(store.engine)
    bad = [
        ({"budget": 5}, "pool: required"),
        ({"pool": "p.parquet", "budget": 0}, "budget must be 1..100000, got 0"),
        ({"pool": "p.parquet", "budget": True}, "budget: must be int"),
        ({"pool": "p.parquet", "budget": 5, "strategy": "random"}, "unknown strategy 'random'"),
        ({"pool": "p.parquet", "budget": 5, "model": "x"}, "model: unknown parameter"),
        ({"pool": "p.parquet", "budget": 5, "features": []}, "features must be a non-empty list"),
        ({"pool": "p.parquet", "budget": 5, "workers": 0}, "workers must be at least 1, got 0"),
    ]
    for params, message in bad:
        with pytest.raises(Invalid) as caught:
            jobs.enqueue("toy", "select", params)
        shown = caught.value.message + " " + " ".join(f"{f}: {m}" for f, m in caught.value.errors)
        assert message in shown, (params, shown)
    assert jobs.list("toy") == []
    worker = JobWorker(Workspace(store), jobs)
    jobs.enqueue("toy", "select", {"pool": str(_pool(tmp_path)), "budget": 3, "single": True})
    out = worker.run_once()
    assert (out.status, out.attempts, out.error) == (
        "failed", 1, "project 'toy' has no champion model yet to score the pool",
    )  # fmt: skip
    missing = tmp_path / "nope.parquet"
    jobs.enqueue("toy", "select", {"pool": str(missing), "budget": 3, "strategy": "kcenter", "single": True})
    out = worker.run_once()
    assert (out.status, out.attempts, out.error) == ("failed", 1, f"pool {str(missing)!r} does not exist")


def test_select_route_queues_a_job_for_pools_under_the_roots(store: SqlStore, tmp_path: Path) -> None:
    ws = labelled(store)
    model = _champion(ws)
    path = _pool(tmp_path / "pools")
    (tmp_path / "secret.parquet").write_bytes(path.read_bytes())
    tokens, issued = members("toy", {"lead": Role.LEAD, "view": Role.VIEWER})
    h: H = bearer(issued)
    jobs = SqlJobs(store.engine)

    def app(roots: tuple[str, ...]) -> TestClient:
        made = create_app(ws, authenticator=tokens, jobs=jobs, job_threads=0, pool_roots=roots)
        return TestClient(made, raise_server_exceptions=False)

    body = {"pool": str(path), "budget": 4, "single": True, "id_column": "external_id"}
    r = app(()).post("/v1/projects/toy/select", json=body, headers=h["lead"])
    assert (r.status_code, r.json()["message"]) == (
        422, "this server reads no pools: its operator sets LOOPWRIGHT_POOL_ROOTS to allow some",
    )  # fmt: skip
    client = app((str(tmp_path / "pools"), "s3://bucket/pools"))
    for pool in (str(tmp_path / "secret.parquet"), str(tmp_path / "pools" / ".." / "secret.parquet"),
                 "s3://bucket/pools/../private/x.parquet", "s3://bucket/poolsx/a.parquet"):  # fmt: skip
        r = client.post("/v1/projects/toy/select", json={**body, "pool": pool}, headers=h["lead"])
        assert r.status_code == 422 and "is not under the server's pool roots" in r.json()["message"], pool
    assert client.post("/v1/projects/toy/select", json=body, headers=h["view"]).status_code == 403
    for wrong in ({"budget": 0}, {"strategy": "random"}, {"scheduler": "tcp://evil:8786"}):
        assert (
            client.post("/v1/projects/toy/select", json={**body, **wrong}, headers=h["lead"]).status_code
            == 422
        )
    assert jobs.list("toy") == []
    r = client.post("/v1/projects/toy/select", json=body, headers=h["lead"])
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["params"]["pool"], job["params"]["budget"]) == (
        "select", "queued", str(path), 4,
    )  # fmt: skip
    JobWorker(ws, jobs).run_once()
    done = client.get(f"/v1/jobs/{job['id']}", headers=h["view"]).json()
    assert done["status"] == "succeeded" and done["result"]["rows"] == _expected(path, model, 4)


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A LocalCluster of two worker threads in this process, reached over TCP like a real one."""
    pytest.importorskip("dask.distributed")
    from loopwright.integrations import dask_select as ds

    client = ds.connect_cluster(None, workers=2, processes=False)
    yield client.scheduler.address
    cluster = client.cluster
    client.close()
    cluster.close()


@pytest.mark.slow
def test_cli_select_job_runs_on_a_worker_against_a_scheduler(
    store: SqlStore,
    store_url: str,
    tmp_path: Path,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """`loopwright select --job` queues; `loopwright worker` (SQLite: the jobs table; PostgreSQL:
    procrastinate) scores the pool on a Dask scheduler: exactly the single-process answer."""
    import json
    import sys
    import time

    import test_automation
    from loopwright.cli.app import main
    from loopwright.store.sql.jobs import jobs_for

    ws = labelled(store)
    model = _champion(ws)
    path = _pool(tmp_path)
    args = ["select", "--pool", str(path), "--budget", "6", "--job", "--scheduler", dask_scheduler]
    args += ["--rows-per-part", "500"]
    monkeypatch.setattr(sys, "argv", ["loopwright", *args, "--id-column", "external_id", "--db", store_url])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    job = json.loads(capsys.readouterr().out)
    assert (job["kind"], job["status"], job["params"]["single"], job["params"]["scheduler"]) == (
        "select", "queued", False, dask_scheduler,
    )  # fmt: skip
    procs = test_automation.Procs(tmp_path)
    try:
        procs.start("worker", "--db", store_url, name="worker")
        jobs = jobs_for(ws)
        deadline = time.monotonic() + 240  # a loaded machine: the worker imports Dask and the model
        while not (done := jobs.get(job["id"])).done:
            assert time.monotonic() < deadline, procs.log("worker")
            time.sleep(0.2)
    finally:
        procs.stop()
    assert done.status == "succeeded", (done.error, procs.log("worker"))
    assert done.result["rows"] == _expected(path, model, 6)
    assert (done.result["parts"], done.result["where"]) == (4, "dask (2 workers)")
    monkeypatch.setattr(sys, "argv", ["loopwright", *args, "--model", str(path), "--db", store_url])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2 and "a select job scores with the project's champion" in " ".join(
        capsys.readouterr().err.split()
    )
