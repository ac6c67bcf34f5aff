"""The demo: scikit-learn's digits streamed through the loop with simulated tiered annotators."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from loopwright.api import connect
from loopwright.cli.options import certificate_json
from loopwright.config import ProjectConfig
from loopwright.domain import Route
from loopwright.errors import Invalid
from loopwright.learning import default_estimator
from loopwright.learning.augment import AugmentedTraining, apply_transform, draw_transform
from loopwright.simulate import SimulatedAnnotator, team, work

GOLD_ITEMS = 40  # pool digits set aside as gold: known answers that score the annotators


def shifted(pixels: np.ndarray) -> np.ndarray:
    """The drifted world: each 8x8 image moved one pixel right (the left column goes blank)."""
    image = np.roll(np.asarray(pixels, dtype=np.float64).reshape(8, 8), 1, axis=1)
    image[:, 0] = 0.0
    return image.ravel()


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One item of the demo stream: its source digit, and the recorded transform if synthetic."""

    external_id: str
    source: int
    transform: dict[str, float | int] | None

    def pixels(self, X: np.ndarray) -> np.ndarray:
        return X[self.source] if self.transform is None else apply_transform(X[self.source], self.transform)

    def metadata(self) -> dict[str, Any]:
        if self.transform is None:
            return {}
        return {"synthetic": True, "source": f"digit-{self.source}", "transform": self.transform}


AUGMENT_STRENGTH = 0.5  # rotation ±5°, scale ±5 %, shift ±0.3 px, noise sd ≤ 0.4 (of 16)
# Human capacity per round (260 items), by tier: bulk reviewers, escalations, the three experts
# who answer the audits. What they do not reach stays pending until a certificate covers it
# (:meth:`Loop.accept_backlog`) or someone labels it.
REVIEW_BUDGET = {1: 45, 2: 15, 3: 140}
# Once a threshold is certified the model takes most of the stream: the bulk team shrinks to
# what the new uncertain items need (under 10 % of a round).
CERTIFIED_BUDGET = {1: 20, 2: 15, 3: 140}


def round_budget(budget: dict[int, int] | None, certified: bool) -> dict[int, int] | None:
    """This round's human capacity: ``budget``, each tier capped by :data:`CERTIFIED_BUDGET`
    while a threshold is certified (None: unlimited, as given)."""
    if budget is None or not certified:
        return budget
    return {t: min(n, CERTIFIED_BUDGET.get(t, n)) for t, n in budget.items()}


def demo_stream(originals: np.ndarray, size: int, seed: int) -> list[StreamItem]:
    """Every original once plus seeded augmented copies of random originals up to ``size``,
    shuffled. Only ``originals`` (never the held-out digits) are sources. At full strength
    (±10°, ±10 %, ±0.6 px) an SVM trained on clean originals scored 0.936 on augmented held-out
    digits against 0.987 on originals; at half strength (the demo's ``AUGMENT_STRENGTH``) 0.976:
    the copies stay small transforms, and confident predictions on them stay rarely wrong."""
    rng = np.random.default_rng([seed, 14])
    items = [StreamItem(f"digit-{i}", int(i), None) for i in originals]
    for k, i in enumerate(rng.choice(originals, size=max(0, size - len(items)))):
        items.append(StreamItem(f"digit-{i}-aug{k}", int(i), draw_transform(rng, AUGMENT_STRENGTH)))
    return [items[j] for j in rng.permutation(len(items))]


def _accuracy(loop: Any, payloads: list[dict[str, Any]], truth: np.ndarray) -> float | None:
    """The champion's accuracy on the held-out digits as the current world shows them."""
    if loop.status().champion is None:
        return None
    return float(np.mean(loop.predict(payloads).argmax(axis=1).astype(str) == truth))


def _drift_summary(
    history: list[dict[str, Any]], start: int, detected: list[int], retracted: list[int]
) -> dict[str, Any]:
    """When the seeded shift began and was caught; false alarms, and which of them the next
    batch retracted; accuracy before, at the shift, and after; human labels from the shift
    until accuracy came back within 2 points."""
    before = history[start - 1]["champion_accuracy"]
    recovered = next(
        (h for h in history[start:] if before is not None and h["champion_accuracy"] >= before - 0.02), None
    )
    spent = history[start - 1]["human_labels_total"]
    return {
        "starts_round": start,
        "detected_round": next((r for r in detected if r >= start), None),
        "false_alarm_rounds": [r for r in detected if r < start],
        "retracted_rounds": retracted,
        "accuracy_before": before,
        "accuracy_at_shift": history[start]["accuracy_at_ingest"],
        "accuracy_after": history[-1]["champion_accuracy"],
        "labels_to_recover": None if recovered is None else recovered["human_labels_total"] - spent,
    }


