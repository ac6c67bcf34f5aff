"""Selection speed on a large dense pool: margin, k-center greedy and the hybrid, against peers.

A float32 pool of 64 features (standard normal, and a 100-cluster mixture for k-center), batch
1,000, 100 labelled points, a 10-class logistic regression fitted on them. Medians over
repeats for loopwright. Peers (scikit-activeml's CoreSet and margin sampling, modAL's ranked
batch and margin sampling) run once per pool size in a child process with a one-minute limit,
growing the pool until they pass it. Writes results/selection_speed.{json,md,png}.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from loopwright.active import Hybrid, kcenter_greedy, make_strategy, smallest_margin, top_k

RESULTS = Path(__file__).resolve().parent / "results"
DIM, BATCH, LABELLED, CLASSES = 64, 1_000, 100, 10
SIZES = [2_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
REPEATS = 5
LIMIT = 60.0  # seconds a peer may take at one pool size


def pool(n: int, kind: str = "gaussian") -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int_]]:
    """(pool, labelled points, their labels), seeded; labels are the argmax of a random linear map."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n + LABELLED, DIM), dtype=np.float32)
    if kind == "clustered":
        centres = rng.standard_normal((100, DIM), dtype=np.float32) * 3
        X += centres[rng.integers(100, size=len(X))]
    y = (X[-LABELLED:] @ rng.standard_normal((DIM, CLASSES), dtype=np.float32)).argmax(axis=1)
    return X[:-LABELLED], X[-LABELLED:], y


def model(X_lab: NDArray[np.float32], y: NDArray[np.int_]) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(X_lab, y)


def ours(name: str, n: int, kind: str = "gaussian") -> Callable[[], Any]:
    X, X_lab, y = pool(n, kind)
    clf = model(X_lab, y)
    rng = np.random.default_rng(0)
    if name == "margin scores":  # from a ready probability matrix: score + top-k only
        proba = clf.predict_proba(X)
        return lambda: top_k(smallest_margin(proba), BATCH)
    if name == "margin":
        strategy = make_strategy("margin", cold_start=0)
        return lambda: strategy.select(clf, X, X_lab, BATCH, rng)
    if name == "kcenter":
        return lambda: kcenter_greedy(X, BATCH, rng, X_lab)
    hybrid = Hybrid(cold_start=0)
    return lambda: hybrid.select(clf, X, X_lab, BATCH, rng)


def peer(name: str, n: int) -> Callable[[], Any]:
    X, X_lab, y = pool(n)
    if name.startswith("scikit-activeml"):
        from skactiveml.classifier import SklearnClassifier
        from skactiveml.pool import CoreSet, UncertaintySampling

        X_all = np.vstack([X_lab, X])
        y_all = np.concatenate([y.astype(float), np.full(n, np.nan)])
        if name.endswith("CoreSet"):
            return lambda: CoreSet(random_state=0).query(X_all, y_all, batch_size=BATCH)
        clf = SklearnClassifier(LogisticRegression(max_iter=1000), classes=np.arange(CLASSES)).fit(
            X_all, y_all
        )
        sampler = UncertaintySampling(method="margin_sampling", random_state=0)
        return lambda: sampler.query(X_all, y_all, clf, fit_clf=False, batch_size=BATCH)
    from modAL.batch import uncertainty_batch_sampling
    from modAL.models import ActiveLearner
    from modAL.uncertainty import margin_sampling

    if name.endswith("ranked batch"):
        learner = ActiveLearner(estimator=LogisticRegression(max_iter=1000), X_training=X_lab, y_training=y)
        return lambda: uncertainty_batch_sampling(learner, X, n_instances=BATCH)
    clf = model(X_lab, y)
    return lambda: margin_sampling(clf, X, n_instances=BATCH)


PEERS = ["scikit-activeml CoreSet", "modAL ranked batch", "scikit-activeml margin", "modAL margin"]
MATCH = {  # the loopwright strategy each peer is compared with
    "scikit-activeml CoreSet": "kcenter",
    "modAL ranked batch": "hybrid",
    "scikit-activeml margin": "margin",
    "modAL margin": "margin",
}


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _child(name: str, n: int, out: Any) -> None:
    run = peer(name, n)
    out.put(median_seconds(run, 1))


