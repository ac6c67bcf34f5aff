"""Dagster: the example pipeline (examples/dagster_pipeline.py) run with Dagster's own test
utilities (``build_sensor_context``, ``materialize``) against a real loopwright server.

The world (tests/integration_world.py): project ``ext`` with ``blobs@v1`` in production and a
``model.retrain_due`` naming a dataset version. The sensor turns that event into one run
request; materialising the job's assets with its run config exports that dataset version,
trains a challenger with scikit-learn on both features, registers it, uploads its eval
predictions and gates it: it beats v1 and is promoted. The sensor then sees ``model.promoted``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration_world import PROJECT, Served, load_example, require, serve
from loopwright import Client, Invalid
from loopwright.client import ApiError

pytestmark = pytest.mark.integrations


@pytest.fixture(scope="module")
def dg() -> Any:
    return require("dagster", "dagster")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(f"sqlite:///{tmp_path / 'lw.db'}") as s:
        yield s


@pytest.fixture
def example(dg: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LOOPWRIGHT_PROJECT", PROJECT)
    return load_example("dagster_pipeline")


def _resources(example: Any, served: Served, user: str = "svc") -> dict[str, Any]:
    return {"loopwright": example.LoopwrightResource(url=served.url, token=served.tokens[user])}


def test_sensor_to_promotion(dg: Any, example: Any, served: Served) -> None:
    resources = _resources(example, served)
    with Client(served.url, served.tokens["svc"]) as lw:
        due = [e for e in lw.events(PROJECT, limit=1000).events if e.action == "model.retrain_due"]
        last = lw.events(PROJECT, limit=1000).events[-1].id

    # The sensor: one run request for the retrain_due event, the cursor at the last event.
    context = dg.build_sensor_context(resources=resources)
    requests = example.on_events(context)
    assert [r.run_key for r in requests] == [f"{PROJECT}:evt_{due[0].id}"]
    request = requests[0]
    assert request.run_config == {"ops": {"dataset": {"config": {"ref": served.dataset}}}}
    assert request.tags == {
        "loopwright/project": PROJECT,
        "loopwright/event": "model.retrain_due",
        "loopwright/event_id": str(due[0].id),
    }
    assert context.cursor == str(last)
    again = dg.build_sensor_context(resources=resources, cursor=context.cursor)
    skipped = example.on_events(again)
    assert isinstance(skipped, dg.SkipReason) and f"after event {last}" in skipped.skip_message

    # The run: export -> train with scikit-learn -> register -> upload -> gate -> promoted.
    assets = [example.dataset, example.challenger, example.model]
    result = dg.materialize(assets, run_config=request.run_config, resources=resources)
    assert result.success
    data = result.output_for_node("dataset")
    assert data.version == served.dataset and data.train and data.eval
    assert all("label" in r for r in data.train) and all("label" not in i for i in data.eval)
    gated = result.output_for_node("model")
    ref = f"blobs@ds-{served.dataset[:12]}"
    assert gated["promoted"] is True and gated["model"]["status"] == "champion"
    assert gated["gate"]["champion_version"] == 1 and gated["gate"]["passed"] is True
    assert gated["gate"]["challenger_accuracy"] > gated["gate"]["champion_accuracy"]
    assert gated["gate"]["n_eval"] == len(data.eval)
    events = result.get_asset_materialization_events()
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in events}
    assert meta["dataset"]["dataset_version"].value == served.dataset
    assert meta["model"]["promoted"].value is True and meta["model"]["model"].value == ref
    with Client(served.url, served.tokens["lead"]) as lw:
        champion = lw.model(PROJECT, "champion")
        assert (champion.name, champion.tag, champion.version) == ("blobs", f"ds-{served.dataset[:12]}", 2)
        assert champion.artifact_uri == f"s3://models/blobs/ds-{served.dataset[:12]}"
        assert champion.dataset_version_id == served.dataset

    # A rerun of the same run reports the recorded verdict and changes nothing.
    rerun = dg.materialize(assets, run_config=request.run_config, resources=resources)
    assert rerun.output_for_node("model")["model"]["version"] == 2
    with Client(served.url, served.tokens["lead"]) as lw:
        assert [(m.version, m.status, m.aliases) for m in lw.models(PROJECT)] == [
            (1, "retired", ["previous"]),
            (2, "champion", ["champion"]),
        ]

    # A sensor on every default action, from the old cursor, now sees the promotion.
    watch = example.event_sensor(PROJECT, example.retrain, name="watch")
    later = watch(dg.build_sensor_context(resources=resources, cursor=str(last)))
    assert [r.tags["loopwright/event"] for r in later] == ["model.promoted"]


def test_bad_input(dg: Any, example: Any, served: Served) -> None:
    with pytest.raises(ValueError, match="actions must be event actions"):
        example.event_sensor(PROJECT, example.retrain, actions=())
    with pytest.raises(ValueError, match="actions must be event actions"):
        example.event_sensor(PROJECT, example.retrain, actions=("retrain",))
    assets = [example.dataset]
    config = {"ops": {"dataset": {"config": {"ref": "abc"}}}}
    with pytest.raises(Invalid, match="too short"):
        dg.materialize(assets, run_config=config, resources=_resources(example, served))
    bad = {"loopwright": example.LoopwrightResource(url=served.url, token="not-a-token")}
    with pytest.raises(ApiError, match="401"):
        example.on_events(dg.build_sensor_context(resources=bad))
