"""Drift detection: speed on a 100,000 x 50 window pair against Evidently, and detection quality on
seeded shifts of known size (delay in windows, false alarms on stable windows), concept-drift
detectors on error streams, and coverage of the label-free accuracy interval.

    .venv/bin/python bench/drift.py            # Evidently runs in .venv-bench (a child process)

Writes results/drift.{json,md,png}.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"
ROWS, COLS, SHIFTED = 100_000, 50, (3, 17, 31)
REPEATS, PEER_REPEATS = 5, 3


def speed_windows() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Seeded standard normals; columns 3, 17, 31 shifted by 0.05, 0.1, 0.2 SD in the current window."""
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((ROWS, COLS))
    cur = rng.standard_normal((ROWS, COLS))
    for j, s in zip(SHIFTED, (0.05, 0.1, 0.2), strict=True):
        cur[:, j] += s
    return ref, cur, [f"x{j}" for j in range(COLS)]


def evidently_worker() -> None:
    """Runs inside .venv-bench: Evidently's DataDriftPreset on the same windows; JSON on stdout."""
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur, names = speed_windows()
    ref_df, cur_df = pd.DataFrame(ref, columns=names), pd.DataFrame(cur, columns=names)
    times, snap = [], None
    for _ in range(PEER_REPEATS):
        t = time.perf_counter()
        snap = Report([DataDriftPreset()]).run(cur_df, ref_df)
        times.append(time.perf_counter() - t)
    assert snap is not None
    values = {}
    for m in snap.dict()["metrics"]:
        if m["config"].get("type") == "evidently:metric_v2:ValueDrift":
            values[m["config"]["column"]] = float(m["value"])
    config = next(m["config"] for m in snap.dict()["metrics"] if "method" in m["config"])
    drifted = [c for c, v in values.items() if v >= config["threshold"]]
    method = f"{config['method']} >= {config['threshold']}"
    body = {"version": evidently.__version__, "times": times, "values": values, "method": method}
    print(json.dumps(body | {"drifted": drifted}))


def run_evidently() -> dict[str, Any]:
    if not BENCH_PY.exists():
        return {"error": f"{BENCH_PY} does not exist; see bench/README.md to create it"}
    done = subprocess.run(
        [str(BENCH_PY), __file__, "--evidently-worker"], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def speed() -> dict[str, Any]:
    from scipy import stats

    from loopwright.drift import data_drift

    ref, cur, names = speed_windows()
    out: dict[str, Any] = {"rows": ROWS, "columns": COLS}
    for label, kw in (("loopwright_univariate", {"domain_classifier": False}), ("loopwright_full", {})):
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            report = data_drift(ref, cur, names, **kw)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t)
        out[label] = {"median_s": statistics.median(times), "times": times, "drifted": report.drifted}
        out[label]["auc"] = report.domain_classifier_auc
        out["_report"] = report
    times = []
    for _ in range(2):
        t = time.perf_counter()
        for j in range(COLS):
            stats.ks_2samp(ref[:, j], cur[:, j], method="asymp")
            stats.wasserstein_distance(ref[:, j], cur[:, j])
        times.append(time.perf_counter() - t)
    out["scipy_per_column_loop"] = {"median_s": statistics.median(times), "times": times}
    peer = run_evidently()
    report = out.pop("_report")
    if "times" in peer:
        peer["median_s"] = statistics.median(peer["times"])
        ours = {f.name: f.wasserstein_normed for f in report.features}
        peer["max_abs_diff_wasserstein_normed_vs_loopwright"] = max(
            abs(ours[c] - v) for c, v in peer.pop("values").items()
        )
        for label in ("loopwright_univariate", "loopwright_full"):
            out[label]["speedup_vs_evidently"] = peer["median_s"] / out[label]["median_s"]
    out["evidently"] = peer
    return out


# ---------------------------------------------------------------- quality on seeded windows

N_REF, N_WIN, STABLE, DRIFTED, SEEDS = 2000, 1000, 20, 10, 10
NUM = 16  # numeric columns x0..x15, then c0, c1 (3 categories), b0, b1 (binary)
NAMES = [f"x{j}" for j in range(NUM)] + ["c0", "c1", "b0", "b1"]
SCENARIOS = {
    "mean +0.25 SD (x0)": "mean",
    "mean +0.1 SD (x0)": "small_mean",
    "variance x1.5 (x1)": "scale",
    "category shares (c0)": "category",
    "correlation 0 -> 0.8 (x2, x3)": "correlation",
    "gradual mean 0 -> 0.5 SD over 10 windows (x0)": "gradual",
}


