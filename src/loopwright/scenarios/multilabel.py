"""Scenario ``multilabel``: every digit gets a *set* of attributes, reviewed as a label set.

Data: scikit-learn's ``load_digits`` (1,797 real 8x8 scans; UCI Optical Recognition of
Handwritten Digits, CC BY 4.0), shipped in the scikit-learn wheel. The labels are derived from
each scan's true digit, stated plainly: ``even``, ``large`` (5-9), ``prime`` (2, 3, 5, 7) and
``round`` (a closed loop: 0, 6, 8, 9); a digit can have none, one or several.

The loop is the project's own (``task: multilabel``, ``model.kind: default``): items stream in
rounds into ``loop.ingest``; the built-in one-vs-rest RBF SVM (Platt-calibrated per-label
probabilities) scores them; an item's confidence is that of its least certain label decision
and it auto-accepts only above the threshold certified on the project's uniform audit sample
(whole-set error ≤ ε with probability ≥ 1 - δ). Everything else is reviewed by simulated people
through the review API (two answers per item, per-label majority; a split on any label
escalates to an expert). ``loop.maybe_retrain`` trains the challenger on the resolved sets
(multi-hot) and the multi-label gate (micro-F1, paired bootstrap on the frozen eval split)
promotes or rejects it.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from loopwright.api import connect
from loopwright.config import ProjectConfig
from loopwright.domain import Route
from loopwright.loop.review import Assignment
from loopwright.scenarios import Answer, all_annotations, fresh_db, new_resolutions, review, summary
from loopwright.tasks.multilabel import (
    LabelwiseDawidSkene,
    agreement,
    canonical,
    decode,
    f1_scores,
    multi_hot,
)

LABELS = ["even", "large", "prime", "round"]
ROUND_SIZE = 120
QUICK_ROUNDS, FULL_ROUNDS = 5, 11  # 600 and all 1,347 pool digits
AUDIT_RATE = 0.25
EPSILON, DELTA = 0.1, 0.1  # on whole sets of four decisions: ~2.6 % per decision
MIN_TRAIN = 20  # the first retrain comes at ROUND_SIZE // 2 resolved sets, 60 % of them training


def attributes(digit: int) -> list[str]:
    """The derived label set of a digit."""
    found = {
        "even": digit % 2 == 0,
        "large": digit >= 5,
        "prime": digit in (2, 3, 5, 7),
        "round": digit in (0, 6, 8, 9),
    }
    return [label for label in LABELS if found[label]]


def config(seed: int = 0) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "name": "multilabel-digits",
            "labels": LABELS,
            "task": "multilabel",
            "modality": "image",
            "input_field": "pixels",
            "model": {"kind": "default", "params": {"C": 10.0}},  # one-vs-rest RBF SVMs, Platt-calibrated
            "routing": {
                "audit_rate": AUDIT_RATE,
                "certify": {"epsilon": EPSILON, "delta": DELTA, "min_evidence": 38},  # 1 error may pass
                "bands": [{"min_confidence": 0.0, "tier": 1}],
            },
            "tiers": [
                {"tier": 1, "name": "bulk", "required_annotations": 2},
                {"tier": 2, "name": "expert", "required_annotations": 1},
            ],
            "consensus": {"method": "majority", "min_agreement": 0.5},
            "active": {"strategy": "least-confidence"},  # the set confidence orders the queue
            "retrain": {"every_n_labels": ROUND_SIZE // 2, "min_labels": MIN_TRAIN, "seed": seed},
            "guidelines": "Tick every attribute the digit has: even, large (5-9), prime (2, 3, 5, 7), "
            "round (a closed loop: 0, 6, 8, 9). None may apply.",
        }
    )


class SetReviewer:
    """A simulated person: each label decision right with probability ``accuracy``."""

    def __init__(self, name: str, tiers: tuple[int, ...], accuracy: float, truth: dict[str, str], seed: int):
        self.name, self.tiers, self.accuracy, self.truth = name, tiers, accuracy, truth
        self.rng = np.random.default_rng(seed)

    def review(self, assignment: Assignment) -> Answer:
        held = set(decode(self.truth[assignment.item.external_id]))
        flips = self.rng.random(len(LABELS)) > self.accuracy
        said = [label for label, flip in zip(LABELS, flips, strict=True) if (label in held) != flip]
        return canonical(said), False, None


def run(out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the scenario; write the SQLite DB and the dataset export to ``out``; the summary."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # one-class label columns early on
        return _run(out, seed, quick)


def _run(out: Path, seed: int, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    pool, held_out = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=seed)
    rng = np.random.default_rng([seed, 18])
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    stream = rng.permutation(pool)[: rounds * ROUND_SIZE]
    truth = {f"digit-{i}": canonical(attributes(int(y[i]))) for i in stream}
    Y_held = multi_hot([canonical(attributes(int(y[i]))) for i in held_out], LABELS)
    ws = connect(fresh_db(out))
    loop = ws.create_project(config(seed))
    reviewers = [SetReviewer(f"t1-{k}", (1,), 0.93, truth, seed * 100 + k) for k in range(4)]
    reviewers.append(SetReviewer("expert", (2,), 0.99, truth, seed * 100 + 9))
    human: dict[str, str] = {}  # external id → resolved set
    index_of: dict[int, str] = {}  # item id → external id
    after = human_labels = auto_total = auto_wrong = 0
    history: list[dict[str, Any]] = []
    for r in range(rounds):
        batch = stream[r * ROUND_SIZE : (r + 1) * ROUND_SIZE]
        report = loop.ingest(
            [{"external_id": f"digit-{i}", "payload": {"pixels": X[i].tolist()}} for i in batch]
        )
        index_of.update((o.item_id, o.external_id) for o in report.outcomes)
        auto = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
        wrong = sum(o.label != truth[o.external_id] for o in auto)
        auto_total, auto_wrong = auto_total + len(auto), auto_wrong + wrong
        log = review(loop, reviewers)
        human_labels += log.annotations
        resolved, after = new_resolutions(loop, after)
        human.update((index_of[item_id], label) for item_id, label in resolved.items())
        outcome = loop.maybe_retrain()
        cert = loop.status().certification
        held_f1 = _held_f1(loop, X[held_out], Y_held)
        history.append(
            {
                "round": r,
                "items": len(batch),
                "auto_accepted": len(auto),
                "auto_accept_errors": int(wrong),
                "reviewed": len(batch) - len(auto),
                "human_labels": log.annotations,
                "certified_threshold": None if cert is None else cert.threshold,
                "certificate": None if cert is None else cert.reason,
                "gate": None if outcome is None else outcome.gate.as_dict(),
                "held_out_micro_f1": None if held_f1 is None else round(held_f1[0], 4),
            }
        )
    final = _held_f1(loop, X[held_out], Y_held) or (None, None)
    votes = all_annotations(loop)
    items, workers, answers = zip(*votes, strict=True)
    ds = LabelwiseDawidSkene(LABELS).fit(items, workers, answers)
    ext = {str(item_id): e for item_id, e in index_of.items()}
    ds_exact = float(np.mean([s == truth[ext[item]] for item, s in zip(ds.items_, ds.labels_, strict=True)]))
    resolved_exact = float(np.mean([label == truth[e] for e, label in human.items()]))
    version = loop.snapshot()
    export = loop.export_dataset(version.id, "jsonl", out)
    result = summary(
        "multilabel",
        items_seen=len(stream),
        human_labels=human_labels,
        auto_accepted=auto_total,
        auto_accept_errors=auto_wrong,
        metric="held_out_micro_f1",
        value=None if final[0] is None else round(final[0], 4),
        held_out_macro_f1=None if final[1] is None else round(final[1], 4),
        held_out_size=len(held_out),
        seed=seed,
        quick=quick,
        epsilon=EPSILON,
        delta=DELTA,
        promotions=sum(m.promoted_at is not None for m in loop.models()),
        resolved_items=len(human),
        resolved_set_accuracy=round(resolved_exact, 4),
        labelwise_dawid_skene_set_accuracy=round(ds_exact, 4),
        agreement=agreement(items, workers, answers, LABELS),
        history=history,
        data="scikit-learn load_digits (UCI Optical Recognition of Handwritten Digits, CC BY 4.0); "
        "label sets derived from the true digit: even, large (5-9), prime, round (0, 6, 8, 9)",
        export=str(export),
        database=str(out / "loopwright.db"),
        seconds=round(time.perf_counter() - started, 2),
    )
    ws.close()
    return result


def _held_f1(loop: Any, X: Any, Y: Any) -> tuple[float, float] | None:
    """(micro, macro) F1 of the champion's sets on the held-out digits; None without a champion."""
    if loop.status().champion is None:
        return None
    P = loop.predict([{"pixels": row.tolist()} for row in X])
    return f1_scores(Y, P >= 0.5)
