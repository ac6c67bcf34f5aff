"""An Airflow DAG around a loopwright project whose model lives elsewhere.

wait for new labels (or drift) -> snapshot -> export the dataset version and its eval split ->
train a challenger with plain scikit-learn -> register it with its eval predictions -> gate it
(promoted only if it beats the champion).

    pip install 'loopwright[airflow]'     # Airflow 3, best in a virtualenv of its own
    export AIRFLOW_CONN_LOOPWRIGHT_DEFAULT='{"conn_type": "http", "host": "127.0.0.1",
        "port": 8000, "password": "<a lead token>"}'
    cp examples/airflow_dag.py "$AIRFLOW_HOME/dags/"    # or: python examples/airflow_dag.py (dag.test())

``LOOPWRIGHT_PROJECT`` names the project (records carry ``payload: {x, y}``) and
``LOOPWRIGHT_WORKDIR`` where the files go.
"""

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from loopwright.integrations.airflow import (
    LoopwrightExportOperator,
    LoopwrightPromoteOperator,
    LoopwrightRegisterChallengerOperator,
    LoopwrightSensor,
    LoopwrightSnapshotOperator,
)

PROJECT = os.environ.get("LOOPWRIGHT_PROJECT", "blobs")
WORKDIR = os.environ.get("LOOPWRIGHT_WORKDIR", "/tmp/loopwright-airflow")
MODEL_NAME = "blobs"
FEATURES = ("x", "y")
RUN_DIR = WORKDIR + "/{{ run_id | replace(':', '_') | replace('+', '_') }}"
DATASET = "{{ ti.xcom_pull(task_ids='snapshot') }}"
CHALLENGER = MODEL_NAME + "@ds-{{ ti.xcom_pull(task_ids='snapshot')[:12] }}"

with DAG(
    "loopwright_retrain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["loopwright"],
) as dag:
    wait = LoopwrightSensor(
        task_id="wait", project=PROJECT, min_new_labels=40, drift=True, poke_interval=60, timeout=6 * 3600
    )
    snapshot = LoopwrightSnapshotOperator(task_id="snapshot", project=PROJECT)
    export = LoopwrightExportOperator(
        task_id="export",
        project=PROJECT,
        ref=DATASET,
        path=RUN_DIR + "/dataset.jsonl",
        eval_path=RUN_DIR + "/eval.jsonl",
    )

    @task
    def train(exported: dict) -> str:
        """Train outside loopwright: a logistic regression on the train split, scored on eval."""
        from sklearn.linear_model import LogisticRegression

        rows = [json.loads(line) for line in Path(exported["path"]).read_text().splitlines()]
        train_rows = [r for r in rows if r["split"] == "train"]
        labels = sorted({r["label"] for r in rows})
        X = [[float(r["payload"][f]) for f in FEATURES] for r in train_rows]
        model = LogisticRegression(C=100.0, max_iter=1000).fit(X, [r["label"] for r in train_rows])
        evals = [json.loads(line) for line in Path(exported["eval_path"]).read_text().splitlines()]
        proba = model.predict_proba([[float(i["payload"][f]) for f in FEATURES] for i in evals])
        out = Path(exported["path"]).with_name("predictions.jsonl")
        with out.open("w") as fh:
            for item, row in zip(evals, proba, strict=True):
                p = {str(c): float(v) for c, v in zip(model.classes_, row, strict=True)}
                probabilities = {label: p.get(label, 0.0) for label in labels}
                fh.write(
                    json.dumps({"external_id": item["external_id"], "probabilities": probabilities}) + "\n"
                )
        return str(out)

    trained = train(export.output)
    register = LoopwrightRegisterChallengerOperator(
        task_id="register",
        project=PROJECT,
        model=CHALLENGER,
        dataset_version=DATASET,
        predictions_path="{{ ti.xcom_pull(task_ids='train') }}",
        artifact_uri="s3://models/" + CHALLENGER.replace("@", "/"),
        metadata={"framework": "scikit-learn", "orchestrator": "airflow"},
    )
    promote = LoopwrightPromoteOperator(task_id="promote", project=PROJECT, model=CHALLENGER)

    wait >> snapshot >> export
    trained >> register >> promote


if __name__ == "__main__":
    run = dag.test()
    print(json.dumps({"state": str(run.state) if run else None}))
