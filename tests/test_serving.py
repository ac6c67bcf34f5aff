"""Served models over HTTP (``model.kind: http``), against real inference servers started here.

Tests marked ``serving`` start MLServer 1.7.1 (scikit-learn runtime, Open Inference Protocol)
or ``mlflow models serve`` 3.17.2 (``/invocations``) from their venvs (``scripts/serving-env.sh``);
they skip without them unless ``LOOPWRIGHT_REQUIRE_SERVING=1``.
The others need no inference server: configuration, the retry policy (over httpx's mock
transport), and the deadline against a socket that never answers (the one stand-in).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from loopwright.config import ProjectConfig
from loopwright.domain import Route
from loopwright.errors import Conflict, Invalid, ModelUnavailable
from loopwright.integrations.serving import ServedModel, ServedModels
from loopwright.loop import Workspace
from loopwright.service import create_app
from loopwright.store.sql import SqlStore
from serving_server import (
    DIGIT_LABELS,
    MLflowServer,
    MLServer,
    SilentServer,
    fit_digits,
    free_port,
    mlflow_binary,
    mlserver_binary,
    save_garbage,
    save_mlflow,
    save_sklearn,
)


def digits_config(url: str, **model: Any) -> dict[str, Any]:
    return {
        "name": "served",
        "labels": DIGIT_LABELS,
        "modality": "image",
        "input_field": "pixels",
        "model": {"kind": "http", "url": url, "name": "digits", "output": "predict_proba", **model},
        "routing": {"accept_threshold": 0.9, "audit_rate": 0.0},
    }


def records(X: np.ndarray, prefix: str) -> list[dict[str, Any]]:
    return [{"external_id": f"{prefix}{i}", "payload": {"pixels": row.tolist()}} for i, row in enumerate(X)]


def served_workspace(store: SqlStore) -> Workspace:
    return Workspace(store, scorers={"http": ServedModels()})


def stored(store: SqlStore, project_id: int, external_ids: list[str]) -> dict[str, tuple[Any, Any]]:
    """(latest prediction, latest decision) by external id."""
    with store.unit_of_work() as uow:
        items = uow.items.by_external_ids(project_id, external_ids)
        return {
            ext: (uow.predictions.for_item(it.id)[-1], uow.decisions.for_item(it.id)[-1])
            for ext, it in items.items()
        }


# -- a real MLServer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MLServer, Any, np.ndarray]]:
    """MLServer serving a digits model fitted here (labels in its metadata), the same model
    without labels, and a custom runtime answering garbage."""
    binary = mlserver_binary()
    model, X_test = fit_digits()
    models = tmp_path_factory.mktemp("mlserver")
    save_sklearn(models, "digits", model, "v1", DIGIT_LABELS)
    save_sklearn(models, "digits-bare", model, "v1", None)
    save_garbage(models, "garbage")
    server = MLServer(binary, models).start()
    yield server, model, X_test
    server.stop()


@pytest.mark.serving
def test_ingest_scores_through_mlserver_exactly(store: SqlStore, digits_server: Any) -> None:
    server, model, X_test = digits_server
    ws = served_workspace(store)
    loop = ws.create_project(digits_config(server.url, batch_size=64))
    X = X_test[:150]  # three requests of at most 64
    report = loop.ingest(records(X, "a"))
    assert report.created == 150 and report.count(reason="model_unavailable") == 0
    expected = model.predict_proba(X)  # columns are classes_ 0..9 = the project's labels
    found = stored(store, loop.project.id, [f"a{i}" for i in range(150)])
    got = np.array([[found[f"a{i}"][0].probabilities[label] for label in DIGIT_LABELS] for i in range(150)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    for i in range(150):
        pred, decision = found[f"a{i}"]
        assert pred.error is None and pred.label == str(int(expected[i].argmax()))
        assert pred.confidence == pytest.approx(expected[i].max(), abs=1e-9)
        wanted = Route.AUTO_ACCEPT if expected[i].max() >= 0.9 else Route.REVIEW
        assert decision.route is wanted
    # the served version is registered once, as digits@v1, and every prediction names it
    versions = [m for m in loop.models() if m.name == "digits"]
    assert [(m.ref, m.kind, m.endpoint) for m in versions] == [("digits@v1", "external", server.url)]
    assert {p.model_version_id for p, _ in found.values()} == {versions[0].id}
    loop.ingest(records(X_test[150:160], "b"))
    assert [m.ref for m in loop.models() if m.name == "digits"] == ["digits@v1"]
    registered = [e for e in loop.events(limit=1000) if e.action == "model.registered"]
    assert len(registered) == 1 and registered[0].data["model"] == "digits@v1"
    ws.close()


@pytest.mark.serving
def test_labels_from_config_or_metadata(digits_server: Any) -> None:
    server, model, X_test = digits_server
    payloads = [{"pixels": row.tolist()} for row in X_test[:5]]
    reversed_labels = DIGIT_LABELS[::-1]
    cfg = digits_config(server.url, name="digits-bare", labels=DIGIT_LABELS)
    served = ServedModel(ProjectConfig.from_dict(cfg))
    np.testing.assert_allclose(
        served.predict(payloads).probabilities, model.predict_proba(X_test[:5]), atol=1e-9
    )
    # a configured order is taken as the model's column order: here deliberately reversed
    cfg = digits_config(server.url, name="digits-bare", labels=reversed_labels)
    flipped = ServedModel(ProjectConfig.from_dict(cfg)).predict(payloads).probabilities
    np.testing.assert_allclose(flipped, model.predict_proba(X_test[:5])[:, ::-1], atol=1e-9)
    # neither configured nor published: refused, never guessed by position
    bare = ServedModel(ProjectConfig.from_dict(digits_config(server.url, name="digits-bare")))
    with pytest.raises(ModelUnavailable, match="cannot tell which label each output column is"):
        bare.predict(payloads)
    served.close()


@pytest.mark.serving
def test_garbage_answers_are_refused(store: SqlStore, digits_server: Any) -> None:
    server, _, X_test = digits_server
    payloads = [{"pixels": row.tolist()} for row in X_test[:3]]
    garbage = ServedModel(
        ProjectConfig.from_dict(digits_config(server.url, name="garbage", labels=DIGIT_LABELS))
    )
    with pytest.raises(ModelUnavailable, match=r"row 0 sum to 2, not 1"):
        garbage.predict(payloads)
    # the label output of the scikit-learn runtime is not a probability matrix
    labels_only = ServedModel(ProjectConfig.from_dict(digits_config(server.url, output="predict")))
    with pytest.raises(ModelUnavailable, match="INT64, not probabilities"):
        labels_only.predict(payloads)
    # a model the server does not have: a 404, not retried
    missing = ServedModel(
        ProjectConfig.from_dict(digits_config(server.url, name="nope", labels=DIGIT_LABELS))
    )
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        missing.predict(payloads)
    # through ingest: stored, routed to review as model_unavailable, counted
    ws = served_workspace(store)
    loop = ws.create_project(digits_config(server.url, name="garbage", labels=DIGIT_LABELS))
    report = loop.ingest(records(X_test[:4], "g"))
    assert report.count(reason="model_unavailable", route=Route.REVIEW) == 4
    found = stored(store, loop.project.id, [f"g{i}" for i in range(4)])
    assert all(p.probabilities == {} and "sum to 2" in (p.error or "") for p, _ in found.values())
    (event,) = [e for e in loop.events(limit=100) if e.action == "model.unavailable"]
    assert event.data["items"] == 4 and "sum to 2" in event.data["reason"]
    ws.close()


@pytest.mark.serving
def test_server_down_then_back(store: SqlStore, tmp_path: Path) -> None:
    binary = mlserver_binary()
    model, X_test = fit_digits()
    save_sklearn(tmp_path, "digits", model, "v1", DIGIT_LABELS)
    server = MLServer(binary, tmp_path).start()
    try:
        ws = served_workspace(store)
        loop = ws.create_project(digits_config(server.url, timeout_s=3, retries=1))
        assert loop.ingest(records(X_test[:10], "up")).count(reason="model_unavailable") == 0
        server.stop()
        started = time.monotonic()
        down = loop.ingest(records(X_test[10:30], "down"))
        assert time.monotonic() - started < 3.5  # refused connections fail fast, one retry
        assert down.created == 20 and down.count(reason="model_unavailable", route=Route.REVIEW) == 20
        found = stored(store, loop.project.id, [f"down{i}" for i in range(20)])
        assert all("cannot connect" in (p.error or "") for p, _ in found.values())
        assert all(d.tier == loop.config.routing.fallback_tier for _, d in found.values())
        assert loop.status().open_tasks_by_tier.get(1, 0) >= 20  # nothing lost: all in review
        server.start()
        back = loop.ingest(records(X_test[30:40], "back"))
        assert back.count(reason="model_unavailable") == 0
        got = stored(store, loop.project.id, [f"back{i}" for i in range(10)])
        proba = np.array([[got[f"back{i}"][0].probabilities[lab] for lab in DIGIT_LABELS] for i in range(10)])
        np.testing.assert_allclose(proba, model.predict_proba(X_test[30:40]), atol=1e-9)
        again = loop.ingest(records(X_test[10:30], "down"))  # re-sending is idempotent
        assert again.duplicates == 20 and again.created == 0
        app = TestClient(create_app(ws, open_access=True, webhooks=False))
        metrics = app.get("/metrics").text
        assert 'loopwright_model_unavailable_total{project="served"} 20.0' in metrics
        ws.close()
    finally:
        server.stop()


@pytest.mark.serving
def test_mlflow_invocations_score_a_tabular_project(store: SqlStore, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    binary = mlflow_binary()
    iris = load_iris()
    names = [str(n) for n in iris.target_names]
    y = np.asarray(names)[iris.target]
    X = iris.data
    model = LogisticRegression(max_iter=1000).fit(X[::2], y[::2])
    server = MLflowServer(binary, save_mlflow(binary, model, tmp_path / "iris" / "model")).start()
    try:
        features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        ws = served_workspace(store)
        loop = ws.create_project(
            {
                "name": "iris",
                "labels": names,
                "features": features,
                "model": {
                    "kind": "http",
                    "url": server.url,
                    "protocol": "mlflow",
                    "name": "iris",
                    "version": "1",
                    "labels": [str(c) for c in model.classes_],
                    "batch_size": 40,
                },
            }
        )
        test = X[1::2]
        recs = [
            {"external_id": f"i{i}", "payload": dict(zip(features, map(float, row), strict=True))}
            for i, row in enumerate(test)
        ]
        report = loop.ingest(recs)
        assert report.created == len(test) and report.count(reason="model_unavailable") == 0
        found = stored(store, loop.project.id, [f"i{i}" for i in range(len(test))])
        got = np.array([[found[f"i{i}"][0].probabilities[n] for n in names] for i in range(len(test))])
        np.testing.assert_allclose(got, model.predict_proba(test), rtol=0, atol=1e-9)
        assert [m.ref for m in loop.models()] == ["iris@1"]
        ws.close()
    finally:
        server.stop()


# -- no inference server needed ------------------------------------------------------------------


def test_a_hung_server_hits_the_deadline(store: SqlStore) -> None:
    silent = SilentServer()  # accepts, never answers: the only stand-in in this file
    try:
        ws = served_workspace(store)
        loop = ws.create_project(digits_config(silent.url, timeout_s=0.5, retries=3, labels=DIGIT_LABELS))
        started = time.monotonic()
        report = loop.ingest([{"external_id": "h0", "payload": {"pixels": [0.0] * 64}}])
        elapsed = time.monotonic() - started
        assert 0.45 < elapsed < 2.0  # one deadline, not one per retry
        assert report.count(reason="model_unavailable", route=Route.REVIEW) == 1
        ((pred, _),) = stored(store, loop.project.id, ["h0"]).values()
        assert "no answer within the 0.5 s deadline" in (pred.error or "")
        ws.close()
    finally:
        silent.close()


def _config(**model: Any) -> ProjectConfig:
    return ProjectConfig.from_dict(digits_config("http://models.internal:8080", labels=DIGIT_LABELS, **model))


def test_retries_back_off_then_succeed() -> None:
    answers = [
        httpx.Response(503, text="warming up"),
        httpx.Response(429, headers={"retry-after": "0.3"}, text="slow down"),
        httpx.Response(
            200,
            json={
                "model_name": "digits",
                "model_version": "7",
                "outputs": [
                    {"name": "predict_proba", "shape": [1, 10], "datatype": "FP32", "data": [0.1] * 10}
                ],
            },
        ),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    sleeps: list[float] = []
    served = ServedModel(_config(retries=2), transport=httpx.MockTransport(handler), sleep=sleeps.append)
    out = served.predict([{"pixels": [1.0] * 64}])
    assert out.model == "digits@7" and out.probabilities.shape == (1, 10)
    assert out.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert [r.url.path for r in seen] == ["/v2/models/digits/infer"] * 3
    body = seen[0].read()
    assert (
        b'"shape":[1,64]' in body
        and b'"datatype":"FP64"' in body
        and b'"outputs":[{"name":"predict_proba"}]' in body
    )
    assert 0.05 <= sleeps[0] <= 0.1 and sleeps[1] == 0.3  # jittered backoff, then Retry-After


def test_retries_are_bounded_and_4xx_is_not_retried() -> None:
    calls: list[int] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502, text="bad gateway")

    sleeps: list[float] = []
    served = ServedModel(_config(retries=3), transport=httpx.MockTransport(down), sleep=sleeps.append)
    with pytest.raises(ModelUnavailable, match=r"HTTP 502.*gave up after 4 attempt\(s\)"):
        served.predict([{"pixels": [1.0] * 64}])
    assert len(calls) == 4 and len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2] <= 2.0
    calls.clear()
    refused = ServedModel(
        _config(retries=3), transport=httpx.MockTransport(lambda r: httpx.Response(400, text="bad input"))
    )
    with pytest.raises(ModelUnavailable, match="HTTP 400"):
        refused.predict([{"pixels": [1.0] * 64}])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("not json", "not JSON"),
        ({"outputs": []}, "no outputs"),
        (
            {"outputs": [{"name": "predict_proba", "shape": [1, 9], "datatype": "FP64", "data": [0.1] * 9}]},
            "shape [1, 9]",
        ),
        (
            {
                "outputs": [
                    {"name": "predict_proba", "shape": [2, 10], "datatype": "FP64", "data": [0.1] * 20}
                ]
            },
            "shape [2, 10]",
        ),
        (
            {
                "outputs": [
                    {
                        "name": "predict_proba",
                        "shape": [1, 10],
                        "datatype": "FP64",
                        "data": [-0.1] + [0.11] * 9 + [0],
                    }
                ]
            },
            "data are not",
        ),
        (
            {
                "outputs": [
                    {
                        "name": "predict_proba",
                        "shape": [1, 10],
                        "datatype": "FP64",
                        "data": [1.1, -0.1] + [0.0] * 8,
                    }
                ]
            },
            "negative",
        ),
        (
            {
                "outputs": [
                    {"name": "predict_proba", "shape": [1, 10], "datatype": "FP64", "data": ["NaN"] * 10}
                ]
            },
            "NaN",
        ),
        (
            {"outputs": [{"name": "other", "shape": [1, 10], "datatype": "FP64", "data": [0.1] * 10}]},
            "no output named",
        ),
    ],
)
def test_garbage_shapes(answer: Any, reason: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(200, text=answer) if isinstance(answer, str) else httpx.Response(200, json=answer)
        )

    served = ServedModel(_config(), transport=httpx.MockTransport(handler))
    with pytest.raises(ModelUnavailable, match=re.escape(reason)):
        served.predict([{"pixels": [1.0] * 64}])


def test_mlflow_bodies_and_answers() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        rows = [{"spam": 0.25, "ham": 0.75}, {"spam": 1.0, "ham": 0.0}]
        return httpx.Response(200, json={"predictions": rows})

    cfg = ProjectConfig.from_dict(
        {
            "name": "t",
            "labels": ["ham", "spam"],
            "features": ["a", "b"],
            "model": {"kind": "http", "url": "http://mlflow:5000", "protocol": "mlflow"},
        }
    )
    out = ServedModel(cfg, transport=httpx.MockTransport(handler)).predict(
        [{"a": 1, "b": 2}, {"a": 3, "b": 4.5}]
    )
    np.testing.assert_allclose(out.probabilities, [[0.75, 0.25], [0.0, 1.0]])
    assert seen[0] == b'{"dataframe_split":{"columns":["a","b"],"data":[[1.0,2.0],[3.0,4.5]]}}'


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"kind": "http"}, "kind http needs url"),
        ({"kind": "http", "url": "ftp://x/y", "name": "m"}, "must be an http:// or https:// URL"),
        ({"kind": "http", "url": "http://", "name": "m"}, "must be an http:// or https:// URL"),
        ({"kind": "http", "url": "http://x:8080"}, "open-inference needs name"),
        ({"kind": "http", "url": "http://x", "name": "m", "labels": ["0", "0"]}, "must be unique"),
        ({"kind": "http", "url": "http://x", "name": "m", "labels": ["cat"]}, "model.labels not in labels"),
        ({"kind": "http", "url": "http://x", "name": "m", "protocol": "grpc"}, "open-inference"),
        ({"kind": "http", "url": "http://x", "name": "m", "timeout_s": 0}, "greater than 0"),
        ({"kind": "default", "url": "http://x"}, "url is only used with kind: http"),
    ],
)
def test_bad_model_config_is_one_clear_error(model: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        ProjectConfig.from_dict({"name": "p", "labels": DIGIT_LABELS, "model": model})
    # private addresses are fine: an operator configures model servers (no SSRF rule here)
    ProjectConfig.from_dict(
        {
            "name": "p",
            "labels": DIGIT_LABELS,
            "model": {"kind": "http", "url": "http://10.0.0.5:8080", "name": "m"},
        }
    )


def test_a_workspace_without_the_http_scorer_routes_to_review(store: SqlStore) -> None:
    loop = Workspace(store).create_project(digits_config(f"http://127.0.0.1:{free_port()}"))
    report = loop.ingest([{"external_id": "x", "payload": {"pixels": [0.0] * 64}}])
    assert report.count(reason="model_unavailable", route=Route.REVIEW) == 1


def test_import_loopwright_stays_free_of_the_integration() -> None:
    code = "import sys, loopwright; assert not {'loopwright.integrations.serving', 'httpx'} & {*sys.modules}"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_served_model_is_never_trained_here(store: SqlStore) -> None:
    loop = served_workspace(store).create_project(digits_config("http://127.0.0.1:9"))
    with pytest.raises(Conflict, match=r"model\.kind http\): loopwright never trains it"):
        loop.retrain()
    assert loop.maybe_retrain() is None
