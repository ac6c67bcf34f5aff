"""Overhead of a served model: ingest through MLServer vs the same model in process.

One scikit-learn model (StandardScaler + LogisticRegression on 600 digits) scores 1,000 other
digits ingested in batches of 100 into a fresh SQLite project: once in process (``use_model``,
``force=True``) and once served by MLServer 1.7.1 (Open Inference Protocol, the scikit-learn
runtime, ``predict_proba``) on 127.0.0.1 through ``model.kind: http``. Same routing config, no
drift check, no audit. Reports the median of 5 interleaved runs of the whole ingest and, separately, the
median of 30 calls that only score 100 payloads (no store). Writes results/serving.{json,md}.

    scripts/serving-env.sh && .venv/bin/python bench/serving.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from loopwright.config import ProjectConfig
from loopwright.integrations.serving import ServedModel, ServedModels
from loopwright.learning import featurize, predict_proba_by_label
from loopwright.loop import Workspace
from loopwright.store.sql import SqlStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from serving_server import DIGIT_LABELS, MLServer, fit_digits, save_sklearn  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N_ITEMS, BATCH, REPEATS, SCORE_CALLS = 1000, 100, 5, 30


def config(name: str, url: str | None) -> dict[str, Any]:
    model: dict[str, Any] = {"kind": "default"}
    if url is not None:
        model = {"kind": "http", "url": url, "name": "digits", "output": "predict_proba"}
    return {
        "name": name,
        "labels": DIGIT_LABELS,
        "modality": "image",
        "input_field": "pixels",
        "model": model,
        "routing": {"accept_threshold": 0.9, "audit_rate": 0.0},
    }


def ingest_seconds(model: Any, X: np.ndarray, url: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(SqlStore(f"sqlite:///{tmp}/bench.db"), scorers={"http": ServedModels()})
        loop = ws.create_project(config("bench", url))
        if url is None:
            loop.use_model(model, force=True)
        recs = [{"external_id": str(i), "payload": {"pixels": row.tolist()}} for i, row in enumerate(X)]
        started = time.perf_counter()
        for start in range(0, len(recs), BATCH):
            report = loop.ingest(recs[start : start + BATCH])
            assert report.count(reason="model_unavailable") == 0
        seconds = time.perf_counter() - started
        ws.close()
        return seconds


def score_seconds(model: Any, X: np.ndarray, url: str) -> tuple[float, float]:
    cfg = ProjectConfig.from_dict(config("bench", url))
    payloads = [{"pixels": row.tolist()} for row in X[:BATCH]]
    served = ServedModel(cfg)
    local, remote = [], []
    for _ in range(SCORE_CALLS):
        t = time.perf_counter()
        predict_proba_by_label(model, featurize(cfg, payloads), DIGIT_LABELS)
        local.append(time.perf_counter() - t)
        t = time.perf_counter()
        served.predict(payloads)
        remote.append(time.perf_counter() - t)
    served.close()
    return statistics.median(local), statistics.median(remote)


def main() -> None:
    binary = Path(os.environ.get("LOOPWRIGHT_TEST_MLSERVER") or ROOT / ".venv-serving/bin/mlserver")
    if not binary.is_file():
        sys.exit(f"no MLServer at {binary}: run scripts/serving-env.sh first")
    model, X_test = fit_digits()
    X = X_test[:N_ITEMS]
    with tempfile.TemporaryDirectory() as models:
        save_sklearn(Path(models), "digits", model, "v1", DIGIT_LABELS)
        server = MLServer(binary, Path(models)).start()
        try:
            ingest_seconds(model, X[:BATCH], server.url)  # warm up both paths once
            ingest_seconds(model, X[:BATCH], None)
            runs = [
                (ingest_seconds(model, X, None), ingest_seconds(model, X, server.url)) for _ in range(REPEATS)
            ]
            in_process = statistics.median(r[0] for r in runs)  # interleaved: both see the same load
            served = statistics.median(r[1] for r in runs)
            score_local, score_served = score_seconds(model, X, server.url)
        finally:
            server.stop()
    out = {
        "items": N_ITEMS,
        "batch": BATCH,
        "repeats": REPEATS,
        "ingest_s": {"in_process": in_process, "served": served},
        "ingest_ms_per_item": {"in_process": 1e3 * in_process / N_ITEMS, "served": 1e3 * served / N_ITEMS},
        "overhead_ms_per_item": 1e3 * (served - in_process) / N_ITEMS,
        "scoring_overhead_ms_per_item": 1e3 * (score_served - score_local) / BATCH,
        "score_100_ms": {"in_process": 1e3 * score_local, "served": 1e3 * score_served},
        "machine": f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(out, indent=2) + "\n")
    per = out["ingest_ms_per_item"]
    md = f"""# Served model overhead (MLServer 1.7.1, Open Inference Protocol)

{N_ITEMS} digits ingested in batches of {BATCH} into a fresh SQLite project, median of {REPEATS}
runs; the same scikit-learn model in process (`use_model`) and served by MLServer on 127.0.0.1
(`model.kind: http`, `predict_proba`). Machine: {out["machine"]}.

| path | ingest of {N_ITEMS} (s) | per item (ms) | scoring {BATCH} payloads only (ms) |
|---|---:|---:|---:|
| in process | {in_process:.2f} | {per["in_process"]:.2f} | {out["score_100_ms"]["in_process"]:.2f} |
| served (MLServer) | {served:.2f} | {per["served"]:.2f} | {out["score_100_ms"]["served"]:.2f} |

Scoring alone, the served model costs **{out["scoring_overhead_ms_per_item"]:.3f} ms more per item**
({out["score_100_ms"]["served"]:.1f} ms per request of {BATCH}: JSON encoding of 64 FP64 pixels
per item, the loopback round trip, MLServer's decoding and `predict_proba`, the answer's
validation). End to end, ingest differs by {out["overhead_ms_per_item"]:+.2f} ms per item: the
store's writes dominate both paths, and the whole-ingest figure moves by about as much from
run to run on this shared 2-core machine (the scoring-only figure is the steadier one).
Reproduce:
`scripts/serving-env.sh && .venv/bin/python bench/serving.py`.
"""
    (RESULTS / "serving.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