def window(rng: np.random.Generator, n: int, kind: str | None = None, step: int = 0) -> np.ndarray:
    X = np.empty((n, len(NAMES)))
    X[:, :NUM] = rng.standard_normal((n, NUM))
    p = [0.5, 0.3, 0.2]
    if kind == "mean":
        X[:, 0] += 0.25
    elif kind == "small_mean":
        X[:, 0] += 0.1
    elif kind == "scale":
        X[:, 1] *= 1.5
    elif kind == "category":
        p = [0.42, 0.3, 0.28]
    elif kind == "correlation":
        X[:, 3] = 0.8 * X[:, 2] + 0.6 * X[:, 3]
    elif kind == "gradual":
        X[:, 0] += 0.05 * (step + 1)
    X[:, NUM] = rng.choice(3, n, p=p)
    X[:, NUM + 1] = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    X[:, NUM + 2] = rng.random(n) < 0.3
    X[:, NUM + 3] = rng.random(n) < 0.05
    return X


ALPHA, AUC_THRESHOLD = 0.05, 0.6
VERDICTS = ("before", "after")  # before: BH at alpha OR cross-validated AUC >= 0.6; after: data_drift
FLAGS = (*VERDICTS, *(f"{v}_{part}" for v in VERDICTS for part in ("univariate", "classifier")))


def verdicts(
    ref: np.ndarray, cur: np.ndarray, names: list[str], seed: int, categorical: list[str]
) -> dict[str, bool]:
    """Flags of the old rule (any feature at BH alpha, or the 3-fold AUC ≥ 0.6; each at its own
    level, so up to 2 alpha overall) and of today's ``data_drift`` (Bonferroni alpha / 2 each)."""
    from loopwright.drift import data_drift, domain_classifier_auc

    r = data_drift(ref, cur, names, categorical=categorical, seed=seed, alpha=ALPHA)
    tested = [names.index(f.name) for f in r.features if f.skipped is None]
    univariate = any(f.p_adjusted is not None and f.p_adjusted <= ALPHA for f in r.features)
    auc = domain_classifier_auc(ref[:, tested], cur[:, tested], seed=seed) if tested else 0.5
    return {
        "before": univariate or auc >= AUC_THRESHOLD,
        "before_univariate": univariate,
        "before_classifier": auc >= AUC_THRESHOLD,
        "after": r.drift,
        "after_univariate": bool(r.drifted),
        "after_classifier": r.domain_classifier_drift,
    }


def quality() -> dict[str, Any]:
    keys = FLAGS
    stable = dict.fromkeys(keys, 0) | {"windows": 0}
    delays: dict[str, dict[str, list[int | None]]] = {v: {s: [] for s in SCENARIOS} for v in VERDICTS}
    cats = ["c0", "c1"]
    for seed in range(SEEDS):
        rng = np.random.default_rng(1000 + seed)
        ref = window(rng, N_REF)
        for _ in range(STABLE):
            flags = verdicts(ref, window(rng, N_WIN), NAMES, seed, cats)
            stable["windows"] += 1
            for key in keys:
                stable[key] += int(flags[key])
        for name, kind in SCENARIOS.items():
            found: dict[str, int | None] = dict.fromkeys(VERDICTS)
            for step in range(DRIFTED):
                flags = verdicts(ref, window(rng, N_WIN, kind, step), NAMES, seed, cats)
                for v in VERDICTS:
                    if found[v] is None and flags[v]:
                        found[v] = step
                if all(found[v] is not None for v in VERDICTS):
                    break
            for v in VERDICTS:
                delays[v][name].append(found[v])
    summary: dict[str, Any] = {v: {} for v in VERDICTS}
    for v in VERDICTS:
        for name, ds in delays[v].items():
            hit = [d for d in ds if d is not None]
            summary[v][name] = {
                "delays": ds,
                "median_delay_windows": statistics.median(hit) if hit else None,
                "max_delay_windows": max(hit) if hit else None,
                "missed": ds.count(None),
                "first_window_share": sum(d == 0 for d in ds) / len(ds),
            }
    return {
        "reference_rows": N_REF,
        "window_rows": N_WIN,
        "seeds": SEEDS,
        "stable_windows_per_seed": STABLE,
        "false_alarms": stable,
        "false_alarm_rate": {v: stable[v] / stable["windows"] for v in VERDICTS},
        "delays": summary,
    }


