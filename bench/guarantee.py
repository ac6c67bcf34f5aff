"""Routing with a statistical guarantee: does the certified threshold keep its promise on digits?

Seeded runs (20 unless ``--seeds``). Per seed: shuffle scikit-learn's digits (1,797 images), train
the model on the first N_TRAIN, stream the rest: loopwright's image default (an RBF SVM with
Platt probabilities, ``--model svm``), StandardScaler + LogisticRegression(C=0.3) (``--model
logistic``, the default before issue 14) or scikit-learn's replacement for ``SVC(probability=True)``
(``--model calibrated``). A uniform random AUDIT share of
the stream is labelled with its true label and used to pick the auto-accept threshold for
ε = 0.02, δ = 0.05; the threshold is then applied to the non-audited stream items and the error of
the auto-accepted ones is measured against the true labels. Rules compared: Learn-then-Test with
the Clopper-Pearson bound (distinct audit confidences as the grid, or a grid fixed in advance),
the same per predicted label with δ split by Bonferroni, and the naive empirical threshold.
A sweep over training size and audit share shows what drives the auto-accepted share.
Writes results/guarantee.{json,md} (svm) or results/guarantee_{logistic,calibrated}.{json,md}.

    .venv/bin/python bench/guarantee.py --seeds 100                  # the shipped default model
    .venv/bin/python bench/guarantee.py --model logistic             # the old default, 20 seeds
    .venv/bin/python bench/guarantee.py --model calibrated           # scikit-learn's replacement
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray
from scipy.stats import beta
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopwright.learning.estimators import IMAGE_C
from loopwright.routing import certify, certify_per_class, empirical_threshold, min_evidence_for

RESULTS = Path(__file__).resolve().parent / "results"
EPS, DELTA = 0.02, 0.05
SEEDS = 20  # set by --seeds
N_TRAIN, AUDIT = 500, 0.4
SWEEP_TRAIN, SWEEP_AUDIT = (200, 300, 500), (0.2, 0.3, 0.4, 0.5)
FIXED_GRID = np.round(np.r_[np.arange(0.50, 0.99, 0.01), 0.99, 0.995, 0.999], 3)
ONE_ERROR = min_evidence_for(EPS, DELTA, errors=1)  # 236: the scan starts where one error is tolerable

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Labels = NDArray[np.str_]
Stream = tuple[Floats, Bools, Labels]
# a rule looks at the audit (confidence, correct, predicted label) and returns one threshold for
# every label, or one per label (labels without one go to review); None = everything to review
Rule = Callable[[Floats, Bools, Labels], float | dict[str, float | None] | None]

CERTIFIED = "certified (LTT, audit-confidence grid)"
CERTIFIED_1 = f"certified, scan starts at {ONE_ERROR} items (room for one error)"
NAIVE = "naive empirical threshold"
RULES: dict[str, Rule] = {
    CERTIFIED: lambda c, ok, _: certify(c, ok, EPS, DELTA).threshold,
    CERTIFIED_1: lambda c, ok, _: certify(c, ok, EPS, DELTA, min_evidence=ONE_ERROR).threshold,
    "certified (LTT, fixed grid 0.50-0.999)": lambda c, ok, _: (
        certify(c, ok, EPS, DELTA, thresholds=FIXED_GRID).threshold
    ),
    "certified per class (δ/10 each)": lambda c, ok, lab: {
        label: cert.threshold for label, cert in certify_per_class(c, ok, lab, EPS, DELTA).items()
    },
    NAIVE: lambda c, ok, _: empirical_threshold(c, ok, EPS),
}
SWEEP_RULES = (CERTIFIED, CERTIFIED_1, NAIVE)


MODELS = {
    "svm": f"loopwright's image default: SVC(C={IMAGE_C:g}, probability=True) (RBF, Platt probabilities), "
    "seeded",
    "logistic": "StandardScaler + LogisticRegression(C=0.3, max_iter=2000)",
    "calibrated": "scikit-learn's replacement for the deprecated SVC(probability=True): "
    f"CalibratedClassifierCV(SVC(C={IMAGE_C:g}), ensemble=False), sigmoid, seeded",
}
MODEL = "svm"  # set by --model


def make_model(seed: int) -> Any:
    """An unfitted model of the kind ``--model`` names."""
    if MODEL == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
    if MODEL == "calibrated":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        return CalibratedClassifierCV(SVC(C=IMAGE_C, random_state=seed), ensemble=False)
    from loopwright.cli.demo import demo_config
    from loopwright.learning import default_estimator

    return default_estimator(demo_config(), seed)


def stream(seed: int, n_train: int) -> Stream:
    """Confidence, correctness and predicted label of every streamed (non-training) digit."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    train, rest = order[:n_train], order[n_train:]
    model = make_model(seed).fit(X[train], y[train])
    proba = model.predict_proba(X[rest])
    predicted = model.classes_[proba.argmax(axis=1)]
    return proba.max(axis=1), predicted == y[rest], predicted.astype(str)


