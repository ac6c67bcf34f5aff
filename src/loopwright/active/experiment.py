"""Seeded pool-based active-learning simulation: label curves, full-data accuracy, labels to target.

One stratified held-out split (``split_seed``) is set aside: never labelled, never shown to a
strategy, only scored on. Each seed then draws a random seed set from the pool, and loops: fit
the project's default model → record held-out accuracy → the strategy picks a batch from the
unlabelled pool → simulated annotators label it, until ``budget`` labels (seed set included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from loopwright.active.features import TextEmbedding, is_text
from loopwright.active.strategies import Strategy, make_strategy
from loopwright.config import ProjectConfig
from loopwright.errors import Invalid
from loopwright.learning.estimators import default_estimator

TARGETS = (0.95, 0.98)
ANNOTATORS = ("oracle", "noisy")


@dataclass(frozen=True)
class Run:
    """One seed: ``curve`` is ``(labels, held-out accuracy)`` after each fit."""

    seed: int
    curve: list[tuple[int, float]]
    labels_to_target: dict[str, int | None]


@dataclass(frozen=True)
class Simulation:
    dataset: str
    strategy: str
    full_accuracy: float
    runs: list[Run]
    labels_to_target: dict[str, int | None]  # median over seeds; a seed that never reaches counts as ∞

    def to_dict(self) -> dict[str, Any]:
        """The ``loopwright simulate --json`` object."""
        return {
            "dataset": self.dataset,
            "strategy": self.strategy,
            "full_accuracy": self.full_accuracy,
            "seeds": [{"seed": r.seed, "curve": [[n, a] for n, a in r.curve]} for r in self.runs],
            "labels_to_target": self.labels_to_target,
        }


def digits() -> tuple[NDArray[np.float64], NDArray[np.str_], ProjectConfig]:
    """scikit-learn's 8x8 digits with the default image model."""
    data = load_digits()
    config = ProjectConfig(name="digits", labels=[str(d) for d in range(10)], modality="image")
    return data.data, data.target.astype(str), config


def text_config(labels: Sequence[str]) -> ProjectConfig:
    """A text project over ``labels``: the default TF-IDF + logistic regression, solved by
    ``newton-cg`` (same objective as the default lbfgs; on TREC with 1,000 labels it converges
    in 5 iterations and 0.2 s against lbfgs' 59 and 4 s, same accuracy 0.79)."""
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise Invalid(f"the label column needs at least 2 distinct labels, found {distinct}")
    return ProjectConfig(
        name="text", labels=distinct, modality="text", model={"params": {"solver": "newton-cg"}}
    )


def noisy_labels(y: NDArray[Any], accuracy: float, rng: np.random.Generator) -> NDArray[Any]:
    """Each label kept with probability ``accuracy``, else replaced by a uniformly drawn other class."""
    classes = np.unique(y)
    out = y.copy()
    wrong = rng.random(len(y)) >= accuracy
    shift = rng.integers(1, len(classes), size=len(y))
    pos = np.searchsorted(classes, y)
    out[wrong] = classes[(pos[wrong] + shift[wrong]) % len(classes)]
    return out


def reach(curve: Sequence[tuple[int, float]], goal: float) -> int | None:
    """Labels at the first curve point with accuracy ≥ ``goal``, else ``None``."""
    return next((n for n, acc in curve if acc >= goal), None)


