"""A low-budget cold start for active learning on digits: tried, not kept.

Issue 14 asks ``auto`` to save 75 % of digits labels against random at 95 % of full-data accuracy;
it saves 58 % with the image SVM's C = 3 (32 % with C = 1, ``results/active_learning.md``): random
needs 190 labels on the mean curve, so 75 % would mean about 48. Hacohen, Dekel & Weinshall (ICML
2022, "TypiClust") show that with budgets this small picking *typical* points of uncovered k-means
clusters beats uncertainty. This probe replaces ``auto``'s cold start (k-means++ until 2 x classes
labels) with TypiClust until ``--until`` labels, then hands over to ``auto``; the same seeds,
split, model and batch as the active-learning benchmark, five seeds, each stopped once it reaches
the target. It also asks what 48 labels can do at all: 1,000 class-balanced random sets of 48 pool
items, and a search that swaps items to raise the *held-out* accuracy itself (peeking at the labels
no selection rule has: what an oracle selector could reach, not a method).

``python bench/al_cold_start.py`` writes results/al_cold_start.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from loopwright.active.experiment import digits, median_labels, simulate
from loopwright.active.strategies import Strategy, make_strategy
from loopwright.config import ProjectConfig
from loopwright.learning.estimators import default_estimator

RESULTS = Path(__file__).resolve().parent / "results"
SEEDS = [0, 1, 2, 3, 4]
BATCH, BUDGET, SEED_SET = 10, 600, 10


def typical(X: NDArray[Any], labelled: int, batch: int, seed: int, k: int = 20) -> NDArray[np.intp]:
    """TypiClust: ``labelled + batch`` k-means clusters of all rows (labelled rows first); from each
    of the ``batch`` largest clusters holding no labelled row, its most typical pool row (highest
    inverse mean distance to its ``k`` nearest neighbours). Indices are into the pool rows."""
    clusters = KMeans(labelled + batch, n_init=1, random_state=seed).fit(X).labels_
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    typicality = 1 / (distances[:, 1:].mean(axis=1) + 1e-9)
    sizes = np.bincount(clusters, minlength=labelled + batch).astype(float)
    sizes[np.unique(clusters[:labelled])] = -1
    picks = []
    for c in np.argsort(-sizes, kind="stable")[:batch]:
        members = np.flatnonzero(clusters[labelled:] == c)
        if len(members):
            picks.append(int(members[np.argmax(typicality[labelled + members])]))
    return np.asarray(picks, dtype=np.intp)


class TypicalThenAuto:
    """TypiClust until ``until`` labels, then ``auto`` (made afresh when a seed starts)."""

    def __init__(self, until: int) -> None:
        self.name = f"typiclust<{until} then auto"
        self.until = until
        self.auto: Strategy = make_strategy("auto")

    def select(
        self,
        model: Any,
        X_pool: Any,
        X_labelled: Any,
        batch: int,
        rng: np.random.Generator,
        y_labelled: Any = None,
    ) -> NDArray[np.intp]:
        n = len(X_labelled)
        if n <= SEED_SET:  # simulate() reuses a strategy object across seeds
            self.auto = make_strategy("auto")
        if n < self.until:
            return typical(np.vstack([X_labelled, X_pool]), n, batch, int(rng.integers(2**31)))
        return self.auto.select(model, X_pool, X_labelled, batch, rng, y_labelled)


def fixed_budget(X: NDArray[Any], y: NDArray[Any], config: ProjectConfig, size: int = 48) -> dict[str, float]:
    """Held-out accuracy of ``size`` labels: the best and median of 1,000 class-balanced random
    sets, and of a swap search that peeks at the held-out labels (3,000 same-class swaps); and the
    target, 95 % of the accuracy of every pool label."""
    pool, held = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0, stratify=y)
    by_class = {c: pool[y[pool] == c] for c in np.unique(y)}
    per = [size // len(by_class) + (k < size % len(by_class)) for k in range(len(by_class))]
    rng = np.random.default_rng(0)

    def accuracy(rows: NDArray[np.intp]) -> float:
        model = default_estimator(config, 0).fit(X[rows], y[rows])
        return float(np.mean(model.predict(X[held]) == y[held]))

    def draw() -> NDArray[np.intp]:
        return np.concatenate(
            [rng.choice(rows, n, replace=False) for rows, n in zip(by_class.values(), per, strict=True)]
        )

    draws = [draw() for _ in range(1000)]
    scores = np.asarray([accuracy(rows) for rows in draws])
    best_rows, best = draws[int(np.argmax(scores))], float(scores.max())
    for _ in range(3000):
        k = int(rng.integers(size))
        swap = best_rows.copy()
        swap[k] = rng.choice(by_class[y[best_rows[k]]])
        if swap[k] not in best_rows and (score := accuracy(swap)) > best:
            best_rows, best = swap, score
    return {
        "target": 0.95 * accuracy(pool),
        "random_best": float(scores.max()),
        "random_median": float(np.median(scores)),
        "peeking_search": best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until", type=int, nargs="+", default=[30, 60])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "The `probability` parameter", FutureWarning)
    X, y, config = digits()
    rows: dict[str, dict[str, list[int | None]]] = {}
    candidates: list[str | Strategy] = ["random", "auto", *(TypicalThenAuto(u) for u in args.until)]
    for strategy in candidates:
        name = strategy if isinstance(strategy, str) else strategy.name
        rows[name] = {}
        for target in (0.95, 0.98):
            sim = simulate(X, y, config, strategy, BUDGET, BATCH, SEEDS, stop_at=target)
            rows[name][str(target)] = [r.labels_to_target[str(target)] for r in sim.runs]
        print(name, rows[name], flush=True)
    budget48 = fixed_budget(X, np.asarray(y), config)
    print("48 labels:", budget48, flush=True)
    lines = [
        "# A low-budget cold start (TypiClust) for active learning on digits: tried, not kept",
        "",
        f"Generated by `bench/al_cold_start.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). "
        "Labels each seed needs to reach 95 % / 98 % of full-data accuracy (seeds 0-4, batch 10, "
        "as many random labels as classes to start, the active-learning benchmark's split and model); "
        "saved: 1 - median / random's median.",
        "",
        "| strategy | per seed (95 %) | median | saved | per seed (98 %) | median | saved |",
        "|---|---|---|---|---|---|---|",
    ]
    base = {t: median_labels(rows["random"][t]) for t in ("0.95", "0.98")}
    for name, row in rows.items():
        cells = []
        for t in ("0.95", "0.98"):
            median = median_labels(row[t])
            saved = "n/a" if median is None or base[t] is None else f"{1 - median / base[t]:.0%}"
            cells += [", ".join("-" if v is None else str(v) for v in row[t]), str(median), saved]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += [
        "",
        f"What 48 labels (about five a class, a 75 % saving) can do: the best of 1,000 class-balanced "
        f"random sets reaches {budget48['random_best']:.3f} held-out accuracy (median "
        f"{budget48['random_median']:.3f}) against the target {budget48['target']:.3f}; a swap search "
        "that optimises the "
        f"held-out accuracy itself reaches {budget48['peeking_search']:.3f} (optimistic: tuned on the set it "
        "is scored on). A rule that selects without labels would have to beat the best of 1,000 "
        "balanced random draws by "
        f"{100 * (budget48['target'] - budget48['random_best']):.1f} points to get there.",
        "",
        "Not kept: typical points first for 30 labels tie with `auto`'s k-means++ cold start "
        "followed by margin at 95 % and are one batch (10 labels) ahead at 98 % on these 5 seeds "
        "(since session 22, when the SVM's probabilities below 4 labels per class became its pairwise "
        "decision values: before, they were level or behind); for 60 labels they are behind. Both stay "
        "far from the 48 labels a 75 % saving would need; no selection rule tried gets the default SVM "
        "on raw pixels to 95 % of its full accuracy with about five labels per class.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "al_cold_start.json").write_text(
        json.dumps({"strategies": rows, "labels_48": budget48}, indent=1) + "\n"
    )
    (RESULTS / "al_cold_start.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
