"""The loop turns by itself: triggers evaluated, jobs started and recorded, automation paused;
end to end with ``loopwright serve`` and ``loopwright worker`` as real subprocesses on both
databases (SQLite: the in-serve worker; PostgreSQL: procrastinate workers), including a worker
killed with SIGKILL mid-retrain whose job finishes on a second worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import test_loop
from live import free_port
from loopwright import Workspace
from loopwright.loop import automation
from loopwright.store.sql import SqlStore
from loopwright.store.sql.jobs import SqlJobs

CLI = [sys.executable, "-m", "loopwright"]


def _label(loop: Any, n: int, start: int = 0) -> None:
    points = test_loop.points(n, seed=start, start=start)
    loop.ingest([r for r, _ in points])
    test_loop.label_all(loop, {r["external_id"]: lab for r, lab in points})


def test_triggers_start_one_job_each_and_are_recorded(store: SqlStore) -> None:
    ws = Workspace(store)
    loop = ws.create_project(
        {**test_loop.CONFIG, "retrain": {**test_loop.CONFIG["retrain"], "every_n_labels": 20}}
    )
    jobs = SqlJobs(store.engine)
    _label(loop, 15)
    assert automation.triggers(loop) == [] and automation.evaluate(ws, jobs) == []  # 15 < 20 labels
    _label(loop, 10, start=15)
    assert automation.triggers(loop) == [("retrain", "labels")]
    [decision] = automation.evaluate(ws, jobs)
    assert (decision.project, decision.kind, decision.trigger) == ("toy", "retrain", "labels")
    assert automation.evaluate(ws, jobs) == []  # the queued job is not started twice
    [event] = [e for e in loop.events(limit=1000) if e.action == "automation.decided"]
    assert (event.actor, event.subject_type, event.subject_id) == ("automation", "job", str(decision.job_id))
    assert event.data == {"trigger": "labels", "kind": "retrain", "job_id": decision.job_id}
    assert jobs.get(decision.job_id).trigger == "labels"


def test_a_failed_job_is_not_started_again_on_every_pass(store: SqlStore) -> None:
    ws = Workspace(store)
    loop = ws.create_project(test_loop.CONFIG)
    jobs = SqlJobs(store.engine)
    _label(loop, 15)
    [decision] = automation.evaluate(ws, jobs)
    jobs.claim("w")
    jobs.fail(decision.job_id, "w", "RuntimeError: boom", retry=False)
    assert automation.triggers(loop) == [("retrain", "labels")]  # still due
    assert automation.evaluate(ws, jobs) == []  # but its last job just failed: back off


def test_paused_automation_starts_nothing(store: SqlStore) -> None:
    ws = Workspace(store)
    loop = ws.create_project(test_loop.CONFIG)
    jobs = SqlJobs(store.engine)
    _label(loop, 15)
    assert automation.set_paused(loop, True, "lead") is True and automation.is_paused(loop)
    automation.set_paused(loop, True, "lead")  # already paused: no second event
    assert automation.evaluate(ws, jobs) == [] and jobs.list() == []
    automation.set_paused(loop, False, "lead")
    assert [d.kind for d in automation.evaluate(ws, jobs)] == ["retrain"]
    actions = [(e.action, e.actor) for e in loop.events(limit=1000) if e.action.startswith("automation.")]
    assert actions == [
        ("automation.paused", "lead"),
        ("automation.resumed", "lead"),
        ("automation.decided", "automation"),
    ]


def test_a_drift_window_starts_a_drift_check(store: SqlStore) -> None:
    ws = Workspace(store)
    loop = ws.create_project(
        {**test_loop.CONFIG, "drift": {"window": 30}, "retrain": {"every_n_labels": 1000}}
    )
    jobs = SqlJobs(store.engine)
    loop.ingest([r for r, _ in test_loop.points(59)])
    assert automation.triggers(loop) == []  # two windows are needed
    loop.ingest([r for r, _ in test_loop.points(1, start=59)])
    assert automation.triggers(loop) == [("drift_check", "drift_window")]
    [decision] = automation.evaluate(ws, jobs)
    assert decision.kind == "drift_check"


# -- end to end: real processes ----------------------------------------------------------------


class Procs:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([*CLI, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop()


def _serve(procs: Procs, url: str, pg: bool) -> httpx.Client:
    port = free_port()
    threads = "0" if pg else "1"  # PostgreSQL: procrastinate workers run the jobs
    args = ["serve", "--db", url, "--open", "--port", str(port), "--automation-every", "0.5"]
    procs.start(*args, "--job-threads", threads, name="serve")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get("/v1/projects").status_code == 200:
                return client
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, procs.log("serve")
        time.sleep(0.2)


def _wait(client: httpx.Client, pred: Any, what: str, procs: Procs, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        jobs = client.get("/v1/projects/toy/jobs").json()["jobs"]
        if (found := pred(jobs)) is not None:
            return found
        assert time.monotonic() < deadline, f"{what}: {jobs}\n{procs.log('serve')}"
        time.sleep(0.1)


@pytest.mark.slow
def test_serve_turns_the_loop_by_itself(store_url: str, procs: Procs) -> None:
    """Ingest and label until the label trigger fires: the server starts a retrain job on its
    own, a worker runs it and promotes a champion, and no request waits on the training."""
    pg = store_url.startswith("postgresql")
    SqlStore(store_url).close()  # migrated once, before the processes start
    client = _serve(procs, store_url, pg)
    if pg:
        procs.start("worker", "--db", store_url, "--lease", "5", name="worker")
    assert client.post("/v1/projects", json=test_loop.CONFIG).status_code == 201
    points = test_loop.points(30)
    r = client.post("/v1/projects/toy/items", json={"items": [p for p, _ in points]})
    assert r.status_code == 200, r.text
    latencies: list[float] = []  # of requests while the retrain job is queued or running
    ws = Workspace(SqlStore(store_url))
    test_loop.label_all(ws.project("toy"), {p["external_id"]: lab for p, lab in points})
    job = _wait(
        client, lambda js: next((j for j in js if j["kind"] == "retrain"), None), "no retrain job", procs
    )
    assert (job["trigger"], job["actor"]) == ("labels", "automation")
    while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] in ("queued", "running"):
        t0 = time.perf_counter()
        assert client.get("/v1/projects/toy").status_code == 200
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.02)
    assert job["status"] == "succeeded", job
    assert job["result"]["promoted"] is True and job["result"]["model_version"] == 1
    assert client.get("/v1/projects/toy/models/champion").json()["version"] == 1
    decided = [e for e in client.get("/v1/projects/toy/events?limit=1000").json()["events"]]
    assert [e["data"]["trigger"] for e in decided if e["action"] == "automation.decided"] == ["labels"]
    assert max(latencies) < 2.0, latencies  # a shared, loaded 2-core machine: idle requests reach 1.4 s
    ws.close()


TEXT_CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b"],
    "modality": "text",
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
    "routing": {"bands": [{"min_confidence": 0.0, "tier": 1}]},
    "retrain": {"every_n_labels": 1000, "min_labels": 10, "eval_fraction": 0.3},
    "gate": {"min_eval_items": 3},
}


def _long_documents(n: int, words: int = 6000) -> list[tuple[dict[str, Any], str]]:
    """Long documents so that training takes seconds (bigram TF-IDF over ~36 KB each)."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(5000)]
    out = []
    for i in range(n):
        label = "ab"[i % 2]
        text = f"{label}{label} " + " ".join(rng.choice(vocab, words))
        out.append(({"external_id": f"d{i}", "payload": {"text": text}}, label))
    return out