def timed_peer(name: str, n: int) -> float | None:
    """Seconds of one query, or None past the limit (the child is stopped)."""
    out = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=_child, args=(name, n, out))
    child.start()
    child.join(LIMIT + 30)  # data set-up is not timed but must fit too
    if child.is_alive():
        child.terminate()
        child.join()
        return None
    seconds = out.get() if not out.empty() else None
    return None if seconds is None or seconds > LIMIT else seconds


def peers_available() -> list[str]:
    names = []
    for module, prefix in (("skactiveml", "scikit-activeml"), ("modAL", "modAL")):
        try:
            __import__(module)
            names += [p for p in PEERS if p.startswith(prefix)]
        except ImportError:
            print(f"{module} not importable: skipped", file=sys.stderr)
    return names


def main() -> None:
    results: dict[str, Any] = {
        "machine": f"{platform.python_version()}, {platform.machine()}, 2 shared cores",
        "pool": f"n x {DIM} float32, batch {BATCH}, {LABELLED} labelled",
        "scaling": {},
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    for name in ("margin scores", "margin", "kcenter", "hybrid"):
        results["scaling"][name] = {n: round(median_seconds(ours(name, n), REPEATS), 4) for n in SIZES}
        print(name, results["scaling"][name], file=sys.stderr)
    results["kcenter_clustered_1M"] = round(median_seconds(ours("kcenter", SIZES[-1], "clustered"), 1), 3)
    ratios = {}
    for name in peers_available():
        row: dict[int, float | None] = {}
        for n in SIZES:
            row[n] = seconds = timed_peer(name, n)
            print(name, n, seconds, file=sys.stderr)
            if seconds is None:
                break
        results["scaling"][name] = row
        finished = [n for n, s in row.items() if s is not None]
        if finished:
            n = finished[-1]
            mine = results["scaling"][MATCH[name]][n]
            ratios[name] = {"pool": n, "peer_seconds": row[n], "ours": MATCH[name], "ours_seconds": mine,
                            "ratio": round(row[n] / mine, 1)}  # fmt: skip
    results["ratios"] = ratios
    results["load_average_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "selection_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "selection_speed.md").write_text(markdown(results))
    plot(results, RESULTS / "selection_speed.png")
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    big = SIZES[-1]
    scaling = results["scaling"]
    lines = [
        "# Selection speed",
        "",
        f"Pool {results['pool']}; {results['machine']}. loopwright: median of {REPEATS} runs; peers: one run "
        f"per size in a child process, stopped past {LIMIT:.0f} s. Other jobs shared the 2 cores "
        f"(1-minute load average {results['load_average_at_start']} at the start, "
        f"{results['load_average_at_end']} at the end), so compare ratios, not seconds.",
        "",
        f"## loopwright at {big:,} x {DIM}",
        "",
        "| strategy | seconds | target |",
        "|---|---|---|",
        f"| margin from probabilities (score + top-k) | {scaling['margin scores'][big]} | <= 0.3 |",
        f"| margin (the model's predict_proba + score + top-k) | {scaling['margin'][big]} | |",
        f"| k-center greedy (standard normal pool) | {scaling['kcenter'][big]} | <= 5 |",
        f"| k-center greedy (100-cluster mixture) | {results['kcenter_clustered_1M']} | <= 5 |",
        f"| hybrid (top 10,000 by margin, then k-center) | {scaling['hybrid'][big]} | |",
        "",
        "## Against peers, at the largest pool each finishes within a minute",
        "",
        "| peer | pool | peer seconds | loopwright | loopwright seconds | peer / loopwright |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["ratios"].items():
        lines.append(
            f"| {name} | {r['pool']:,} | {r['peer_seconds']:.3f} | {r['ours']} | {r['ours_seconds']:.3f} | "
            f"{r['ratio']}x |"
        )
    lines += ["", "## Scaling (seconds; '-' = past the limit or not run)", ""]
    lines.append("| pool | " + " | ".join(scaling) + " |")
    lines.append("|---" * (len(scaling) + 1) + "|")
    for n in SIZES:
        cells = [scaling[s].get(n) for s in scaling]
        lines.append(f"| {n:,} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in results["scaling"].items():
        points = [(n, s) for n, s in row.items() if s is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", ls="--" if name in MATCH else "-", label=name)
    ax.axhline(LIMIT, color="k", lw=0.6, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="pool size", ylabel="seconds per batch of 1,000",
           title=f"selection time, {DIM} float32 features")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