def _cpu_seconds(release_workers: bool) -> float:
    """CPU seconds of this process and of every child it has waited for; ``release_workers``
    first ends joblib's worker processes (``retrain.processes``), so that their CPU counts."""
    if release_workers:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def underfit(config: ProjectConfig, seed: int) -> Pipeline:
    """A deliberately bad trainer: regularised so hard that it barely learns."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=1e-4, max_iter=500, random_state=seed))


def demo_config() -> ProjectConfig:
    """The shipped example ``loopwright/examples/digits.yaml``."""
    return ProjectConfig.load(Path(str(files("loopwright") / "examples" / "digits.yaml")))


@dataclass(frozen=True, slots=True)
class RoundProgress:
    round: int
    rounds: int
    items_seen: int
    human_labels: int
    champion_accuracy: float | None


ROUND_SIZE = 260
QUICK_ROUNDS, FULL_ROUNDS = 20, 80  # 5,200 and 20,800 items


def run_demo(
    out: Path,
    seed: int = 0,
    quick: bool = False,
    on_round: Callable[[RoundProgress], None] | None = None,
    *,
    augment_training: bool = True,
    bridge_drift: bool = True,
    budget: dict[int, int] | None = REVIEW_BUDGET,
) -> dict[str, Any]:
    """Run the loop round by round; write the SQLite DB to ``out`` and return the summary.

    The stream is every pool digit once plus seeded augmented copies (small affine transforms
    and noise, marked ``synthetic`` with source and transform in their metadata) up to 5,200
    items (``quick``) or 20,800. Tier 1 has four careful annotators and one sloppy one (accuracy
    0.5), whom the gold checks should pause; tier 2 three, tier 3 three experts (an audit
    answer that contradicts the model asks a second, a tie the third: ``routing.audit_answers``).
    Each round the tiers label at most ``budget[tier]`` items (None: everything; less while a
    threshold is certified: :func:`round_budget`); the rest stays pending.
    ``augment_training`` trains with seeded synthetic copies while labels are scarce (before
    600, and just after the drift), three draws of them averaged:
    :class:`~loopwright.learning.augment.AugmentedTraining`. ``bridge_drift``
    False sets the example's ``drift.bridge_copies`` to 0: after the drift, the old world's
    labels are dropped instead of carried over as shifted copies (the ablation).
    """
    return _run(out, seed, quick, on_round, augment_training, bridge_drift, budget)


def _run(
    out: Path,
    seed: int,
    quick: bool,
    on_round: Callable[[RoundProgress], None] | None,
    augment_training: bool,
    bridge_drift: bool,
    budget: dict[int, int] | None,
) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), _cpu_seconds(release_workers=False)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "loopwright.db"
    for stale in out.glob("loopwright.db*"):
        stale.unlink()
    digits = load_digits()
    X, y = digits.data, digits.target.astype(str)
    pool, held_out = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=seed)
    shuffled = np.random.default_rng(seed).permutation(pool)
    gold_ids, originals = shuffled[:GOLD_ITEMS], shuffled[GOLD_ITEMS:]
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    stream = demo_stream(originals, rounds * ROUND_SIZE, seed)
    truth = {item.external_id: y[item.source] for item in stream}
    truth.update({f"digit-{i}": y[i] for i in gold_ids})

    ws = connect(f"sqlite:///{db}")
    config = demo_config()
    if not bridge_drift:
        config = config.model_copy(update={"drift": config.drift.model_copy(update={"bridge_copies": 0})})
    loop = ws.create_project(config)
    loop.add_gold(
        {"external_id": f"digit-{i}", "payload": {"pixels": X[i].tolist()}, "label": y[i]} for i in gold_ids
    )
    annotators = team(loop.config.labels, {1: 4, 2: 3, 3: 3}, {1: 0.95, 2: 0.97, 3: 0.995}, random_state=seed)
    annotators.append(SimulatedAnnotator("t1-sloppy", (1,), 0.5, loop.config.labels, seed + 99))
    recipes: list[AugmentedTraining] = []

    def trainer(config: ProjectConfig, seed: int) -> Any:
        recipes.append(AugmentedTraining(default_estimator(config, seed), random_state=seed))
        return recipes[-1]

    paused: dict[str, str] = {}
    gold_answers = 0
    synthetic_trained = 0
    history: list[dict[str, Any]] = []
    auto_total = auto_wrong = human = 0
    drift_round = rounds // 2  # from here on the camera is off by a pixel: every image shifts right
    detected: list[int] = []
    retracted: list[int] = []
    for r in range(rounds):
        batch = stream[r * ROUND_SIZE : (r + 1) * ROUND_SIZE]
        world = shifted if r >= drift_round else (lambda pixels: pixels)
        report = loop.ingest(
            [
                {
                    "external_id": item.external_id,
                    "payload": {"pixels": world(item.pixels(X)).tolist()},
                    "metadata": item.metadata(),
                }
                for item in batch
            ]
        )
        drift = bool(report.drift and report.drift["drift"])
        if drift:
            detected.append(r)
        if report.alarm_confirmed is False:
            retracted.append(r - 1)  # this batch did not confirm the last round's alarm
        held = [{"pixels": world(X[i]).tolist()} for i in held_out]
        accuracy_at_ingest = _accuracy(loop, held, y[held_out])
        auto = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
        wrong = sum(o.label != truth[o.external_id] for o in auto)
        auto_total += len(auto)
        auto_wrong += wrong
        audited = sum(o.reason == "audit" for o in report.outcomes)
        after_ingest = loop.status()
        queues, cert = after_ingest.open_tasks_by_tier, after_ingest.certification
        certified = not drift and cert is not None and cert.threshold is not None  # drift voids it
        capacity = round_budget(budget, certified)
        labelled = work(loop, annotators, truth.__getitem__, budget=capacity)
        human += labelled.annotations
        paused.update(labelled.stopped)
        gold_answers += labelled.gold_answers
        outcome = None
        if loop.retrain_due():
            try:
                outcome = loop.retrain(trainer=trainer if augment_training else None)
                synthetic_trained += recipes[-1].synthetic_ if augment_training else 0
            except Invalid:  # too few training labels yet: audits only ever evaluate
                pass
        swept = loop.accept_backlog()  # the certificate covers the untouched backlog too
        swept_wrong = sum(label != truth[ext] for ext, label in swept.items)
        auto_total += swept.accepted
        auto_wrong += swept_wrong
        accuracy = _accuracy(loop, held, y[held_out])
        pending = sum(loop.status().open_tasks_by_tier.values())
        history.append(
            {
                "round": r,
                "items": len(batch),
                "synthetic_items": sum(item.transform is not None for item in batch),
                "auto_accepted": len(auto),
                "auto_accept_errors": wrong,
                "automation_rate": len(auto) / len(batch),
                "backlog_accepted": swept.accepted,
                "backlog_accept_errors": swept_wrong,
                "audited": audited,
                "queues": {str(t): n for t, n in sorted(queues.items())},
                "certified_threshold": None if cert is None else cert.threshold,
                "human_labels": labelled.annotations,
                "gold_answers": labelled.gold_answers,
                "human_labels_total": human,
                "pending": pending,
                "retrained": outcome is not None,
                "promoted": bool(outcome and outcome.promoted),
                "champion_accuracy": accuracy,
                "accuracy_at_ingest": accuracy_at_ingest,
                "drift_detected": drift,
            }
        )
        if on_round:
            on_round(RoundProgress(r + 1, rounds, (r + 1) * ROUND_SIZE, human, accuracy))
    # A challenger from a badly underfitting trainer (C = 1e-4): the gate must reject it.
    weak = loop.retrain(actor="demo:underfit-trainer", trainer=underfit)
    models = loop.models()
    final = loop.status()
    items_seen = int(sum(h["items"] for h in history))
    certify = loop.config.routing.certify
    summary = {
        "rounds": rounds,
        "seed": seed,
        "items_seen": items_seen,
        "synthetic_items": int(sum(h["synthetic_items"] for h in history)),
        "human_labels": human,
        "human_labels_per_item": (human + gold_answers) / items_seen,
        "pending_share": history[-1]["pending"] / items_seen,
        "review_budget": None if budget is None else {str(t): n for t, n in sorted(budget.items())},
        "synthetic_training_examples": synthetic_trained,
        "drift_bridge_copies": loop.config.drift.bridge_copies,
        "auto_accepted": auto_total,
        "backlog_accepted": int(sum(h["backlog_accepted"] for h in history)),
        "auto_accept_error": auto_wrong / auto_total if auto_total else None,
        "epsilon": None if certify is None else certify.epsilon,
        "delta": None if certify is None else certify.delta,
        "automation_by_round": [round(h["automation_rate"], 4) for h in history],
        "champion_accuracy_by_round": [h["champion_accuracy"] for h in history],
        "routing": final.routing,
        "certification": certificate_json(final.certification),
        "promotions": sum(m.promoted_at is not None for m in models),
        "drift": (drift_summary := _drift_summary(history, drift_round, detected, retracted)),
        "drift_detected_round": drift_summary["detected_round"],
        "underfit_challenger": {
            "version": weak.model.version,
            "promoted": weak.promoted,
            "reason": weak.gate.reason,
        },
        "model_versions": [
            {
                "version": m.version,
                "status": m.status.value,
                "dataset_version": m.dataset_version_id,
                "metrics": m.metrics,
                "gate": m.gate,
            }
            for m in models
        ],
        "gold_items": len(gold_ids),
        "gold_answers": gold_answers,
        "paused_annotators": paused,
        "history": history,
        "held_out_size": len(held_out),
        "database": str(db),
        "seconds": round(time.perf_counter() - started, 2),
        # wall time on a shared machine lies; this counts the worker processes that fitted draws too
        "cpu_seconds": round(_cpu_seconds(release_workers=config.retrain.processes > 1) - cpu_started, 2),
    }
    ws.close()
    return summary