def median_labels(values: Sequence[int | None]) -> int | None:
    """Median over seeds with ``None`` as ∞ (the upper median for an even count)."""
    ranked = sorted(values, key=lambda v: np.inf if v is None else v)
    return ranked[len(ranked) // 2]


def _take(X: Any, rows: NDArray[np.intp]) -> Any:
    return [X[i] for i in rows] if isinstance(X, list) else X[rows]


def simulate(
    X: Any,
    y: Sequence[str] | NDArray[Any],
    config: ProjectConfig,
    strategy: str | Strategy,
    budget: int,
    batch: int,
    seeds: Sequence[int],
    *,
    dataset: str = "data",
    annotators: str = "oracle",
    seed_size: int | None = None,
    held_out: float = 0.25,
    noise_accuracy: float = 0.9,
    cold_start: int | None = None,
    split_seed: int = 0,
    stop_at: float | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Run the loop for every seed; ``on_step(seed_index, labels)`` after each fit.

    ``stop_at`` (a fraction of the full-data accuracy) ends a seed's curve early once reached.

    ``seed_size`` defaults to the number of classes (chosen at random); a strategy then starts
    cold until 2 x classes labels. Text is embedded once for diversity (``TextEmbedding`` on the
    pool). Raises ``Invalid`` for an empty pool or a budget the pool cannot meet.
    """
    X = list(X) if is_text(X) else np.asarray(X, dtype=np.float64)
    labels = np.asarray(y).astype(str)
    if len(labels) != len(X):
        raise Invalid(f"{len(X)} inputs but {len(labels)} labels")
    if annotators not in ANNOTATORS:
        raise Invalid(f"unknown annotators {annotators!r}: use one of {', '.join(ANNOTATORS)}")
    if not 0 < held_out < 1:
        raise Invalid(f"held_out must be a fraction between 0 and 1, got {held_out}")
    if len(labels) < 4 or len(np.unique(labels)) < 2:
        raise Invalid(
            f"the pool is empty or has one class ({len(labels)} rows): give at least 4 rows, 2 labels"
        )
    classes = np.unique(labels)
    pool_rows, held_rows = train_test_split(
        np.arange(len(labels)), test_size=held_out, random_state=split_seed, stratify=_stratify(labels)
    )
    pool_rows.sort()
    held_rows.sort()
    n_pool = len(pool_rows)
    size = len(classes) if seed_size is None else seed_size
    if budget > n_pool:
        raise Invalid(
            f"budget {budget} is larger than the pool of {n_pool} items: use --budget {n_pool} or less"
        )
    if not 1 <= size <= budget:
        raise Invalid(f"seed size {size} must be between 1 and the budget {budget}")
    if batch < 1:
        raise Invalid(f"batch must be at least 1, got {batch}")
    X_pool, y_pool = _take(X, pool_rows), labels[pool_rows]
    X_held, y_held = _take(X, held_rows), labels[held_rows]
    name = strategy if isinstance(strategy, str) else strategy.name
    if isinstance(strategy, str):
        embed = TextEmbedding().fit(X_pool) if isinstance(X_pool, list) else None
        make_strategy(strategy)  # an unknown name fails before any fit
    full = default_estimator(config, split_seed).fit(X_pool, y_pool)
    full_accuracy = float(np.mean(full.predict(X_held) == y_held))

    runs = []
    for k, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        # a named strategy is made afresh per seed: the bandit learns within one run
        pick = make_strategy(strategy, cold_start, embed) if isinstance(strategy, str) else strategy
        given = (
            y_pool
            if annotators == "oracle"
            else noisy_labels(y_pool, noise_accuracy, np.random.default_rng([seed, 1]))
        )
        labelled = np.sort(rng.choice(n_pool, size=size, replace=False))
        curve: list[tuple[int, float]] = []
        while True:
            model = None
            if len(np.unique(given[labelled])) >= 2:
                model = default_estimator(config, seed).fit(_take(X_pool, labelled), given[labelled])
                accuracy = float(np.mean(model.predict(X_held) == y_held))
            else:
                accuracy = float(np.mean(y_held == given[labelled][0]))
            curve.append((len(labelled), round(accuracy, 6)))
            if on_step is not None:
                on_step(k, len(labelled))
            if len(labelled) >= budget or (stop_at is not None and accuracy >= stop_at * full_accuracy):
                break
            rest = np.setdiff1d(np.arange(n_pool), labelled)
            picks = pick.select(
                model,
                _take(X_pool, rest),
                _take(X_pool, labelled),
                min(batch, budget - len(labelled)),
                rng,
                y_labelled=given[labelled],
            )
            labelled = np.concatenate([labelled, rest[picks]])
        reached = {str(t): reach(curve, t * full_accuracy) for t in TARGETS}
        runs.append(Run(seed, curve, reached))
    return Simulation(
        dataset=dataset,
        strategy=name,
        full_accuracy=round(full_accuracy, 6),
        runs=runs,
        labels_to_target={str(t): median_labels([r.labels_to_target[str(t)] for r in runs]) for t in TARGETS},
    )


def _stratify(labels: NDArray[Any]) -> NDArray[Any] | None:
    """Stratify the split when every class has at least two rows."""
    _, counts = np.unique(labels, return_counts=True)
    return labels if counts.min() >= 2 else None
