"""MLflow: model versions synced into a real local tracking store (SQLite backend, tmp dir).

The world (tests/integration_world.py) has ``blobs@v1`` in production; a pipeline trains
``blobs@v2`` with scikit-learn and the gate promotes it. ``sync`` (over REST) logs one run per
version with its parameters and gate evidence, registers both promoted versions as versions of
MLflow model ``blobs`` and points alias ``champion`` at v2; a second sync (from the CLI, in
process) changes nothing. Moving the alias in MLflow back to v1 and reading it makes v1
loopwright's champion again; a version registered only in MLflow arrives as a candidate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration_world import PROJECT, Served, require, serve, train_challenger
from loopwright import Client, NotFound

pytestmark = pytest.mark.integrations
ARTIFACT = "s3://models/blobs/v2"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    require("mlflow", "mlflow")
    with serve(f"sqlite:///{tmp_path / 'lw.db'}") as s:
        yield s


def _promote_v2(lw: Client, dataset: str) -> dict[str, Any]:
    rows = [json.loads(line) for line in lw.export(PROJECT, dataset, "jsonl").splitlines()]
    evals = [i.model_dump() for i in lw.eval_split(PROJECT, dataset).items]
    predictions = train_challenger([r for r in rows if r["split"] == "train"], evals)
    meta = {"framework": "scikit-learn", "C": 100.0}
    lw.register_model(PROJECT, "blobs", "v2", artifact_uri=ARTIFACT, dataset_version=dataset, metadata=meta)
    lw.upload_predictions(PROJECT, "blobs@v2", predictions)
    outcome = lw.gate(PROJECT, "blobs@v2")
    assert outcome.promoted
    return outcome.gate


def test_sync_registry_and_alias(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # a SQLite tracking store puts run artifacts in ./mlruns

    from loopwright.integrations.mlflow import ClientRegistry, champion_from_alias, sync

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with Client(served.url, served.tokens["lead"]) as lw:
        gate = _promote_v2(lw, served.dataset)
        registry = ClientRegistry(lw, PROJECT)
        done = sync(registry, uri)
        assert (done.registered_model, sorted(done.runs), done.registered, done.champion) == (
            "blobs",
            [1, 2],
            {1: "1", 2: "2"},
            "2",
        )
        ml = MlflowClient(tracking_uri=uri, registry_uri=uri)
        run = ml.get_run(done.runs[2])
        assert run.info.status == "FINISHED" and run.info.run_name == "blobs@v2"
        assert (
            run.data.tags["loopwright.project"] == PROJECT
            and run.data.tags["loopwright.status"] == "champion"
        )
        assert run.data.params["dataset_version"] == served.dataset
        assert (
            run.data.params["artifact_uri"] == ARTIFACT
            and run.data.params["metadata.framework"] == "scikit-learn"
        )
        assert run.data.metrics["gate.challenger_accuracy"] == pytest.approx(gate["challenger_accuracy"])
        assert run.data.metrics["gate.p_value"] == pytest.approx(gate["p_value"])
        assert run.data.metrics["gate.passed"] == 1.0 and run.data.metrics["gate.n_eval"] == gate["n_eval"]
        logged = json.loads(
            Path(ml.download_artifacts(done.runs[2], "loopwright/gate.json", str(tmp_path))).read_text()
        )
        assert logged == gate
        assert ml.get_run(done.runs[1]).data.params["model"] == "blobs@v1"
        v2 = ml.get_model_version_by_alias("blobs", "champion")
        assert (str(v2.version), v2.source, v2.run_id, v2.tags["loopwright.ref"]) == (
            "2",
            ARTIFACT,
            done.runs[2],
            "blobs@v2",
        )

        # Again, from the CLI on the same database (in process): the same runs, nothing new.
        again = _cli(
            tmp_path, served.db_url, "mlflow", "sync", "--project", PROJECT, "--tracking-uri", uri, "--json"
        )
        assert again["runs"] == {f"v{k}": v for k, v in done.runs.items()}
        assert again["registered"] == {"v1": "1", "v2": "2"} and again["champion"] == "2"
        assert len(ml.search_model_versions("name = 'blobs'")) == 2
        assert len(ml.get_metric_history(done.runs[2], "gate.p_value")) == 1

        # MLflow decides: alias champion back on version 1 -> loopwright's champion is blobs@v1.
        ml.set_registered_model_alias("blobs", "champion", "1")
        back = champion_from_alias(registry, uri, "blobs")
        assert (back.version, back.name, back.tag, back.status) == (1, "blobs", "v1", "champion")
        assert lw.model(PROJECT, "champion").version == 1

        # A version registered only in MLflow: a loopwright candidate named <model>@<version>.
        ml.create_model_version("blobs", "s3://models/blobs/v3", tags={"team": "ml"})
        ml.set_registered_model_alias("blobs", "staging", "3")
        staged = champion_from_alias(registry, uri, "blobs", alias="staging", promote=False)
        assert (staged.name, staged.tag, staged.status, staged.artifact_uri) == (
            "blobs",
            "3",
            "candidate",
            "s3://models/blobs/v3",
        )
        assert staged.metrics["metadata"]["mlflow"] == {
            "name": "blobs",
            "version": "3",
            "run_id": None,
            "alias": "staging",
        }
        assert lw.model(PROJECT, "champion").version == 1
        with pytest.raises(NotFound, match="no version of 'blobs' with alias 'prod'"):
            champion_from_alias(registry, uri, "blobs", alias="prod")


def _cli(tmp: Path, db: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "loopwright", *args, "--db", db]
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))
