"""The image default: an RBF SVM with Platt-calibrated probabilities, against logistic regression,
against the SVM's other C values, and against scikit-learn's suggested replacement for
``SVC(probability=True)`` (deprecated in 1.9): ``CalibratedClassifierCV(SVC(), ensemble=False)``.

On scikit-learn's digits (450 held out, stratified, seeds 0-2) after n labels: held-out accuracy,
expected calibration error (10 bins), the share of predictions with confidence ≥ 0.9 and 0.95
and the error among them (what certification rewards), and the median fit time. Then the cold
start: 1-15 labels per class, the suggestion (the probabilities' argmax) of Platt's SVM against
the default's, which sums the pairwise decision values below 4 labels per class.
Writes bench/results/default_model.md. Run: python bench/default_model.py
"""

from __future__ import annotations

import itertools
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from loopwright.cli.demo import demo_config
from loopwright.learning import default_estimator
from loopwright.learning.estimators import IMAGE_C

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
        "logistic regression (default before issue 14, C=0.3)": make_pipeline(
            StandardScaler(), LogisticRegression(C=0.3, max_iter=2000, random_state=seed)
        ),
        "RBF SVM, Platt, C=1 (default before session 20)": SVC(probability=True, random_state=seed),
        f"RBF SVM, Platt, C={IMAGE_C:g} (the default)": default_estimator(demo_config(), seed),
        "RBF SVM, Platt, C=10": SVC(C=10, probability=True, random_state=seed),
        f"CalibratedClassifierCV(SVC(C={IMAGE_C:g}), ensemble=False), sigmoid": CalibratedClassifierCV(
            SVC(C=IMAGE_C, random_state=seed), ensemble=False
        ),
    }


def share(right: np.ndarray) -> str:
    """The error among some predictions, or "none" when there are none."""
    return f"{1 - right.mean():.2%}" if right.size else "none"


def cold_start(X: np.ndarray, y: np.ndarray) -> list[str]:
    """Per labels per class: the suggestion's accuracy, its agreement with the SVM's ``predict``
    and the AUROC of confidence against correctness, Platt's SVM | the default (6 draws)."""
    rows = []
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=450, stratify=y, random_state=0)
    for per in (1, 2, 3, 4, 5, 8, 15):
        got: dict[str, list[tuple[float, float, float]]] = {"platt": [], "default": []}
        for draw in range(6):
            rng = np.random.default_rng(draw)
            idx = np.concatenate(
                [rng.choice(np.flatnonzero(ytr == c), per, replace=False) for c in range(10)]
            )
            for name, model in (
                ("platt", SVC(C=IMAGE_C, probability=True, random_state=draw)),
                ("default", default_estimator(demo_config(), draw)),
            ):
                model.fit(Xtr[idx], ytr[idx])
                proba = model.predict_proba(Xte)
                suggested = model.classes_[proba.argmax(axis=1)]
                right = suggested == yte
                auc = roc_auc_score(right, proba.max(axis=1)) if 0 < right.mean() < 1 else np.nan
                got[name].append((right.mean(), (suggested == model.predict(Xte)).mean(), auc))
        p, d = (np.nanmean(got[k], axis=0) for k in ("platt", "default"))
        rows.append(
            f"| {per} | {p[0]:.3f} · {d[0]:.3f} | {p[1]:.0%} · {d[1]:.0%} | {p[2]:.3f} · {d[2]:.3f} |"
        )
    return rows


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", "The least populated class", UserWarning)
    digits = load_digits()
    X, y = digits.data, digits.target
    rows = []
    for n in (100, 300, 1000, 1300):
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
                err90.append(right[conf >= 0.9])
                share95.append((conf >= 0.95).mean())
                err95.append(right[conf >= 0.95])
            rows.append(
                f"| {n} | {name} | {np.mean(acc):.3f} | {np.mean(e):.3f} | {np.mean(share90):.0%} | "
                f"{share(np.concatenate(err90))} | {np.mean(share95):.0%} | {share(np.concatenate(err95))} | "
                f"{np.median(fit):.2f} |"
            )
    OUT.write_text(
        "# The image default model (digits, 450 held out, seeds 0-2: means; errors pooled)\n\n"
        "| labels | model | accuracy | ECE | share ≥ 0.9 | error there | share ≥ 0.95 | error there "
        "| fit s (median) |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "The SVM's ECE is a little higher (its Platt probabilities are under-confident), but it is more "
        "accurate and makes fewer errors among its confident predictions, which is what a certified "
        "threshold needs. C=3 (the default since session 20) is as confident and as rarely wrong there "
        "as C=1 and more accurate with few labels. scikit-learn's suggested replacement for the "
        "deprecated `probability=True` calibrates the one-vs-rest decision values per class: it is "
        "better calibrated on average (lower ECE) but ranks worse, with about 1 % errors among its "
        "most confident predictions, where libsvm's pairwise-coupled Platt probabilities have none "
        "(`guarantee.md`: it certifies almost nothing). none: no prediction that confident. "
        "Timings on a shared, loaded 2-core machine.\n\n"
        "## Cold start: the first labels (450 held out, split seed 0, 6 draws of n labels per class)\n\n"
        "Each cell: the SVM with Platt probabilities · the default (`learning/svm.py`: below 4 labels "
        "per class on average, a softmax of each class's summed pairwise decision values). The "
        "suggestion is the probabilities' argmax, what a reviewer is shown and the loop predicts; "
        "AUROC: of its confidence against its correctness (how well uncertainty sampling and "
        "routing rank).\n\n"
        "| labels per class | suggestion right | agrees with `predict` | AUROC |\n|---|---|---|---|\n"
        + "\n".join(cold_start(X, y))
        + "\n"
    )
    print(OUT.read_text())


if __name__ == "__main__":
    main()