# ------------------------------------------------- false alarms on real windows with no drift

REAL_WINDOWS = 70  # per data set; 3 data sets
REAL_ROWS = 200  # rows per window: the default drift.window of a project
SMS = ROOT.parent / "shared" / "data" / "text" / "sms_spam.csv"
CROWD = ROOT.parent / "shared" / "data" / "crowd" / "product" / "answers.csv"


def sms_features() -> tuple[np.ndarray, list[str]]:
    """Numbers a spam filter's monitor would watch, one row per message."""
    import csv
    import re

    with SMS.open(newline="", encoding="utf-8") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    rows = [
        [
            len(t),
            len(t.split()),
            sum(c.isdigit() for c in t),
            sum(c.isupper() for c in t) / max(1, len(t)),
            t.count("!"),
            len(re.findall(r"[^\w\s]", t)),
            int("http" in t.lower() or "www" in t.lower()),
            int(bool(re.search(r"\d{5,}", t))),
        ]
        for t in texts
    ]
    names = ["chars", "words", "digits", "upper_share", "exclamations", "punctuation", "url", "long_number"]
    return np.asarray(rows, dtype=float), names


def crowd_features() -> tuple[np.ndarray, list[str]]:
    """Per question of the product crowd set: its id (one row per category: skipped as an
    identifier), answers, share of 1s, agreement with the majority, and a row number."""
    import csv
    from collections import defaultdict

    answers: dict[str, list[int]] = defaultdict(list)
    with CROWD.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            answers[r["question"]].append(int(r["answer"]))
    rows = []
    for code, (_, votes) in enumerate(sorted(answers.items())):
        v = np.asarray(votes)
        share = float(v.mean())
        rows.append([code, len(v), share, max(share, 1 - share)])
    return np.asarray(rows, dtype=float), ["question", "answers", "share_ones", "agreement"]


def real_null() -> dict[str, Any]:
    """Rows pooled, shuffled and split into a reference and a current window: no drift by
    construction, so every flag is a false alarm."""
    from sklearn.datasets import load_digits

    sets = {
        "digits (64 pixels)": (load_digits().data, [f"p{j}" for j in range(64)], [], REAL_ROWS),
        "sms features (8 columns)": (*sms_features(), [], REAL_ROWS),
        "crowd product (4 columns, one row per question)": (*crowd_features(), ["question"], REAL_ROWS),
    }
    keys = FLAGS
    out: dict[str, Any] = {"windows_per_set": REAL_WINDOWS, "rows": REAL_ROWS, "sets": {}}
    for name, (X, names, cats, n) in sets.items():
        counts = dict.fromkeys(keys, 0)
        skipped: dict[str, str] = {}
        for w in range(REAL_WINDOWS):
            rows = np.random.default_rng([7, w]).permutation(len(X))
            ref, cur = X[rows[:n]], X[rows[n : 2 * n]]
            for key, flag in verdicts(ref, cur, names, w, cats).items():
                counts[key] += int(flag)
            if w == 0:
                from loopwright.drift import data_drift

                r = data_drift(ref, cur, names, categorical=cats, domain_classifier=False)
                skipped = {f.name: f.skipped for f in r.features if f.skipped and "identifier" in f.skipped}
        out["sets"][name] = {"counts": counts, "identifier_skipped": skipped}
        print(f"{name}: {counts}", file=sys.stderr)
    total = {k: sum(s["counts"][k] for s in out["sets"].values()) for k in keys}
    out["total"] = total
    out["windows"] = REAL_WINDOWS * len(sets)
    return out


def binomial_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate from ``k`` of ``n``."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


