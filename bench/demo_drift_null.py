"""How often does the demo's per-batch drift check fire when nothing drifted?

Builds the stream of ``loopwright demo --quick`` for each seed (the same pool, gold split and
seeded augmentation) and tests each of its 19 batch boundaries as the loop does on
ingest: the batch's 260 items against the ``drift.window`` items before it, with the example's
``drift.alpha``. No shift is applied, so every alarm is a false one; writes
results/demo_drift_null.{json,md}.

    .venv/bin/python bench/demo_drift_null.py --seeds 60     # seeds 0-59: 1,140 checks, about a minute
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from loopwright.cli.demo import GOLD_ITEMS, QUICK_ROUNDS, ROUND_SIZE, demo_config, demo_stream
from loopwright.drift import data_drift

RESULTS = Path(__file__).resolve().parent / "results"


def checks(seed: int, X: np.ndarray, y: np.ndarray) -> list[tuple[bool, float | None]]:
    """(alarm, overall p-value) at each batch boundary of ``seed``'s drift-free stream."""
    drift = demo_config().drift
    pool, _ = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=seed)
    shuffled = np.random.default_rng(seed).permutation(pool)
    stream = demo_stream(shuffled[GOLD_ITEMS:], QUICK_ROUNDS * ROUND_SIZE, seed)
    pixels = np.array([item.pixels(X) for item in stream])
    names = [f"pixels[{j}]" for j in range(pixels.shape[1])]
    out = []
    for r in range(1, QUICK_ROUNDS):
        start = r * ROUND_SIZE
        report = data_drift(
            pixels[start - drift.window : start], pixels[start : start + ROUND_SIZE], names,
            alpha=drift.alpha, auc_threshold=drift.auc_threshold, seed=0,
        )  # fmt: skip
        out.append((report.drift, report.p_value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=60)
    args = parser.parse_args()
    digits = load_digits()
    started = time.perf_counter()
    per_seed = {s: checks(s, digits.data, digits.target) for s in range(args.seeds)}
    n = sum(len(c) for c in per_seed.values())
    alarms = {s: [r + 1 for r, (fired, _) in enumerate(c) if fired] for s, c in per_seed.items()}
    fired = sum(len(a) for a in alarms.values())
    alpha = demo_config().drift.alpha
    result = {
        "seeds": args.seeds,
        "checks": n,
        "alarms": fired,
        "rate": fired / n,
        "alpha": alpha,
        "alarm_rounds_by_seed": {str(s): a for s, a in alarms.items() if a},
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo_drift_null.json").write_text(json.dumps(result, indent=2) + "\n")
    where = "; ".join(f"seed {s}: round {', '.join(map(str, a))}" for s, a in alarms.items() if a)
    (RESULTS / "demo_drift_null.md").write_text(
        "# The demo's drift check on drift-free streams\n\n"
        f"`bench/demo_drift_null.py --seeds {args.seeds}`: seeds 0 to {args.seeds - 1} of the `--quick` "
        f"stream, each batch of {ROUND_SIZE} against the {demo_config().drift.window} items before it, "
        f"no shift applied, at the example's `drift.alpha`.\n\n"
        "| checks | alarms | rate | alpha |\n|---|---|---|---|\n"
        f"| {n} | {fired} | {fired / n:.2%} | {alpha:.2%} |\n\n"
        f"Alarms (0-based round of the batch): {where or 'none'}. {result['seconds']} s.\n"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
