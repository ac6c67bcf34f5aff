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


def quality() -> dict[str, Any]:
    from loopwright.drift import data_drift

    def check(ref: np.ndarray, cur: np.ndarray, seed: int) -> tuple[bool, bool, bool]:
        r = data_drift(ref, cur, NAMES, categorical=["c0", "c1"], seed=seed)
        return r.drift, bool(r.drifted), r.domain_classifier_drift

    stable = {"any": 0, "univariate": 0, "classifier": 0, "windows": 0}
    delays: dict[str, list[int | None]] = {s: [] for s in SCENARIOS}
    for seed in range(SEEDS):
        rng = np.random.default_rng(1000 + seed)
        ref = window(rng, N_REF)
        for _ in range(STABLE):
            flags = check(ref, window(rng, N_WIN), seed)
            stable["windows"] += 1
            for key, flag in zip(("any", "univariate", "classifier"), flags, strict=True):
                stable[key] += int(flag)
        for name, kind in SCENARIOS.items():
            delay = None
            for step in range(DRIFTED):
                if check(ref, window(rng, N_WIN, kind, step), seed)[0]:
                    delay = step
                    break
            delays[name].append(delay)
    summary = {}
    for name, ds in delays.items():
        found = [d for d in ds if d is not None]
        summary[name] = {
            "delays": ds,
            "median_delay_windows": statistics.median(found) if found else None,
            "max_delay_windows": max(found) if found else None,
            "missed": ds.count(None),
        }
    return {
        "reference_rows": N_REF,
        "window_rows": N_WIN,
        "seeds": SEEDS,
        "stable_windows_per_seed": STABLE,
        "false_alarms": stable,
        "false_alarm_rate": stable["any"] / stable["windows"],
        "delays": summary,
    }


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
    q = result["quality"]["delays"]
    names = list(q)
    y = np.arange(len(names))[::-1]
    for yi, n in zip(y, names, strict=True):
        found = [d for d in q[n]["delays"] if d is not None]
        axes[1].scatter(found, [yi] * len(found), alpha=0.35, color="#4c72b0", s=30)
        if q[n]["missed"]:
            axes[1].text(DRIFTED - 0.3, yi, f"{q[n]['missed']} missed", va="center", ha="right", fontsize=8)
    axes[1].set_yticks(y, [n.split(" (")[0] for n in names], fontsize=8)
    axes[1].axvline(1, color="k", ls=":", lw=1)
    fa = result["quality"]["false_alarm_rate"]
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
    lines += [
        "",
        f"## Quality: seeded shifts, reference {q['reference_rows']:,} rows, windows of {q['window_rows']:,}",
        "",
        f"20 features (16 numeric, 2 three-level categorical, 2 binary); {q['seeds']} seeds; per seed "
        f"{q['stable_windows_per_seed']} stable windows, then each shift for up to {DRIFTED} windows. "
        "A window is flagged when any feature drifts after Benjamini-Hochberg at alpha 0.05 or the "
        "domain classifier's AUC reaches 0.6. Delay 0 = flagged in the first shifted window.",
        "",
        f"False alarms on stable windows: **{q['false_alarms']['any']} of {q['false_alarms']['windows']}** "
        f"({q['false_alarm_rate']:.1%}); univariate tests {q['false_alarms']['univariate']}, "
        f"domain classifier {q['false_alarms']['classifier']}.",
        "",
        "| shift | median delay (windows) | max delay | missed (of seeds) |",
        "|---|---|---|---|",
    ]
    for name, s in q["delays"].items():
        lines.append(f"| {name} | {s['median_delay_windows']} | {s['max_delay_windows']} | {s['missed']} |")
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at start, Python {platform.python_version()}, numpy {np.__version__}",
    }
    t0 = time.perf_counter()
    result["speed"] = speed()
    print(f"speed done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
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