def concept() -> dict[str, Any]:
    from loopwright.drift import CHANGE_DETECTORS, detect_changes

    base, jumps, at, after, stable_len, seeds = 0.1, (0.15, 0.2, 0.3), 2000, 2000, 10_000, 20
    out: dict[str, Any] = {"base_error": base, "change_at": at, "seeds": seeds, "stable_items": stable_len}
    for method in CHANGE_DETECTORS:
        false_alarms = 0
        for s in range(seeds):
            rng = np.random.default_rng(s)
            false_alarms += len(detect_changes((rng.random(stable_len) < base).astype(int), method))
        per_jump = {}
        for p in jumps:
            ds: list[int | None] = []
            early = 0
            for s in range(seeds):
                rng = np.random.default_rng(100 + s)
                e = np.r_[rng.random(at) < base, rng.random(after) < p].astype(int)
                ch = detect_changes(e, method)
                early += sum(c < at for c in ch)
                late = [c - at for c in ch if c >= at]
                ds.append(late[0] if late else None)
            found = [d for d in ds if d is not None]
            per_jump[str(p)] = {
                "median_delay_items": statistics.median(found) if found else None,
                "missed": ds.count(None),
                "alarms_before_change": early,
            }
        out[method] = {
            "false_alarms_per_10k_stable_items": false_alarms / seeds * 10_000 / stable_len,
            "jumps": per_jump,
        }
    return out


def cbpe() -> dict[str, Any]:
    from loopwright.drift import estimate_accuracy_by_window

    covered, widths, errors = 0, [], []
    n_windows = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, 5000)
        x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
        p1 = 1 / (1 + np.exp(-2 * x))
        proba = np.column_stack([1 - p1, p1])
        correct = proba.argmax(axis=1) == y
        for est, c in zip(estimate_accuracy_by_window(proba, 500), np.split(correct, 10), strict=True):
            n_windows += 1
            covered += int(est.low <= c.mean() <= est.high)
            widths.append(est.high - est.low)
            errors.append(abs(est.expected - c.mean()))
    return {
        "windows": n_windows,
        "window_rows": 500,
        "coverage_95": covered / n_windows,
        "median_interval_width": statistics.median(widths),
        "median_abs_error": statistics.median(errors),
    }


def plot(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), gridspec_kw={"width_ratios": [1, 1.1, 1]})
    sp = result["speed"]
    labels = ["loopwright (univariate)", "loopwright (+ classifier)", "scipy loop (KS + W1)"]
    values = [sp["loopwright_univariate"]["median_s"], sp["loopwright_full"]["median_s"]]
    values.append(sp["scipy_per_column_loop"]["median_s"])
    if "median_s" in sp["evidently"]:
        labels.append(f"Evidently {sp['evidently']['version']} preset")
        values.append(sp["evidently"]["median_s"])
    y = np.arange(len(values))[::-1]
    axes[0].barh(y, values, color=["#4c9f70", "#4c9f70", "#999", "#c66"][: len(values)])
    axes[0].set_yticks(y, labels, fontsize=8)
    for yi, v in zip(y, values, strict=True):
        axes[0].text(v * 1.1, yi, f"{v:.2f} s", va="center", fontsize=8)
    axes[0].set(
        xscale="log", xlim=(0.3, 100), xlabel="seconds (median)", title=f"{ROWS:,} x {COLS} window pair"
    )
    q = result["quality"]["delays"]["after"]
    names = list(q)
    y = np.arange(len(names))[::-1]
    for yi, n in zip(y, names, strict=True):
        found = [d for d in q[n]["delays"] if d is not None]
        axes[1].scatter(found, [yi] * len(found), alpha=0.35, color="#4c72b0", s=30)
        if q[n]["missed"]:
            axes[1].text(DRIFTED - 0.3, yi, f"{q[n]['missed']} missed", va="center", ha="right", fontsize=8)
    axes[1].set_yticks(y, [n.split(" (")[0] for n in names], fontsize=8)
    axes[1].axvline(1, color="k", ls=":", lw=1)
    fa = result["quality"]["false_alarm_rate"]["after"]
    axes[1].set(xlim=(-0.5, DRIFTED), xlabel="delay (windows after the shift), one dot per seed")
    axes[1].set_title(f"Detection delay; false alarms on stable windows {fa:.1%}")
    c = result["concept"]
    from loopwright.drift import CHANGE_DETECTORS

    for method in CHANGE_DETECTORS:
        jumps = c[method]["jumps"]
        axes[2].plot(
            [float(j) for j in jumps],
            [jumps[j]["median_delay_items"] for j in jumps],
            marker="o",
            label=method,
        )
    axes[2].set(xlabel="error rate after the change (before: 0.1)", ylabel="median delay (items)")
    axes[2].set_title("Concept drift: audited error stream")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "drift.png", dpi=100)
    plt.close(fig)