def per_item(chosen: float | dict[str, float | None] | None, labels: Labels) -> Floats:
    """Each item's threshold; +inf sends it to review."""
    if isinstance(chosen, dict):
        by_label = {label: np.inf if t is None else t for label, t in chosen.items()}
        return np.array([by_label.get(label, np.inf) for label in labels], dtype=np.float64)
    return np.full(labels.size, np.inf if chosen is None else chosen)


def evaluate(
    data: Stream, audit_share: float, seed: int, rules: dict[str, Rule]
) -> dict[str, dict[str, Any]]:
    """Pick thresholds on the audit, then score the auto-accepted non-audited items."""
    conf, ok, labels = data
    audit = np.random.default_rng(10_000 + seed).random(conf.size) < audit_share
    other = int((~audit).sum())
    out: dict[str, dict[str, Any]] = {}
    for name, rule in rules.items():
        chosen = rule(conf[audit], ok[audit], labels[audit])
        above = conf >= per_item(chosen, labels)  # the population the certificate speaks of
        accepted = above & ~audit
        n_accepted = int(accepted.sum())
        error = float((~ok[accepted]).mean()) if n_accepted else 0.0
        population = float((~ok[above]).mean()) if above.any() else 0.0
        out[name] = {
            "threshold": chosen if not isinstance(chosen, dict) else None,
            "n_audit": int(audit.sum()),
            "n_other": other,
            "auto_share": n_accepted / other,
            "auto_share_of_stream": n_accepted / conf.size,
            "error": error,
            "violation": error > EPS,
            "population_error": population,
            "population_violation": population > EPS,
            "nothing_auto_accepted": n_accepted == 0,
        }
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median/mean share, violation rate and error over seeds for one rule."""
    shares = [r["auto_share"] for r in runs]
    errors = [r["error"] for r in runs]
    return {
        "runs": len(runs),
        "auto_share_median": statistics.median(shares),
        "auto_share_mean": statistics.fmean(shares),
        "auto_share_min": min(shares),
        "auto_share_of_stream_median": statistics.median(r["auto_share_of_stream"] for r in runs),
        "violations": sum(r["violation"] for r in runs),
        "violation_rate": statistics.fmean(r["violation"] for r in runs),
        "population_violation_rate": statistics.fmean(r["population_violation"] for r in runs),
        "error_median": statistics.median(errors),
        "error_max": max(errors),
        "nothing_auto_accepted": sum(r["nothing_auto_accepted"] for r in runs),
        "n_audit_median": statistics.median(r["n_audit"] for r in runs),
        "n_other_median": statistics.median(r["n_other"] for r in runs),
    }


def rate_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for a rate of ``k`` in ``n`` runs: how sure a violation
    rate over a hundred seeds is."""
    tail = (1 - level) / 2
    low = float(beta.ppf(tail, k, n - k + 1)) if k else 0.0
    high = float(beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
    return low, high


def held(seed: int, audit_share: float, n_prev: int, n_cur: int) -> dict[str, Any]:
    """A promotion that keeps the certificate (``loop/certification.py``): the previous champion
    (trained on ``n_prev``) certifies a threshold on the audit; the new one (``n_cur``) is scanned
    from that threshold down on the same audit. Realised error of the new one's auto-accepts."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    rest = order[max(n_prev, n_cur) :]
    audit = np.random.default_rng(10_000 + seed).random(rest.size) < audit_share
    scored = []
    for n in (n_prev, n_cur):
        model = make_model(seed)
        proba = model.fit(X[order[:n]], y[order[:n]]).predict_proba(X[rest])
        scored.append((proba.max(axis=1), model.classes_[proba.argmax(axis=1)] == y[rest]))
    (c_prev, ok_prev), (c_cur, ok_cur) = scored
    before = certify(c_prev[audit], ok_prev[audit], EPS, DELTA, min_evidence=ONE_ERROR).threshold
    after = certify(c_cur[audit], ok_cur[audit], EPS, DELTA, min_evidence=ONE_ERROR, start_at=before)
    above = c_cur >= (np.inf if after.threshold is None else after.threshold)
    accepted = ~audit & above
    error = float((~ok_cur[accepted]).mean()) if accepted.any() else 0.0
    population = float((~ok_cur[above]).mean()) if above.any() else 0.0
    return {
        "held": before is not None,
        "auto_share": float(accepted.mean()),
        "error": error,
        "population_error": population,
    }


def held_summary() -> dict[str, Any]:
    """Violation rate of the held certificate over seeds, audit shares and both directions
    (a weaker champion replaced by a stronger one, and the reverse)."""
    runs = [
        held(seed, share, n_prev, n_cur)
        for seed in range(SEEDS)
        for share in SWEEP_AUDIT
        for n_prev, n_cur in ((200, 500), (500, 200), (300, 500))
    ]
    kept = [r for r in runs if r["held"]]
    return {
        "runs": len(runs),
        "runs_with_a_held_threshold": len(kept),
        "violation_rate": statistics.fmean(r["error"] > EPS for r in runs),
        "violation_rate_held": statistics.fmean(r["error"] > EPS for r in kept) if kept else None,
        "population_violation_rate": statistics.fmean(r["population_error"] > EPS for r in runs),
        "error_max": max(r["error"] for r in runs),
        "auto_share_median": statistics.median(r["auto_share"] for r in runs),
    }


def main() -> None:
    global MODEL, SEEDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", choices=sorted(MODELS), default=MODEL)
    parser.add_argument("--seeds", type=int, default=SEEDS)
    args = parser.parse_args()
    MODEL, SEEDS = args.model, args.seeds
    warnings.filterwarnings("ignore", message="The `probability` parameter", category=FutureWarning)
    main_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in RULES}
    sweep: list[dict[str, Any]] = []
    for n_train in SWEEP_TRAIN:
        streams = [stream(seed, n_train) for seed in range(SEEDS)]
        accuracy = statistics.median(float(s[1].mean()) for s in streams)
        for audit_share in SWEEP_AUDIT:
            is_main = (n_train, audit_share) == (N_TRAIN, AUDIT)
            rules = RULES if is_main else {k: RULES[k] for k in SWEEP_RULES}
            per_seed = [evaluate(s, audit_share, seed, rules) for seed, s in enumerate(streams)]
            row: dict[str, Any] = {
                "n_train": n_train,
                "audit_share": audit_share,
                "accuracy_median": accuracy,
            }
            for name in rules:
                runs = [r[name] for r in per_seed]
                row[name] = summarise(runs)
                if is_main:
                    main_runs[name] = runs
            sweep.append(row)
            shown = (
                f"{row[k]['auto_share_median']:.3f} (viol. {row[k]['violation_rate']:.2f})"
                for k in SWEEP_RULES
            )
            print(f"train {n_train} audit {audit_share:.0%} accuracy {accuracy:.3f}:", " | ".join(shown))
    meta = {
        "epsilon": EPS,
        "delta": DELTA,
        "seeds": SEEDS,
        "n_train": N_TRAIN,
        "audit_share": AUDIT,
        "model": MODELS[MODEL],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    results = {
        "meta": meta,
        "main": {name: {"summary": summarise(runs), "runs": runs} for name, runs in main_runs.items()},
        "sweep": sweep,
        "held_across_promotion": held_summary(),
    }
    RESULTS.mkdir(exist_ok=True)
    name = "guarantee" if MODEL == "svm" else f"guarantee_{MODEL}"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(results) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """The two tables: rules at the main setting, and the sweep."""
    main = results["main"]
    any_rule = next(iter(main.values()))["summary"]
    lines = [
        f"# Auto-accept with a guarantee: ε = {EPS}, δ = {DELTA}, digits, {SEEDS} seeds",
        "",
        f"Model: {results['meta']['model']}. Train {N_TRAIN} digits, stream the other "
        f"{1797 - N_TRAIN}; a uniform random "
        f"{AUDIT:.0%} of the stream (median {any_rule['n_audit_median']:.0f} items) is audited with its "
        f"true label and picks the threshold; shares and errors are over the other "
        f"{any_rule['n_other_median']:.0f} items. Generated by `bench/guarantee.py`.",
        "",
        "| rule | auto-accepted (median) | mean | min | of whole stream | error > ε (runs) | 95% interval "
        "| population error > ε (runs) | median error | max error | runs with nothing accepted |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in main.items():
        s = entry["summary"]
        low, high = rate_interval(s["violations"], s["runs"])
        lines.append(
            f"| {name} | {s['auto_share_median']:.1%} | {s['auto_share_mean']:.1%} "
            f"| {s['auto_share_min']:.1%} "
            f"| {s['auto_share_of_stream_median']:.1%} | {s['violation_rate']:.1%} "
            f"| {low:.1%} to {high:.1%} | {s['population_violation_rate']:.1%} "
            f"| {s['error_median']:.2%} | {s['error_max']:.2%} | {s['nothing_auto_accepted']} |"
        )
    lines += [
        "",
        "## What drives the share: training size and audit size",
        "",
        "*viol.*: share of runs whose realised auto-accept error exceeds ε, and in brackets whose "
        "population error does (all stream items at or above the threshold, audited included: what "
        "the certificate bounds). "
        "Auto-accepted share as median / mean over seeds; *none* counts runs that auto-accept nothing.",
        "",
        "| train | model accuracy | audit share | audited items | certified | viol. | none "
        f"| certified, start at {ONE_ERROR} | viol. | none | naive | viol. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["sweep"]:
        cells = [
            f"{s['auto_share_median']:.1%} / {s['auto_share_mean']:.1%} | {s['violation_rate']:.0%} "
            f"({s['population_violation_rate']:.0%})"
            + (f" | {s['nothing_auto_accepted']}" if name != NAIVE else "")
            for name in SWEEP_RULES
            for s in [row[name]]
        ]
        lines.append(
            f"| {row['n_train']} | {row['accuracy_median']:.3f} | {row['audit_share']:.0%} "
            f"| {row[CERTIFIED]['n_audit_median']:.0f} | " + " | ".join(cells) + " |"
        )
    kept = results["held_across_promotion"]
    lines += [
        "",
        "## A certificate held across a promotion",
        "",
        f"The previous champion certifies a threshold (scan from {ONE_ERROR} items); the new one is "
        "scanned on the same audit from that threshold down (`start_at`). Over "
        f"{kept['runs']} runs (seeds by audit shares by 200→500, 500→200 and 300→500 training digits; "
        f"{kept['runs_with_a_held_threshold']} with a threshold held), the new champion's realised "
        f"error exceeds ε in {kept['violation_rate']:.1%} of runs "
        f"(population error: {kept['population_violation_rate']:.1%}) "
        f"(max {kept['error_max']:.2%}, median auto-accepted share {kept['auto_share_median']:.1%}).",
    ]
    sweep = results["sweep"]
    pooled = {
        name: (
            statistics.fmean(row[name]["violation_rate"] for row in sweep),
            statistics.fmean(row[name]["population_violation_rate"] for row in sweep),
        )
        for name in SWEEP_RULES
    }
    lines += [
        "",
        f"Pooled over all {len(sweep) * SEEDS} sweep runs, the realised error (population error) "
        "exceeds ε in "
        + ", ".join(f"{real:.1%} ({pop:.1%}) of runs for *{name}*" for name, (real, pop) in pooled.items())
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
