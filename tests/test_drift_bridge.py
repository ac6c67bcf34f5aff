"""The drift bridge: after a drift, the old world's labels carry over as copies moved by whole
pixels while the new world's labels are few."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_digits

from loopwright import Workspace
from loopwright.config import ProjectConfig
from loopwright.learning.augment import translate, translated_copies
from loopwright.store.sql import SqlStore

X, Y = load_digits(return_X_y=True)
LABELS = [str(d) for d in range(10)]


def config(copies: int, processes: int = 1) -> dict[str, Any]:
    return {
        "name": f"bridge{copies}" + (f"p{processes}" if processes > 1 else ""),
        "labels": LABELS,
        "modality": "image",
        "input_field": "pixels",
        "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
        "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
        "retrain": {"min_labels": 20, "eval_fraction": 0.1, "processes": processes},
        "gate": {"min_eval_items": 3},
        "drift": {"learn_since_drift": True, "bridge_copies": copies},
    }


def shifted(pixels: np.ndarray) -> np.ndarray:
    return translate(pixels, 1, 0, 8)


def test_translate_moves_whole_pixels_and_blanks_what_moves_in() -> None:
    image = np.arange(1.0, 17.0)  # 4 x 4
    assert translate(image, 1, 0, 4).reshape(4, 4).tolist()[0] == [0.0, 1.0, 2.0, 3.0]
    assert translate(image, 0, -1, 4).reshape(4, 4).tolist() == [
        [5.0, 6.0, 7.0, 8.0],
        [9.0, 10.0, 11.0, 12.0],
        [13.0, 14.0, 15.0, 16.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
    assert translate(image, 0, 0, 4).tolist() == image.tolist()
    copies, labels = translated_copies(np.stack([image, image * 2]), ["a", "b"], 3, np.random.default_rng(0))
    assert copies.shape == (6, 16) and labels.tolist() == ["a", "a", "a", "b", "b", "b"]
    again, _ = translated_copies(np.stack([image, image * 2]), ["a", "b"], 3, np.random.default_rng(0))
    assert again.tolist() == copies.tolist()  # seeded
    moves = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    neighbours = {tuple(translate(image, dx, dy, 4)) for dx, dy in moves}
    moved = [tuple(c) for c in copies[:3]]
    assert len(set(moved)) == 3 and set(moved) <= neighbours  # three different one-pixel moves
    every, _ = translated_copies(image[None, :], ["a"], 8, np.random.default_rng(1))
    assert {tuple(c) for c in every} == neighbours
    for bad in (0, 9):
        with pytest.raises(ValueError, match="1 to 8 copies"):
            translated_copies(image[None, :], ["a"], bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="square images"):
        translated_copies(np.zeros((2, 5)), ["a", "b"], 1, np.random.default_rng(0))


def test_the_bridge_needs_images_and_learning_since_the_drift() -> None:
    tabular = {**config(2), "modality": "tabular", "features": ["x"]}
    tabular.pop("input_field")
    with pytest.raises(ValidationError, match="bridge_copies moves images"):
        ProjectConfig.model_validate(tabular)
    alone = {**config(2), "drift": {"bridge_copies": 2}}
    with pytest.raises(ValidationError, match="set learn_since_drift: true"):
        ProjectConfig.model_validate(alone)


def _label_all(loop: Any) -> None:
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", a.item.external_id.split(":")[1])


def _run(
    store: SqlStore, copies: int, unseen_since: int | None = None, processes: int = 1, trainer: Any = None
) -> tuple[dict[str, Any], float]:
    """300 digits labelled in the old world, a drift, 60 shifted digits labelled (none of digit
    ``unseen_since``); the last retrain's metrics and its accuracy on 400 unseen shifted digits."""
    loop = Workspace(store).create_project(config(copies, processes))
    loop.ingest({"external_id": f"o{i}:{Y[i]}", "payload": {"pixels": X[i].tolist()}} for i in range(300))
    _label_all(loop)
    loop.retrain()
    new = loop.ingest(
        {"external_id": f"n{i}:{Y[i]}", "payload": {"pixels": shifted(X[i]).tolist()}}
        for i in range(300, 360)
        if Y[i] != unseen_since
    )
    start = min(o.item_id for o in new.outcomes)
    with store.unit_of_work() as uow:  # what the drift monitor records when it fires
        window = {"window_start_item_id": start, "window_end_item_id": start + 59}
        uow.events.add(loop.project.id, "detector", "drift.detected", "project", "bridge", window)
    _label_all(loop)
    outcome = loop.retrain(trainer=trainer)
    unseen = range(1000, 1400)
    proba = loop.predict([{"pixels": shifted(X[i]).tolist()} for i in unseen])
    accuracy = float(np.mean(np.asarray(LABELS)[proba.argmax(axis=1)] == Y[list(unseen)].astype(str)))
    return outcome.model.metrics, accuracy


