"""A Dagster pipeline around a loopwright project whose model lives elsewhere.

When the project emits ``model.retrain_due`` (or ``drift.detected``), the sensor starts the
``retrain`` job: export the dataset version (``dataset``), train a challenger outside loopwright
with plain scikit-learn (``challenger``), then register it, upload its predictions on the frozen
evaluation split and gate it against the champion (``model``): promoted only if it passes.

    pip install 'loopwright[dagster]' dagster-webserver
    export LOOPWRIGHT_URL=http://127.0.0.1:8000 LOOPWRIGHT_TOKEN=<a service token>
    LOOPWRIGHT_PROJECT=blobs dagster dev -f examples/dagster_pipeline.py

The project's records carry ``payload: {x, y}`` (see the README's "Your model, your pipeline").
"""

import os

from dagster import Definitions, EnvVar, asset, define_asset_job
from sklearn.linear_model import LogisticRegression

from loopwright.integrations.dagster import (
    Challenger,
    Dataset,
    LoopwrightResource,
    dataset_asset,
    dataset_config,
    event_sensor,
    model_asset,
)

PROJECT = os.environ.get("LOOPWRIGHT_PROJECT", "blobs")
MODEL_NAME = "blobs"
FEATURES = ("x", "y")

dataset = dataset_asset(PROJECT)


@asset(group_name="loopwright")
def challenger(dataset: Dataset) -> Challenger:
    """Train outside loopwright: a logistic regression on the train split, scored on eval."""
    X = [[float(r["payload"][f]) for f in FEATURES] for r in dataset.train]
    model = LogisticRegression(C=100.0, max_iter=1000).fit(X, [r["label"] for r in dataset.train])
    X_eval = [[float(i["payload"][f]) for f in FEATURES] for i in dataset.eval]
    labels = sorted(dataset.label_counts)
    predictions = {}
    for item, row in zip(dataset.eval, model.predict_proba(X_eval), strict=True):
        p = {str(c): float(v) for c, v in zip(model.classes_, row, strict=True)}
        predictions[item["external_id"]] = {label: p.get(label, 0.0) for label in labels}
    return Challenger(
        name=MODEL_NAME,
        version=f"ds-{dataset.version[:12]}",  # one challenger per dataset version
        dataset_version=dataset.version,
        predictions=predictions,
        artifact_uri=f"s3://models/{MODEL_NAME}/ds-{dataset.version[:12]}",
        metadata={"framework": "scikit-learn", "estimator": "LogisticRegression", "C": 100.0},
    )


model = model_asset(PROJECT)

retrain = define_asset_job("retrain", selection=[dataset, challenger, model])

on_events = event_sensor(
    PROJECT, retrain, actions=("model.retrain_due", "drift.detected"), run_config=dataset_config()
)

defs = Definitions(
    assets=[dataset, challenger, model],
    jobs=[retrain],
    sensors=[on_events],
    resources={
        "loopwright": LoopwrightResource(url=EnvVar("LOOPWRIGHT_URL"), token=EnvVar("LOOPWRIGHT_TOKEN"))
    },
)
