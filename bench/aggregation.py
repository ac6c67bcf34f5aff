"""Aggregation benchmark: loopwright's mv, wmv, ds, ds1 against crowd-kit on four real crowd sets.

Run in the separate bench venv (see bench/README.md). Writes results/aggregation.{json,md}.
crowd-kit columns are skipped when crowd-kit is not importable.
"""

from __future__ import annotations

import csv
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopwright.consensus import DawidSkene, MajorityVote, OneCoinDawidSkene, WeightedMajorityVote

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowd"
RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ["duck", "product", "dog", "face"]
OURS: dict[str, Callable[[], Any]] = {
    "mv": MajorityVote,
    "wmv": WeightedMajorityVote,
    "ds": DawidSkene,
    "ds1": OneCoinDawidSkene,
}
OUR_REPEATS, CROWDKIT_REPEATS, GLAD_REPEATS = 5, 3, 1

Rows = tuple[list[str], list[str], list[str]]


def load(name: str) -> tuple[Rows, dict[str, str]]:
    with (DATA / name / "answers.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (DATA / name / "truth.csv").open(newline="") as f:
        truth = {r["question"]: r["truth"] for r in csv.DictReader(f)}
    cols = ([r["question"] for r in rows], [r["worker"] for r in rows], [r["answer"] for r in rows])
    return cols, truth


def accuracy(labels: dict[str, str], truth: dict[str, str]) -> float:
    scored = [q for q in truth if q in labels]
    return sum(labels[q] == truth[q] for q in scored) / len(scored)


def timed(run: Callable[[], dict[str, str]], repeats: int) -> tuple[dict[str, str], float]:
    seconds, labels = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        labels = run()
        seconds.append(time.perf_counter() - start)
    return labels, statistics.median(seconds)


def ours(factory: Callable[[], Any], rows: Rows) -> Callable[[], dict[str, str]]:
    def run() -> dict[str, str]:
        model = factory().fit(*rows)
        return dict(zip(model.items_.tolist(), model.labels_.tolist(), strict=True))

    return run


def crowdkit_methods(rows: Rows) -> dict[str, tuple[Callable[[], dict[str, str]], int]]:
    try:
        import pandas as pd
        from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote
    except ImportError:
        return {}
    df = pd.DataFrame({"task": rows[0], "worker": rows[1], "label": rows[2]})

    def wrap(make: Callable[[], Any]) -> Callable[[], dict[str, str]]:
        def run() -> dict[str, str]:
            return {str(k): str(v) for k, v in make().fit_predict(df).items()}

        return run

    return {
        "crowdkit_mv": (wrap(MajorityVote), CROWDKIT_REPEATS),
        "crowdkit_ds": (wrap(lambda: DawidSkene(n_iter=100)), CROWDKIT_REPEATS),
        "crowdkit_glad": (wrap(GLAD), GLAD_REPEATS),
        "crowdkit_mace": (wrap(lambda: MACE(random_state=0)), CROWDKIT_REPEATS),
    }


def main() -> None:
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in DATASETS:
        rows, truth = load(name)
        methods = {m: (ours(f, rows), OUR_REPEATS) for m, f in OURS.items()} | crowdkit_methods(rows)
        results[name] = {}
        for method, (run, repeats) in methods.items():
            labels, seconds = timed(run, repeats)
            results[name][method] = {"accuracy": round(accuracy(labels, truth), 4), "seconds": seconds}
            print(f"{name:8s} {method:14s} acc {results[name][method]['accuracy']:.4f}  {seconds:.4f} s")
    meta = {
        "python": platform.python_version(),
        "repeats": {"loopwright": OUR_REPEATS, "crowdkit": CROWDKIT_REPEATS, "crowdkit_glad": GLAD_REPEATS},
    }
    RESULTS.mkdir(exist_ok=True)
    payload = {"meta": meta, "results": results}
    (RESULTS / "aggregation.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "aggregation.md").write_text(markdown(results))


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    methods = list(next(iter(results.values())))
    lines = [
        "# Aggregation benchmark",
        "",
        "Accuracy against truth.csv / median seconds per fit "
        f"({OUR_REPEATS} repeats loopwright, {CROWDKIT_REPEATS} crowd-kit, {GLAD_REPEATS} GLAD).",
        "",
        "| dataset | " + " | ".join(methods) + " | best loopwright | best crowd-kit "
        "| crowd-kit DS s / loopwright DS s |",
        "|---" * (len(methods) + 4) + "|",
    ]
    for name, row in results.items():
        cells = [f"{row[m]['accuracy']:.4f} / {row[m]['seconds']:.4f}" for m in methods]
        for prefix in ("", "crowdkit_"):
            scores = [v["accuracy"] for m, v in row.items() if m.startswith("crowdkit_") == bool(prefix)]
            cells.append(f"{max(scores):.4f}" if scores else "n/a")
        ratio = (
            f"{row['crowdkit_ds']['seconds'] / row['ds']['seconds']:.0f}x" if "crowdkit_ds" in row else "n/a"
        )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
