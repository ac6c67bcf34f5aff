"""The image default: logistic regression against an RBF SVM with Platt-calibrated probabilities.

On scikit-learn's digits (450 held out, stratified, seeds 0-2) after n labels: held-out accuracy,
expected calibration error (10 bins), the share of predictions with confidence ≥ 0.9 and 0.95
and the error among them (what certification rewards), and the median fit time.
Writes bench/results/default_model.md. Run: python bench/default_model.py
"""

from __future__ import annotations

import itertools
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

OUT = Path(__file__).parent / "results" / "default_model.md"


def ece(proba: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    conf = proba.max(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return total


def models(seed: int) -> dict[str, object]:
    return {
        "logistic regression (old default, C=0.3)": make_pipeline(
            StandardScaler(), LogisticRegression(C=0.3, max_iter=2000, random_state=seed)
        ),
        "RBF SVM, Platt probabilities (new default)": SVC(probability=True, random_state=seed),
    }


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    digits = load_digits()
    X, y = digits.data, digits.target
    rows = []
    for n in (300, 1000, 1300):
        for name in models(0):
            acc, e, share90, err90, share95, err95, fit = [], [], [], [], [], [], []
            for seed in range(3):
                Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=450, stratify=y, random_state=seed)
                model = models(seed)[name]
                t = time.perf_counter()
                model.fit(Xtr[:n], ytr[:n])  # type: ignore[attr-defined]
                fit.append(time.perf_counter() - t)
                proba = model.predict_proba(Xte)  # type: ignore[attr-defined]
                right = model.classes_[proba.argmax(axis=1)] == yte  # type: ignore[attr-defined]
                conf = proba.max(axis=1)
                acc.append(right.mean())
                e.append(ece(proba, right))
                share90.append((conf >= 0.9).mean())
                err90.append(1 - right[conf >= 0.9].mean())
                share95.append((conf >= 0.95).mean())
                err95.append(1 - right[conf >= 0.95].mean())
            rows.append(
                f"| {n} | {name} | {np.mean(acc):.3f} | {np.mean(e):.3f} | {np.mean(share90):.0%} | "
                f"{np.mean(err90):.2%} | {np.mean(share95):.0%} | {np.mean(err95):.2%} | "
                f"{np.median(fit):.2f} |"
            )
    OUT.write_text(
        "# The image default model (digits, 450 held out, mean of seeds 0-2)\n\n"
        "| labels | model | accuracy | ECE | share ≥ 0.9 | error there | share ≥ 0.95 | error there "
        "| fit s (median) |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "The SVM's ECE is a little higher (its Platt probabilities are under-confident), but it is more "
        "accurate and makes fewer errors among its confident predictions, which is what a certified "
        "threshold needs. Timings on a shared, loaded 2-core machine.\n"
    )
    print(OUT.read_text())


if __name__ == "__main__":
    main()