@pytest.mark.slow
def test_a_worker_killed_mid_retrain_leaves_nothing_half_written_and_another_finishes(
    store_url: str, procs: Procs
) -> None:
    pg = store_url.startswith("postgresql")
    ws = Workspace(SqlStore(store_url))
    loop = ws.create_project(TEXT_CONFIG)
    docs = _long_documents(40)
    loop.ingest([d for d, _ in docs])
    test_loop.label_all(loop, {d["external_id"]: lab for d, lab in docs}, annotators=("ann1",))
    jobs = SqlJobs(ws.store.engine)  # the record: the same table on both adapters
    worker = ["worker", "--db", store_url, "--lease", "3"]
    first = procs.start(*worker, name="worker1")
    if pg:
        from loopwright.store.sql.jobs import jobs_for

        job = jobs_for(ws, lease_s=3).enqueue("toy", "retrain", actor="lead")
    else:
        job = jobs.enqueue("toy", "retrain", actor="lead")
    deadline = time.monotonic() + 60
    while not any(line.endswith("snapshot and training") for line in jobs.get(job.id).logs):
        assert time.monotonic() < deadline, (jobs.get(job.id), procs.log("worker1"))
        time.sleep(0.02)
    time.sleep(0.3)  # inside the training
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = jobs.get(job.id)
    assert (killed.status, killed.attempts) == ("running", 1), killed
    assert loop.models() == []  # nothing of the model was written
    procs.start(*worker, name="worker2")
    deadline = time.monotonic() + 90
    while not (done := jobs.get(job.id)).done:
        assert time.monotonic() < deadline, (done, procs.log("worker2"))
        time.sleep(0.2)
    assert (done.status, done.attempts, done.result["model_version"]) == ("succeeded", 2, 1), done
    assert any("lost" in line and "during attempt 1" in line for line in done.logs), done.logs
    assert [m.version for m in loop.models()] == [1]  # one model, from the second attempt
    ws.close()
