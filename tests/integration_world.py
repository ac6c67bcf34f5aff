"""A project whose model lives elsewhere, ready for a pipeline: the world of the orchestrator,
MLflow and DVC integration tests.

Project ``ext`` (labels a, b, c; ``model: {kind: external}``): the production model ``blobs@v1``
(a diffident scikit-learn model fitted on feature x only: it cannot tell a from c) sent its predictions
with 150 records, reviewers answered every review task truthfully, and ``maybe_retrain`` emitted
``model.retrain_due`` naming a dataset version. Users: ``svc`` (service) and ``lead``.

Run as a script (``python tests/integration_world.py DB_PATH``) it seeds a SQLite file, serves it
on a free port on 127.0.0.1 and prints one JSON line ``{"url", "tokens", "dataset"}``; it stops
when its standard input closes (the Airflow tests, in their own venv, start it this way).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from people import members

sys.path.insert(0, str(Path(__file__).parent))
import test_loop
from live import live_server
from loopwright import Loop, Workspace

PROJECT = "ext"
LABELS = ["a", "b", "c"]
CONFIG: dict[str, Any] = {
    "name": PROJECT,
    "labels": LABELS,
    "modality": "tabular",
    "features": ["x", "y"],
    "model": {"kind": "external"},
    "routing": {"accept_threshold": 0.9, "audit_rate": 0.2},
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "uncertain"}],
    "retrain": {"every_n_labels": 40, "min_labels": 10, "eval_fraction": 0.3},
    "gate": {"min_eval_items": 5},
}
N_RECORDS = 150


def probabilities(model: Any, X: np.ndarray) -> list[dict[str, float]]:
    """Rows of ``{label: p}`` over every project label (0 for a class the model never saw)."""
    out = []
    for row in model.predict_proba(X):
        p = {str(c): float(v) for c, v in zip(model.classes_, row, strict=True)}
        out.append({label: p.get(label, 0.0) for label in LABELS})
    return out


def production_model() -> LogisticRegression:
    """``blobs@v1``: fitted on feature x only, and diffident (no probability reaches 0.9, so
    every record is reviewed and every class reaches the training split)."""
    seed = test_loop.points(30, seed=99, start=1000)
    X = np.asarray([[r["payload"]["x"]] for r, _ in seed])
    return LogisticRegression(C=0.01, max_iter=1000).fit(X, [label for _, label in seed])


def seed_external(ws: Workspace) -> tuple[Loop, str]:
    """Project ``ext`` as the module docstring says; the dataset version of its retrain_due."""
    loop = ws.create_project(CONFIG)
    v1 = production_model()
    data = test_loop.points(N_RECORDS)
    X = np.asarray([[r["payload"]["x"]] for r, _ in data])
    records = [
        {**r, "prediction": {"model": "blobs@v1", "probabilities": p}}
        for (r, _), p in zip(data, probabilities(v1, X), strict=True)
    ]
    report = loop.ingest(records)
    truth = {o.item_id: label for o, (_, label) in zip(report.outcomes, data, strict=True)}
    while (task := loop.next_task("ann1")) is not None:
        loop.submit(task.lease.id, "ann1", truth[task.item.id])
    loop.maybe_retrain()
    due = [e for e in loop.events(limit=10_000) if e.action == "model.retrain_due"]
    assert len(due) == 1, due
    return loop, str(due[0].data["dataset_version"])


def train_challenger(train: list[dict[str, Any]], evals: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """A pipeline's step outside loopwright: fit on both features, score the eval items."""
    X = np.asarray([[r["payload"]["x"], r["payload"]["y"]] for r in train])
    model = LogisticRegression(C=100.0, max_iter=1000).fit(X, [r["label"] for r in train])
    X_eval = np.asarray([[i["payload"]["x"], i["payload"]["y"]] for i in evals])
    return dict(zip([i["external_id"] for i in evals], probabilities(model, X_eval), strict=True))


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    dataset: str
    ws: Workspace
    db_url: str


@contextmanager
def serve(db_url: str) -> Iterator[Served]:
    """Seed ``db_url`` and serve it with uvicorn from a thread on a free port of 127.0.0.1."""

    from loopwright.service import Role, create_app
    from loopwright.store.sql import SqlStore

    store = SqlStore(db_url)
    ws = Workspace(store)
    _, dataset = seed_external(ws)
    auth, tokens = members(PROJECT, {"svc": Role.SERVICE, "lead": Role.LEAD})
    app = create_app(ws, authenticator=auth)
    try:
        with live_server(app) as url:
            yield Served(url, tokens, dataset, ws, db_url)
    finally:
        store.close()


def require(module: str, extra: str) -> Any:
    """Import ``module`` or skip the test (fail with LOOPWRIGHT_REQUIRE_INTEGRATIONS=1)."""
    import importlib
    import os

    import pytest

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not installed ({exc}): pip install 'loopwright[{extra}]'"
        if os.environ.get("LOOPWRIGHT_REQUIRE_INTEGRATIONS") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def load_example(name: str) -> Any:
    """``examples/<name>.py`` as a module (the examples are not a package)."""
    import importlib.util

    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    with serve(f"sqlite:///{Path(sys.argv[1]).resolve()}") as served:
        print(json.dumps({"url": served.url, "tokens": served.tokens, "dataset": served.dataset}), flush=True)
        sys.stdin.read()  # until the parent closes our standard input
