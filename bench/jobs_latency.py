"""Requests while a retrain runs in the background: ``loopwright serve`` (SQLite, its in-serve
worker thread) retrains a text project on long documents (seconds of training); we time
``POST …/retrain`` (202) and ``GET /v1/projects/toy`` idle and while the job runs.

Before issue 16 the POST itself trained: its latency was the job's whole run time.
Writes ``bench/results/jobs_latency.md``. Run: ``.venv/bin/python bench/jobs_latency.py``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_loop
from browser import free_port
from loopwright import Workspace
from loopwright.store.sql import SqlStore

CONFIG = {
    "name": "toy",
    "labels": ["a", "b"],
    "modality": "text",
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
    "routing": {"bands": [{"min_confidence": 0.0, "tier": 1}]},
    "retrain": {"every_n_labels": 100000, "min_labels": 10, "eval_fraction": 0.3},
    "gate": {"min_eval_items": 3},
}


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[int(0.95 * (len(xs) - 1))]
    return f"{len(xs)} | {1000 * statistics.median(xs):.1f} | {1000 * p95:.1f} | {1000 * xs[-1]:.1f}"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'bench.db'}"
    ws = Workspace(SqlStore(url))
    loop = ws.create_project(CONFIG)
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(5000)]
    docs = [
        ({"external_id": f"d{i}", "payload": {"text": " ".join(rng.choice(vocab, 8000))}}, "ab"[i % 2])
        for i in range(60)
    ]
    loop.ingest([d for d, _ in docs])
    test_loop.label_all(loop, {d["external_id"]: lab for d, lab in docs}, annotators=("ann1",))
    ws.close()
    port = free_port()
    cmd = [sys.executable, "-m", "loopwright", "serve", "--db", url, "--open", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--automation-every", "0"], env={**os.environ}, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        while True:
            try:
                client.get("/v1/projects")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        idle = []
        for _ in range(100):
            t0 = time.perf_counter()
            client.get("/v1/projects/toy").raise_for_status()
            idle.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = client.post("/v1/projects/toy/retrain")
        post = time.perf_counter() - t0
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        during = []
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
            t0 = time.perf_counter()
            client.get("/v1/projects/toy").raise_for_status()
            during.append(time.perf_counter() - t0)
            time.sleep(0.01)
        assert job["status"] == "succeeded", job
        from datetime import datetime

        run = (
            datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
        ).total_seconds()
    finally:
        proc.terminate()
        proc.wait()
    lines = [
        "# Requests while a retrain job runs (`bench/jobs_latency.py`)",
        "",
        f"`loopwright serve` on SQLite with its in-serve worker thread; a text project of 60 labelled "
        f"documents of 8,000 words (bigram TF-IDF + logistic regression). Shared 2-core machine, "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        f"- `POST /v1/projects/toy/retrain`: **{1000 * post:.1f} ms** (202 with the job); the job itself ran "
        f"**{run:.2f} s** — what the request took before, when it trained in the request "
        f"(ratio {run / post:.0f}x).",
        "",
        "| `GET /v1/projects/toy` | n | median ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
        f"| idle | {stats(idle)} |",
        f"| while the retrain job runs | {stats(during)} |",
        "",
        "Training shares the server process's GIL with the request threads (scikit-learn releases it "
        "in parts only), so requests slow down while a job runs but none waits for the training; "
        "run `loopwright serve --job-threads 0` and `loopwright worker` elsewhere to keep them apart.",
    ]
    out = Path(__file__).parent / "results" / "jobs_latency.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
