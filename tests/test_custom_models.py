"""Custom in-process models that survive a restart: trusted by name, refused at once otherwise,
and gated like a retrained challenger unless ``force=True`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import test_loop
from custom_classifier import Contrarian, NearestCentre
from live import free_port
from loopwright import Invalid, Loop, Workspace
from loopwright.domain import ModelStatus, Route
from loopwright.store.sql import SqlStore

TESTS = Path(__file__).parent
TRUSTED = ["custom_classifier.NearestCentre", "custom_classifier.Contrarian"]
X_FIT = np.array([[0, 0], [12, 0], [0, 12]] * 5, dtype=float)
Y_FIT = ["a", "b", "c"] * 5


def config(trusted: list[str] | None = None) -> dict[str, Any]:
    return {**test_loop.CONFIG, "model": {"trusted_types": trusted or []}}


def fitted(cls: type[NearestCentre] = NearestCentre) -> NearestCentre:
    return cls().fit(X_FIT, Y_FIT)


def promoted_events(loop: Loop) -> list[dict[str, Any]]:
    return [e.data for e in loop.events(limit=1000) if e.action == "model.promoted"]


def child_env() -> dict[str, str]:
    """A fresh interpreter that can import the test's model module (tests/ on its path)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


# -- refused at use_model time ----------------------------------------------------------------


def test_an_untrusted_class_is_refused_at_once_naming_its_type(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config())
    with pytest.raises(Invalid) as caught:
        loop.use_model(fitted(), force=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "['custom_classifier.NearestCentre']" in message and "model.trusted_types" in message
    assert loop.models() == [] and promoted_events(loop) == []  # nothing written


def test_trusting_one_class_does_not_trust_another(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config(["custom_classifier.NearestCentre"]))
    with pytest.raises(Invalid, match=r"\['custom_classifier.Contrarian'\]"):
        loop.use_model(fitted(Contrarian), force=True)
    assert loop.models() == []


def test_a_lambda_is_refused_unless_served_in_this_process_only(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config())
    fn = lambda X: np.tile([0.8, 0.1, 0.1], (len(X), 1))  # noqa: E731
    with pytest.raises(Invalid, match=r"no other process can import.*persist=False"):
        loop.use_model(fn, force=True)
    assert loop.models() == []
    version = loop.use_model(fn, force=True, persist=False)
    assert version.status is ModelStatus.CHAMPION and version.metrics["persisted"] is False
    assert loop.ingest([r for r, _ in test_loop.points(2)]).outcomes[0].label == "a"  # this process
    fresh = Workspace(store).project("toy")  # another process cannot serve it: nothing lost
    report = fresh.ingest([r for r, _ in test_loop.points(2, start=2)])
    assert {(o.route, o.reason) for o in report.outcomes} == {(Route.REVIEW, "model_unavailable")}
    assert promoted_events(loop)[-1] | {"before_id": None} == {
        "previous": None,
        "before_id": None,
        "after_id": version.id,
        "gated": False,
        "persisted": False,
    }


# -- the gate ---------------------------------------------------------------------------------


def labelled_project(store: SqlStore) -> tuple[Loop, list[tuple[dict[str, Any], str]]]:
    """60 items resolved by truthful annotators: an evaluation split of ~18 items."""
    loop = Workspace(store).create_project(config(TRUSTED))
    data = test_loop.points(60)
    loop.ingest([r for r, _ in data])
    test_loop.label_all(loop, {r["external_id"]: y for r, y in data})
    return loop, data


def test_use_model_goes_through_the_gate(store: SqlStore) -> None:
    loop, _ = labelled_project(store)
    good = loop.use_model(fitted())  # against the majority-class baseline: no champion yet
    assert good.status is ModelStatus.CHAMPION
    assert (
        good.gate is not None and good.gate["test"] == "baseline" and good.gate["challenger_accuracy"] == 1.0
    )
    n_eval = good.gate["n_eval"]
    assert n_eval == len([e for e in loop.dataset("latest").entries if e.split.value == "eval"]) >= 3
    assert promoted_events(loop) == [
        {
            "previous": None,
            "before_id": None,
            "after_id": good.id,
            "gated": True,
            "gate": good.gate["reason"],
            "persisted": True,
        }
    ]
    bad = loop.use_model(fitted(Contrarian))  # always wrong: McNemar says significantly worse
    assert bad.status is ModelStatus.REJECTED and bad.gate is not None
    assert (bad.gate["passed"], bad.gate["wins"], bad.gate["losses"]) == (False, 0, n_eval)
    assert loop.model("champion").version == good.version and len(promoted_events(loop)) == 1
    gated = [e.data for e in loop.events(limit=1000) if e.action == "model.gated"]
    assert [g["passed"] for g in gated] == [True, False]
    forced = loop.use_model(fitted(Contrarian), force=True)  # the caller's word, on record
    assert forced.status is ModelStatus.CHAMPION and forced.gate is None
    assert promoted_events(loop)[-1]["gated"] is False and promoted_events(loop)[-1]["previous"] == 1


def test_without_labels_only_force_promotes(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config(TRUSTED))
    version = loop.use_model(fitted())
    assert version.status is ModelStatus.REJECTED and version.gate is not None
    assert version.gate["reason"] == "only 0 evaluation items (< 3)"
    assert loop.status().champion is None and loop.datasets() == []  # no empty snapshot either
    assert loop.use_model(fitted(), force=True).status is ModelStatus.CHAMPION


# -- a trusted class loads in every process ---------------------------------------------------

CHILD = """
import json, sys
from loopwright import connect
loop = connect(sys.argv[1]).project("toy")
proba = loop.predict([{"x": 12.0, "y": 0.0}, {"x": 0.0, "y": 12.0}])
report = loop.ingest([{"external_id": "fresh", "payload": {"x": 0.2, "y": 11.5}}])
print(json.dumps({"proba": proba.tolist(), "label": report.outcomes[0].label,
                  "reason": report.outcomes[0].reason}))
"""


def test_a_trusted_class_loads_in_a_fresh_process(store_url: str) -> None:
    ws = Workspace(SqlStore(store_url))
    loop = ws.create_project(config(TRUSTED))
    loop.use_model(fitted(), force=True)
    here = loop.predict([{"x": 12.0, "y": 0.0}, {"x": 0.0, "y": 12.0}])
    ws.close()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, store_url], env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert np.allclose(out["proba"], here) and out["label"] == "c" and out["reason"] != "model_error"


def test_a_trusted_class_serves_from_the_rest_server_with_workers(store_url: str) -> None:
    ws = Workspace(SqlStore(store_url))
    ws.create_project(config(TRUSTED)).use_model(fitted(), force=True)
    ws.close()
    port = free_port()
    cmd = [sys.executable, "-m", "loopwright", "serve", "--db", store_url, "--port", str(port), "--open"]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # two workers import on a shared machine
        while True:
            try:
                if httpx.get(f"{base}/v1/projects", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            outcomes = []
            for i in range(6):  # several requests: both workers load the model
                items = [{"external_id": f"r{i}", "payload": {"x": 12.0 - i * 0.1, "y": 0.3}}]
                response = client.post("/v1/projects/toy/items", json={"items": items})
                assert response.status_code == 200, response.text
                outcomes += response.json()["outcomes"]
        assert len(outcomes) == 6
        assert all(
            o["label"] == "b" and o["reason"] not in ("model_error", "model_unavailable") for o in outcomes
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