def test_a_bridged_retrain_keeps_what_the_old_world_taught(store: SqlStore) -> None:
    bridged, accuracy = _run(store, copies=2)
    with store.unit_of_work() as uow:
        entries = uow.datasets.latest(1).entries
    new_ids = {e.item_id for e in entries if e.item_id > 300}
    new_train = [e for e in entries if e.item_id in new_ids and e.split.value == "train"]
    assert bridged["train_size"] == len(new_train)  # trained on the new world since the drift...
    assert bridged["bridge_from"] == 300  # ...plus every old label (old evaluation items retired)
    assert bridged["bridge_synthetic"] == 600  # 2 one-pixel moves of each
    assert bridged["bridge_draws"] == 3  # three draws of those moves, each fitted, averaged
    plain, plain_accuracy = _run(store, copies=0)
    assert "bridge_from" not in plain and plain["train_size"] == bridged["train_size"]
    assert accuracy >= 0.9 and accuracy > plain_accuracy + 0.1


def test_a_class_only_the_old_world_labelled_stays_known(store: SqlStore) -> None:
    """No 9 labelled since the drift: the bridge's copies still teach it, and the averaged model
    keeps every class its draws learned (its classes come from the fits, not the new labels)."""
    bridged, accuracy = _run(store, copies=2, unseen_since=9)
    assert bridged["bridge_draws"] == 3 and accuracy >= 0.9
    loop = Workspace(store).project("bridge2")
    nines = [i for i in range(1000, 1400) if Y[i] == 9]
    proba = loop.predict([{"pixels": shifted(X[i]).tolist()} for i in nines])
    assert np.mean(proba.argmax(axis=1) == 9) >= 0.9


def test_draws_fitted_in_worker_processes_make_the_same_model(store: SqlStore) -> None:
    """``retrain.processes``: the three draws fitted side by side give the very same probabilities."""
    unseen = [{"pixels": shifted(X[i]).tolist()} for i in range(1000, 1100)]
    probabilities = []
    for processes, name in ((1, "bridge2"), (3, "bridge2p3")):
        metrics, _ = _run(store, copies=2, processes=processes)
        assert metrics["bridge_draws"] == 3
        probabilities.append(Workspace(store).project(name).predict(unseen))
    np.testing.assert_array_equal(*probabilities)


class Locked:
    """A trainer's estimator that cannot be pickled (it holds a lock), so it cannot leave the process."""

    def __init__(self, config: ProjectConfig, seed: int) -> None:
        import threading

        from loopwright.learning import default_estimator

        self.lock, self.inner = threading.Lock(), default_estimator(config, seed)

    def fit(self, X: Any, y: Any) -> Any:
        return self.inner.fit(X, y)


def test_an_estimator_that_cannot_be_pickled_is_fitted_here(store: SqlStore) -> None:
    metrics, accuracy = _run(store, copies=2, processes=3, trainer=Locked)
    assert metrics["bridge_draws"] == 3 and accuracy >= 0.9


class Warns:
    def fit(self, X: Any, y: Any) -> Warns:
        warnings.warn("deprecated knob", FutureWarning, stacklevel=1)
        return self


def test_a_worker_fits_under_the_warning_filters_of_the_process_that_asked() -> None:
    from loopwright.loop.retrain import _fitted

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "deprecated", FutureWarning)
        asked = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _fitted(Warns(), None, None, asked)
        assert seen == []
        _fitted(Warns(), None, None)
        assert [str(w.message) for w in seen] == ["deprecated knob"]
