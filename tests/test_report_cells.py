"""The demo report's model table: training sizes with the drift bridge, and what a gate regressed on."""

from __future__ import annotations

from loopwright.cli.report import _model_row

SLICES = [
    {"slicing": "class", "slice": "0", "regressed": True},
    {"slicing": "class", "slice": "3", "regressed": False},
    {"slicing": "class", "slice": "8", "regressed": True},
    {"slicing": "source", "slice": "audit", "regressed": True},
]


def version(n: int, metrics: dict, gate: dict) -> dict:
    return {
        "version": n,
        "status": "rejected",
        "dataset_version": "ab" * 32,
        "metrics": metrics,
        "gate": gate,
    }


def test_a_bridged_challenger_shows_its_copies_and_the_slices_it_regressed_on() -> None:
    gate = {
        "test": "not_significantly_worse",
        "challenger_accuracy": 0.25,
        "champion_accuracy": 0.97,
        "wins": 4,
        "losses": 307,
        "p_value": 1e-80,
        "slices": SLICES,
    }
    metrics = {"train_size": 240, "bridge_from": 861, "bridge_synthetic": 2583}
    assert _model_row(version(17, metrics, gate), weak=17) == (
        17,
        "rejected (underfit on purpose)",
        "abababababab",
        "240 + 3 copies of 861",
        "not_significantly_worse",
        0.25,
        0.97,
        "4 / 307",
        1e-80,
        "class 0, 8; source audit",
    )


def test_the_first_model_shows_why_it_beat_the_majority_class() -> None:
    gate = {
        "test": "baseline",
        "challenger_accuracy": 0.64,
        "reason": "accuracy 0.640 beats the majority-class",
    }
    row = _model_row(version(1, {"train_size": 45}, gate), weak=17)
    assert row[1] == "rejected" and row[3] == "45" and row[6] is None and row[7] is None
    assert row[9] == "accuracy 0.640 beats the majority-class"


def test_a_gate_with_no_regressed_slice_says_none() -> None:
    gate = {
        "test": "not_significantly_worse",
        "champion_accuracy": 0.9,
        "wins": 1,
        "losses": 0,
        "slices": SLICES[1:2],
    }
    assert _model_row(version(2, {"train_size": 88}, gate), weak=None)[9] == "none"
