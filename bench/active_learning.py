"""Label savings: labels each strategy needs to reach 95 % of full-data accuracy, against random.

digits, TREC questions (both tuned on before) and SMS spam (never tuned on), seeds 0-2, oracle
annotators, the same held-out split, seed sets and model for every strategy. The headline is
the labels at which the *mean* curve over seeds reaches the target (the median over seeds is
shown too). modAL's and scikit-activeml's margin sampling run through the same loop when
importable (bench venv, see bench/README.md).
``python bench/active_learning.py [--strategies a,b] [dataset ...]`` runs some data sets (some
strategies: the other rows are kept, with the time they ran) and merges them into the last results.
Writes results/active_learning.{json,md,png}.
"""

from __future__ import annotations

import csv
import json
import platform
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.active.experiment import Simulation, digits, simulate, text_config
from loopwright.active.strategies import STRATEGIES, Strategy
from loopwright.config import ProjectConfig
from loopwright.learning.estimators import default_estimator

RESULTS = Path(__file__).resolve().parent / "results"
TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
TREC = TEXT / "trec_questions.csv"
SMS = TEXT / "sms_spam.csv"
SEEDS = list(range(3))
STRATEGIES_RUN = ("random", "margin", "hybrid", "kcenter", "auto")
# budget: labels per seed (seed set included); every seed runs to it (mean curves)
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"budget": 600, "batch": 10, "target": "0.95"},
    # batch 100 and no kcenter (worse than random on TREC in every earlier run): the run must fit
    # in a shared machine's time; labels to target are then multiples of 100 (plus the seed set)
    "trec": {"budget": 2106, "batch": 100, "target": "0.95", "skip": ["kcenter"]},
    "sms (unseen)": {"budget": 600, "batch": 20, "target": "0.95"},
}


class ModalMargin:
    """modAL's ``margin_sampling`` on the same fitted model (random while no model exists)."""

    name = "modAL margin"

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        from modAL.uncertainty import margin_sampling

        if model is None:
            return np.asarray(rng.choice(len(X_pool), batch, replace=False), dtype=np.intp)
        return np.asarray(margin_sampling(model, X_pool, n_instances=batch)[0], dtype=np.intp)


def _rows(texts: list[str], idx: NDArray[Any]) -> list[str]:
    return [texts[int(i)] for i in np.asarray(idx).ravel()]


class SkactivemlMargin:
    """scikit-activeml's ``UncertaintySampling(method="margin_sampling")``, fitting the same model
    (text goes in as row numbers that a ``FunctionTransformer`` turns back into strings)."""

    name = "scikit-activeml margin"

    def __init__(self, config: ProjectConfig, classes: list[str]) -> None:
        self.config, self.classes = config, classes

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        from skactiveml.classifier import SklearnClassifier
        from skactiveml.pool import UncertaintySampling
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        seed = int(rng.integers(2**31))
        estimator = default_estimator(self.config, seed)
        n_lab = len(X_labelled)
        if isinstance(X_pool, list):
            texts = [*X_labelled, *X_pool]
            X = np.arange(len(texts)).reshape(-1, 1)
            estimator = make_pipeline(
                FunctionTransformer(partial(_rows, texts)), *estimator.named_steps.values()
            )
        else:
            X = np.vstack([X_labelled, X_pool])
        code = {c: float(i) for i, c in enumerate(self.classes)}
        y = np.full(len(X), np.nan)
        y[:n_lab] = [code[c] for c in np.asarray(y_labelled).tolist()]
        clf = SklearnClassifier(
            estimator, classes=np.arange(len(self.classes), dtype=float), random_state=seed
        )
        query = UncertaintySampling(method="margin_sampling", random_state=seed)
        picks = query.query(X, y, clf, batch_size=batch)
        return np.asarray(picks, dtype=np.intp) - n_lab


def load_digits_set() -> tuple[Any, list[str], ProjectConfig]:
    X, y, config = digits()
    return X, y.tolist(), config


