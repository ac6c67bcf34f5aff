"""Airflow: examples/airflow_dag.py run with ``dag.test()`` in its own virtualenv against a real
loopwright server.

Airflow 3.3 pins FastAPI 0.136 (``loopwright[service]`` needs ≥ 0.163), so it lives in
``.venv-airflow`` (scripts/airflow-env.sh; ``LOOPWRIGHT_AIRFLOW_VENV`` elsewhere). This test runs
in the main venv: it serves the world of tests/integration_world.py from a subprocess, migrates a
fresh Airflow metadata database and runs the DAG file with the Airflow venv's Python. The sensor
finds 150 labels resolved since the champion's data (it has none), the DAG snapshots, exports,
trains with scikit-learn, registers and gates: the challenger is promoted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopwright import Client

pytestmark = [pytest.mark.integrations, pytest.mark.slow]
ROOT = Path(__file__).parent.parent
VENV = Path(os.environ.get("LOOPWRIGHT_AIRFLOW_VENV", ROOT / ".venv-airflow"))


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "airflow").exists():
        message = f"Airflow is not installed in {VENV}: run scripts/airflow-env.sh"
        if os.environ.get("LOOPWRIGHT_REQUIRE_AIRFLOW") == "1":  # CI's own step, after it builds the venv
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "integration_world.py"), str(tmp_path / "lw.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, "the loopwright world server did not start"
        yield json.loads(line)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)


def _env(tmp: Path, world: dict[str, Any]) -> dict[str, str]:
    host, port = world["url"].removeprefix("http://").split(":")
    conn = {"conn_type": "http", "host": host, "port": int(port), "password": world["tokens"]["lead"]}
    return {
        "PATH": f"{VENV / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT / "src"),  # this checkout's loopwright, wherever the venv was built
        "HOME": str(tmp),
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_LOOPWRIGHT_DEFAULT": json.dumps(conn),
        "LOOPWRIGHT_PROJECT": "ext",
        "LOOPWRIGHT_WORKDIR": str(tmp / "work"),
    }


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_dag_retrains_and_promotes(airflow_python: Path, world: dict[str, Any], tmp_path: Path) -> None:
    env = _env(tmp_path, world)
    (tmp_path / "dags").mkdir()
    dag_file = tmp_path / "dags" / "airflow_dag.py"
    shutil.copy(ROOT / "examples" / "airflow_dag.py", dag_file)
    migrated = _run([str(VENV / "bin" / "airflow"), "db", "migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    done = _run([str(airflow_python), str(dag_file)], env, tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"state": "success"}, done.stdout[-4000:]

    with Client(world["url"], world["tokens"]["lead"]) as lw:
        champion = lw.model("ext", "champion")
        latest = lw.dataset("ext", "latest")
        assert (champion.version, champion.name, champion.tag) == (2, "blobs", f"ds-{latest.id[:12]}")
        assert champion.dataset_version_id == latest.id
        assert champion.artifact_uri == f"s3://models/blobs/ds-{latest.id[:12]}"
        assert champion.metrics["metadata"] == {"framework": "scikit-learn", "orchestrator": "airflow"}
        assert champion.gate is not None and champion.gate["champion_version"] == 1
        assert champion.gate["challenger_accuracy"] > champion.gate["champion_accuracy"]
        n_eval = len(lw.eval_split("ext", latest.id).items)
    runs = list((tmp_path / "work").iterdir())
    assert len(runs) == 1
    exported = [json.loads(line) for line in (runs[0] / "dataset.jsonl").read_text().splitlines()]
    predictions = (runs[0] / "predictions.jsonl").read_text().splitlines()
    assert len(exported) == latest.n_items and len(predictions) == n_eval == champion.gate["n_eval"]


BAD_INPUT = """
import json
from pathlib import Path
from loopwright.errors import Invalid
from loopwright.integrations.airflow import LoopwrightSensor, read_predictions
out = []
for kwargs in ({}, {"min_new_labels": 0}):
    try:
        LoopwrightSensor(task_id="w", project="ext", **kwargs)
    except ValueError as exc:
        out.append(str(exc))
Path("bad.jsonl").write_text('{"external_id": "p1"}\\n')
for path in ("bad.jsonl", "missing.jsonl"):
    try:
        read_predictions(Path(path))
    except Invalid as exc:
        out.append(str(exc))
print(json.dumps(out))
"""


def test_bad_input(airflow_python: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = _run([str(airflow_python), "-c", BAD_INPUT], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "LoopwrightSensor waits for something: give min_new_labels=N and/or drift=True",
        "min_new_labels must be at least 1, not 0",
        "bad.jsonl:1: expected {external_id, probabilities}",
        "cannot read predictions missing.jsonl: No such file or directory",
    ]
