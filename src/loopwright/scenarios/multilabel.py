"""Scenario ``multilabel``: every digit gets a *set* of attributes, reviewed as a label set.

Data: scikit-learn's ``load_digits`` (1,797 real 8x8 scans; UCI Optical Recognition of
Handwritten Digits, CC BY 4.0), shipped in the scikit-learn wheel. The labels are derived from
each scan's true digit, stated plainly: ``even``, ``large`` (5-9), ``prime`` (2, 3, 5, 7) and
``round`` (a closed loop: 0, 6, 8, 9); a digit can have none, one or several.

The loop: items stream in rounds. A one-vs-rest RBF SVM (Platt-calibrated per-label probabilities)
scores each batch; an item's confidence is that of its least certain label decision, and it
auto-accepts only above a threshold certified on a uniform audit sample (set error ≤ ε with
probability ≥ 1 - δ; :func:`loopwright.routing.certify`). Everything else is ingested into a
``task: multilabel`` project and reviewed by simulated people through the review API (two
answers per item, per-label majority; a split on any label escalates to an expert). The
resolved sets train the next challenger, which the multi-label gate (micro-F1, paired
bootstrap on a frozen eval share of the human labels) promotes or rejects.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from loopwright.api import connect
from loopwright.config import ProjectConfig
from loopwright.loop.review import Assignment
from loopwright.routing.certify import certify
from loopwright.scenarios import Answer, all_annotations, fresh_db, new_resolutions, review, summary
from loopwright.tasks.gate import set_gate
from loopwright.tasks.multilabel import (
    LabelwiseDawidSkene,
    agreement,
    canonical,
    decode,
    f1_scores,
    multi_hot,
    predict_sets,
    set_confidence,
)

LABELS = ["even", "large", "prime", "round"]
ROUND_SIZE = 120
QUICK_ROUNDS, FULL_ROUNDS = 5, 11  # 600 and all 1,347 pool digits
AUDIT_RATE = 0.15
EPSILON, DELTA = 0.05, 0.1
MIN_TRAIN = 40


def attributes(digit: int) -> list[str]:
    """The derived label set of a digit."""
    found = {
        "even": digit % 2 == 0,
        "large": digit >= 5,
        "prime": digit in (2, 3, 5, 7),
        "round": digit in (0, 6, 8, 9),
    }
    return [label for label in LABELS if found[label]]


def config() -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "name": "multilabel-digits",
            "labels": LABELS,
            "task": "multilabel",
            "modality": "image",
            "input_field": "pixels",
            "model": {"kind": "external"},  # scored here, per label: see the module docstring
            "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
            "tiers": [
                {"tier": 1, "name": "bulk", "required_annotations": 2},
                {"tier": 2, "name": "expert", "required_annotations": 1},
            ],
            "consensus": {"method": "majority", "min_agreement": 0.5},
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


def _model(seed: int) -> OneVsRestClassifier:
    """One RBF SVM per label, Platt-calibrated: per-label probabilities."""
    return OneVsRestClassifier(
        make_pipeline(StandardScaler(), SVC(C=10.0, probability=True, random_state=seed))
    )


def run(out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the scenario; write the SQLite DB and the dataset export to ``out``; the summary."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # one-class label columns early on
        warnings.filterwarnings("ignore", "The `probability` parameter", FutureWarning)
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
    loop = ws.create_project(config())
    reviewers = [SetReviewer(f"t1-{k}", (1,), 0.93, truth, seed * 100 + k) for k in range(4)]
    reviewers.append(SetReviewer("expert", (2,), 0.99, truth, seed * 100 + 9))
    champion: OneVsRestClassifier | None = None
    audit_conf: list[float] = []
    audit_ok: list[bool] = []
    human: dict[int, str] = {}  # pool index → resolved set
    eval_ids: set[int] = set()
    index_of: dict[int, int] = {}  # item id → pool index
    after = human_labels = auto_total = auto_wrong = promotions = 0
    history: list[dict[str, Any]] = []
    for r in range(rounds):
        batch = stream[r * ROUND_SIZE : (r + 1) * ROUND_SIZE]
        audited = rng.random(len(batch)) < AUDIT_RATE
        cert = certify(audit_conf, audit_ok, EPSILON, DELTA) if audit_conf else None
        auto = np.zeros(len(batch), dtype=bool)
        predicted: list[str | None] = [None] * len(batch)
        conf = np.zeros(len(batch))
        if champion is not None:
            P = champion.predict_proba(X[batch])
            conf = set_confidence(P)
            predicted = list(predict_sets(P, LABELS))
            if cert is not None and cert.threshold is not None:
                auto = (conf >= cert.threshold) & ~audited
        wrong = sum(predicted[k] != truth[f"digit-{i}"] for k, i in enumerate(batch) if auto[k])
        auto_total, auto_wrong = auto_total + int(auto.sum()), auto_wrong + wrong
        to_review = [int(i) for k, i in enumerate(batch) if not auto[k]]
        report = loop.ingest(
            [{"external_id": f"digit-{i}", "payload": {"pixels": X[i].tolist()}} for i in to_review]
        )
        index_of.update((o.item_id, int(o.external_id.removeprefix("digit-"))) for o in report.outcomes)
        log = review(loop, reviewers)
        human_labels += log.annotations
        resolved, after = new_resolutions(loop, after)
        for item_id, label in resolved.items():
            i = index_of[item_id]
            human[i] = label
            if rng.random() < 0.2:
                eval_ids.add(i)  # frozen: evaluates gates, never trains
        for k, i in enumerate(batch):
            if audited[k] and predicted[k] is not None and int(i) in human:
                audit_conf.append(float(conf[k]))
                audit_ok.append(predicted[k] == human[int(i)])
        train = [i for i in human if i not in eval_ids]
        gate_row: dict[str, Any] | None = None
        if len(train) >= MIN_TRAIN:
            Y_train = multi_hot([human[i] for i in train], LABELS)
            challenger = _model(seed).fit(X[train], Y_train)
            evals = sorted(eval_ids)
            Y_eval = multi_hot([human[i] for i in evals], LABELS)
            verdict = set_gate(
                Y_eval,
                challenger.predict(X[evals]),
                None if champion is None else champion.predict(X[evals]),
                random_state=seed,
            )
            gate_row = verdict.as_dict()
            if verdict.passed:
                champion, promotions = challenger, promotions + 1
        held_f1 = None if champion is None else f1_scores(Y_held, champion.predict(X[held_out]))
        history.append(
            {
                "round": r,
                "items": len(batch),
                "auto_accepted": int(auto.sum()),
                "auto_accept_errors": int(wrong),
                "reviewed": len(to_review),
                "human_labels": log.annotations,
                "certified_threshold": None if cert is None else cert.threshold,
                "certificate": None if cert is None else cert.reason,
                "gate": gate_row,
                "held_out_micro_f1": None if held_f1 is None else round(held_f1[0], 4),
            }
        )
    final = f1_scores(Y_held, champion.predict(X[held_out])) if champion is not None else (None, None)
    votes = all_annotations(loop)
    items, workers, answers = zip(*votes, strict=True)
    ds = LabelwiseDawidSkene(LABELS).fit(items, workers, answers)
    ext = {str(item_id): f"digit-{i}" for item_id, i in index_of.items()}
    ds_exact = float(np.mean([s == truth[ext[item]] for item, s in zip(ds.items_, ds.labels_, strict=True)]))
    resolved_exact = float(np.mean([human[i] == truth[f"digit-{i}"] for i in human]))
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
        promotions=promotions,
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