def _rate(k: int, n: int) -> str:
    return f"{k} of {n} ({k / n:.1%}, 95 % upper bound {binomial_upper(k, n):.1%})"


def quality_lines(q: dict[str, Any], real: dict[str, Any] | None) -> list[str]:
    fa, n = q["false_alarms"], q["false_alarms"]["windows"]
    lines = [
        "",
        "## The overall verdict and its level",
        "",
        f"**Before**: a window was flagged when any feature drifted after Benjamini-Hochberg at alpha "
        f"{ALPHA} *or* the 3-fold cross-validated domain-classifier AUC reached {AUC_THRESHOLD}: two "
        "tests each at its own level, so up to 2 alpha overall. **After** (`data_drift` today): "
        "Bonferroni, alpha / 2 each: the per-feature family (BH's smallest adjusted p-value is Simes' "
        'p-value for "no feature drifts") at alpha / 2, and a classifier two-sample test (the same '
        "model fitted on a stratified half, Mann-Whitney p-value of its scores on the other half) "
        f"at alpha / 2, with the AUC still at least {AUC_THRESHOLD}. Bonferroni because the two tests "
        "read the same rows and their dependence is unknown: the union bound holds whatever it is "
        "(Simes would need positive dependence; the Cauchy combination is only asymptotically exact). "
        "The report's `p_value` is min(1, 2 min(p_features, p_classifier)). Identifier-like columns "
        "(every value distinct in both windows, and categorical or the windows' ranges disjoint, "
        "i.e. an id or timestamp) are skipped with that reason instead of tested.",
    ]
    if real is not None:
        t, m = real["total"], real["windows"]
        lines += [
            "",
            f"### False alarms on real windows with no drift ({m} windows, alpha {ALPHA})",
            "",
            f"Rows of each set pooled, shuffled (seeded) and split into a reference and a current window "
            f"of {real.get('rows', REAL_ROWS)} rows each (a project's default `drift.window`), "
            f"{real['windows_per_set']} windows per set: any flag is a false alarm.",
            "",
            "| data | before: overall | before: features | before: classifier | after: overall | "
            "after: features | after: classifier |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, s in real["sets"].items():
            c = s["counts"]
            lines.append(
                f"| {name} | {c['before']} | {c['before_univariate']} | {c['before_classifier']} | "
                f"{c['after']} | {c['after_univariate']} | {c['after_classifier']} |"
            )
        lines += [
            f"| **all** | {t['before']} | {t['before_univariate']} | {t['before_classifier']} | "
            f"{t['after']} | {t['after_univariate']} | {t['after_classifier']} |",
            "",
            f"Overall false-alarm rate: before {_rate(t['before'], m)}; after {_rate(t['after'], m)}.",
        ]
        for name, s in real["sets"].items():
            for col, why in s["identifier_skipped"].items():
                lines.append(f"\n{name}: column `{col}` skipped: {why}.")
    lines += [
        "",
        f"## Quality: seeded shifts, reference {q['reference_rows']:,} rows, windows of {q['window_rows']:,}",
        "",
        f"20 features (16 numeric, 2 three-level categorical, 2 binary); {q['seeds']} seeds; per seed "
        f"{q['stable_windows_per_seed']} stable windows, then each shift for up to {DRIFTED} windows. "
        "Delay 0 = flagged in the first shifted window.",
        "",
        f"False alarms on stable windows: before {_rate(fa['before'], n)} "
        f"(features {fa['before_univariate']}, classifier {fa['before_classifier']}); "
        f"after {_rate(fa['after'], n)} (features "
        f"{fa['after_univariate']}, classifier {fa['after_classifier']}).",
        "",
        "| shift | before: median delay | before: max | before: missed | before: first window | "
        "after: median delay | after: max | after: missed | after: first window |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in q["delays"]["before"]:
        b, a = q["delays"]["before"][name], q["delays"]["after"][name]
        lines.append(
            f"| {name} | {b['median_delay_windows']} | {b['max_delay_windows']} | {b['missed']} | "
            f"{b['first_window_share']:.0%} | {a['median_delay_windows']} | {a['max_delay_windows']} | "
            f"{a['missed']} | {a['first_window_share']:.0%} |"
        )
    return lines


def markdown(r: dict[str, Any]) -> str:
    sp, q, c, e = r["speed"], r["quality"], r["concept"], r["cbpe"]
    ev = sp["evidently"]
    lines = [
        "# Drift detection",
        "",
        f"Machine: {r['machine']}. Written by `bench/drift.py`.",
        "",
        f"## Speed: {ROWS:,} x {COLS} reference and current windows (float64)",
        "",
        "| method | median s | runs | speed-up vs Evidently |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("loopwright_univariate", "loopwright `data_drift` (KS, PSI, Wasserstein, BH), no classifier"),
        ("loopwright_full", "loopwright `data_drift` + domain classifier (5,000 rows a side, 3-fold)"),
        ("scipy_per_column_loop", "scipy `ks_2samp` + `wasserstein_distance`, a loop over columns"),
    ):
        ratio = sp[key].get("speedup_vs_evidently")
        lines.append(
            f"| {label} | {sp[key]['median_s']:.2f} | {len(sp[key]['times'])} | "
            f"{'' if ratio is None else f'{ratio:.0f}x'} |"
        )
    if "median_s" in ev:
        lines.append(
            f"| Evidently {ev['version']} `DataDriftPreset` ({ev['method']}) | {ev['median_s']:.2f} | "
            f"{len(ev['times'])} | 1x |"
        )
        lines += [
            "",
            f"loopwright (KS + BH at 0.05) flags {', '.join(sp['loopwright_univariate']['drifted'])}; "
            f"Evidently flags {', '.join(ev['drifted']) or 'none'} (above 1,000 rows it switches to an "
            "effect-size threshold, not a test). The shifted columns are "
            f"{', '.join(f'x{j}' for j in SHIFTED)} "
            "(+0.05, +0.1, +0.2 SD). loopwright's Wasserstein/SD equals Evidently's per-column value to "
            f"{ev['max_abs_diff_wasserstein_normed_vs_loopwright']:.1e}.",
        ]
    else:
        lines += ["", f"Evidently did not run: {ev.get('error')}"]
    lines += quality_lines(q, r.get("real_null"))
    lines += [
        "",
        f"## Concept drift on a 0/1 error stream (error {c['base_error']} before item {c['change_at']:,})",
        "",
        f"{c['seeds']} seeds. Median delay in audited items after the change; missed = no alarm in the "
        "2,000 items after it; false alarms on stable streams of 10,000 items at the base rate.",
        "",
        "| detector | false alarms / 10k stable items | "
        + " | ".join(f"delay to {j} (missed)" for j in c["adwin"]["jumps"])
        + " |",
        "|---|---|" + "---|" * len(c["adwin"]["jumps"]),
    ]
    from loopwright.drift import CHANGE_DETECTORS

    for m in CHANGE_DETECTORS:
        cells = [f"{v['median_delay_items']} ({v['missed']})" for v in c[m]["jumps"].values()]
        lines.append(f"| {m} | {c[m]['false_alarms_per_10k_stable_items']:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Label-free accuracy (CBPE-style) on a calibrated model",
        "",
        f"{e['windows']} windows of {e['window_rows']} rows (two Gaussian classes, exact Bayes "
        f"posterior): the 95 % interval covers the realised accuracy in **{e['coverage_95']:.1%}** of "
        f"windows; median width {e['median_interval_width']:.3f}, median |estimate - truth| "
        f"{e['median_abs_error']:.4f}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if "--evidently-worker" in sys.argv:
        evidently_worker()
        return
    if "--plot-only" in sys.argv:
        plot(json.loads((RESULTS / "drift.json").read_text()))
        return
    if "--quality-only" in sys.argv:  # keep the speed, concept and CBPE sections of the last run
        result = json.loads((RESULTS / "drift.json").read_text())
        result["real_null"] = real_null()
        result["quality"] = quality()
        (RESULTS / "drift.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "drift.md").write_text(markdown(result))
        plot(result)
        print(markdown(result))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at start, Python {platform.python_version()}, numpy {np.__version__}",
    }
    t0 = time.perf_counter()
    result["speed"] = speed()
    print(f"speed done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    result["real_null"] = real_null()
    result["quality"] = quality()
    print(f"quality done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    result["concept"] = concept()
    result["cbpe"] = cbpe()
    (RESULTS / "drift.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "drift.md").write_text(markdown(result))
    plot(result)
    print(markdown(result))


if __name__ == "__main__":
    main()