def load_text(path: Path) -> tuple[list[str], list[str], ProjectConfig]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = [r["label"] for r in rows]
    return [r["text"] for r in rows], labels, text_config(labels)


def peers(config: ProjectConfig, classes: list[str]) -> list[Strategy]:
    found: list[Strategy] = []
    try:
        import modAL  # noqa: F401

        found.append(ModalMargin())
    except ImportError:
        print("modAL not importable: skipped", file=sys.stderr)
    try:
        import skactiveml  # noqa: F401

        found.append(SkactivemlMargin(config, classes))
    except ImportError:
        print("scikit-activeml not importable: skipped", file=sys.stderr)
    return found


def mean_reach(curve: list[list[float]], goal: float) -> int | None:
    """Labels at the first point of the mean curve at or above ``goal``."""
    return next((int(n) for n, acc in curve if acc >= goal), None)


def mean_curve(sim: Simulation) -> list[list[float]]:
    """Mean accuracy over seeds at each label count every seed reached."""
    shortest = min(len(r.curve) for r in sim.runs)
    return [
        [sim.runs[0].curve[i][0], round(float(np.mean([r.curve[i][1] for r in sim.runs])), 4)]
        for i in range(shortest)
    ]


def run_dataset(
    name: str, X: Any, y: list[str], config: ProjectConfig, only: list[str] | None, old: dict[str, Any]
) -> dict[str, Any]:
    """Run the data set's strategies (``only`` those when given, keeping ``old``'s other rows)."""
    spec = DATASETS[name]
    target = spec["target"]
    run = [s for s in STRATEGIES_RUN if s not in spec.get("skip", [])]
    candidates: list[str | Strategy] = (
        [s for s in run if s in only] if only else [*run, *peers(config, sorted(set(y)))]
    )
    assert set(STRATEGIES_RUN) <= set(STRATEGIES)
    out: dict[str, Any] = {"budget": spec["budget"], "batch": spec["batch"], "target": float(target)}
    rows: dict[str, Any] = dict(old.get("strategies", {})) if only else {}
    if only:
        assert (old["budget"], old["batch"]) == (spec["budget"], spec["batch"]), "protocol changed: rerun all"
        out["full_accuracy"] = old["full_accuracy"]
    for strategy in candidates:
        start = time.perf_counter()
        sim = simulate(X, y, config, strategy, spec["budget"], spec["batch"], SEEDS, dataset=name)
        seconds = time.perf_counter() - start
        if only:
            assert sim.full_accuracy == out["full_accuracy"], "full-data accuracy changed: rerun all"
        out["full_accuracy"] = sim.full_accuracy
        curve = mean_curve(sim)
        rows[sim.strategy] = {
            "labels_to_target": mean_reach(curve, float(target) * sim.full_accuracy),
            "median_labels_to_target": sim.labels_to_target[target],
            "per_seed": [r.labels_to_target[target] for r in sim.runs],
            "seconds": round(seconds, 1),
            "run_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "mean_curve": curve,
        }
        print(f"{name} {sim.strategy}: {rows[sim.strategy]['per_seed']} in {seconds:.0f} s", file=sys.stderr)
    for row in rows.values():  # the earlier protocol used 98 % on digits: shown alongside
        row["labels_to_98"] = mean_reach(row["mean_curve"], 0.98 * out["full_accuracy"])
    for key, saving in (
        ("labels_to_target", "savings_vs_random"),
        ("median_labels_to_target", "median_savings"),
        ("labels_to_98", "savings_98"),
    ):
        base = rows["random"][key]
        for row in rows.values():
            need = row[key]
            row[saving] = None if need is None or base is None else round(1 - need / base, 3)
    out["strategies"] = rows
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Active learning: labels to reach a share of full-data accuracy",
        "",
        f"Seeds {SEEDS[0]}-{SEEDS[-1]}; **labels to target: where the mean curve over seeds first "
        "reaches 95 % of full-data accuracy**, and the median over seeds of each seed's own count (a "
        "seed that never reaches it counts as infinite); oracle annotators; one stratified 25 % "
        "held-out split, never selected from. `auto` (the default) is an explore-then-commit "
        "bandit with margin as the incumbent: warm batches alternate margin and hybrid until hybrid "
        "has had 2, each scored by how much it changed the model (share of the pool whose predicted "
        "label flips) against the margin batches either side; hybrid keeps the budget only if it "
        "led by 1.25x both times, else margin does. SMS spam was never used to tune anything. "
        "The issue's earlier digits figures (63-75 %) came from another protocol (98 % of a "
        "logistic-regression model's 0.973, median of seeds 0-4, budget 1200): the 98 % columns "
        "show that target on today's curves. Rows carry the time they ran; rows of strategies "
        "whose code did not change were kept from the earlier run (same seeds, split and model). "
        "Full-data accuracy: the same model on every pool item with its true label. "
        "Each seed starts from as many random labels as there are classes. "
        f"Machine: {results['machine']}.",
    ]
    for name, data in results["datasets"].items():
        goal = data["target"] * data["full_accuracy"]
        lines += [
            "",
            f"## {name}: {data['target']:.0%} of full accuracy {data['full_accuracy']:.3f} = {goal:.3f} "
            f"(batch {data['batch']}, budget {data['budget']})",
            "",
            "| strategy | labels to target (mean curve) | saved vs random | median of seeds | per seed "
            "| saved vs random (median) | labels to 98 % (mean curve) | saved (98 %) | seconds | run |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for strategy, row in data["strategies"].items():
            saving, median_saving = row["savings_vs_random"], row["median_savings"]
            saving_98 = row["savings_98"]
            lines.append(
                f"| {strategy} | {row['labels_to_target'] or 'not reached'} | "
                f"{'n/a' if saving is None else f'{saving:.0%}'} | "
                f"{row['median_labels_to_target'] or 'not reached'} | "
                f"{', '.join('-' if v is None else str(v) for v in row['per_seed'])} | "
                f"{'n/a' if median_saving is None else f'{median_saving:.0%}'} | "
                f"{row['labels_to_98'] or 'not reached'} | "
                f"{'n/a' if saving_98 is None else f'{saving_98:.0%}'} | "
                f"{row['seconds']} | {row.get('run_at', 'before 08:00 UTC')} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results["datasets"]), figsize=(12, 4.5))
    for ax, (name, data) in zip(np.atleast_1d(axes), results["datasets"].items(), strict=True):
        for strategy, row in data["strategies"].items():
            curve = np.asarray(row["mean_curve"])
            ax.plot(curve[:, 0], curve[:, 1], label=strategy, lw=2 if strategy in ("random", "auto") else 1)
        ax.axhline(data["target"] * data["full_accuracy"], color="k", ls="--", lw=0.8, label="target")
        ax.set(title=f"{name} (mean of seeds while all run)", xlabel="labels", ylabel="held-out accuracy")
        ax.set_ylim(max(0.5, 0.8 * data["full_accuracy"]), 1.0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    loaders = {
        "digits": load_digits_set,
        "trec": lambda: load_text(TREC),
        "sms (unseen)": lambda: load_text(SMS),
    }
    args = sys.argv[1:]
    strategies = None
    if args[:1] == ["--strategies"]:
        strategies, args = args[1].split(","), args[2:]
    only = args or list(loaders)
    old = RESULTS / "active_learning.json"
    merged = json.loads(old.read_text())["datasets"] if (args or strategies) and old.exists() else {}
    merged = {k: v for k, v in merged.items() if "median_savings" in next(iter(v["strategies"].values()))}
    for name in only:
        merged[name] = run_dataset(name, *loaders[name](), strategies, merged.get(name, {}))
    results = {
        "machine": f"{platform.python_version()}, {platform.machine()}, 2 shared cores",
        "seeds": SEEDS,
        "datasets": {name: merged[name] for name in loaders if name in merged},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "active_learning.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "active_learning.md").write_text(markdown(results))
    plot(results, RESULTS / "active_learning.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
