"""Data drift between a reference and a current window: per-feature tests chosen by type and size,
distances, multiple-testing correction and a multivariate domain classifier, in one report.

The verdict holds the stated ``alpha`` overall: the per-feature family (its Simes p-value, which
is what Benjamini-Hochberg rejects on) and the domain classifier's test each get ``alpha / 2``
(Bonferroni: valid whatever the dependence between the two, which share the same rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from loopwright.drift import univariate as uv
from loopwright.drift.classifier import domain_classifier_test
from loopwright.drift.correction import adjust_pvalues
from loopwright.errors import Invalid


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's test. ``skipped`` says why no test ran (then ``drift`` is False)."""

    name: str
    kind: str  # "numeric" or "categorical"
    test: str  # "ks", "chi2" or "none"
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    drift: bool
    psi: float | None = None
    wasserstein: float | None = None
    wasserstein_normed: float | None = None
    jensen_shannon: float | None = None
    n_reference: int = 0
    n_current: int = 0
    missing_reference: float = 0.0
    missing_current: float = 0.0
    skipped: str | None = None


@dataclass(frozen=True)
class DataDriftReport:
    """``drift`` is True when any feature drifts after correction at ``alpha_features`` or the
    domain classifier's p-value is ≤ ``alpha / 2`` with its AUC at least ``auc_threshold``.

    ``p_value`` is the overall Bonferroni p-value ``min(1, 2 min(features, classifier))`` (the
    features' alone when the classifier did not run)."""

    drift: bool
    features: list[FeatureDrift]
    alpha: float
    correction: str
    n_reference: int
    n_current: int
    domain_classifier_auc: float | None
    domain_classifier_drift: bool
    auc_threshold: float
    domain_classifier_skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    alpha_features: float | None = None
    features_p_value: float | None = None
    domain_classifier_p_value: float | None = None
    p_value: float | None = None
    combination: str = "bonferroni"

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drift]

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        tested = [f for f in self.features if f.skipped is None]
        return {
            "drift": self.drift,
            "n_features": len(self.features),
            "n_tested": len(tested),
            "n_drifted": len(self.drifted),
            "drifted": self.drifted,
            "alpha": self.alpha,
            "correction": self.correction,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "domain_classifier_auc": self.domain_classifier_auc,
            "domain_classifier_drift": self.domain_classifier_drift,
            "auc_threshold": self.auc_threshold,
            "domain_classifier_skipped": self.domain_classifier_skipped,
            "alpha_features": self.alpha_features,
            "features_p_value": self.features_p_value,
            "domain_classifier_p_value": self.domain_classifier_p_value,
            "p_value": self.p_value,
            "combination": self.combination,
            "notes": list(self.notes),
            "features": [asdict(f) for f in self.features],
        }


def _matrix(x: Any, names: Sequence[str], which: str) -> np.ndarray:
    try:
        arr = np.array(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"the {which} window must be a numeric 2-D array (encode categorical columns as codes): {exc}"
        ) from None
    if arr.ndim != 2:
        raise Invalid(f"the {which} window must be 2-D (rows x columns), got {arr.ndim}-D")
    if arr.shape[1] != len(names):
        raise Invalid(f"the {which} window has {arr.shape[1]} columns but {len(names)} column names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if list(names).count(n) > 1})
        raise Invalid(f"duplicate column name(s) in the {which} window: {', '.join(dup)}")
    if arr.shape[0] == 0:
        raise Invalid(f"the {which} window has no rows")
    arr[~np.isfinite(arr)] = np.nan
    return arr


def _skip(name: str, kind: str, reason: str, **extra: Any) -> FeatureDrift:
    return FeatureDrift(name, kind, "none", None, None, None, False, skipped=reason, **extra)


def _distinct(x: np.ndarray) -> int:
    return 0 if x.size == 0 else int(np.count_nonzero(x[1:] != x[:-1])) + 1


def _identifier(a: np.ndarray, b: np.ndarray, categorical: bool) -> str | None:
    """Why a column looks like an identifier (sorted, non-missing values ``a``, ``b``), or None.

    Every value distinct in both windows, and either categorical (one row per category) or whole
    numbers whose windows' ranges do not overlap (a timestamp or a running id): a test would only
    say the windows were taken at different times. A real-valued feature that moved so far that
    the ranges part is drift, not an identifier."""
    if _distinct(a) < a.size or _distinct(b) < b.size:
        return None
    if categorical:
        return "identifier-like: every value is its own category (one row per category), nothing to compare"
    whole = bool(np.all(np.mod(a, 1) == 0) and np.all(np.mod(b, 1) == 0))  # ids, epoch seconds
    if whole and (a[-1] < b[0] or b[-1] < a[0]):
        return (
            "identifier-like: every value distinct and the windows' ranges do not overlap "
            "(a timestamp or running id), so any test would flag it"
        )
    return None


def data_drift(
    reference: Any,
    current: Any,
    columns: Sequence[str],
    *,
    current_columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    alpha: float = 0.05,
    correction: str = "bh",
    max_categories: int = 10,
    min_rows: int = 30,
    psi_bins: int = 10,
    domain_classifier: bool = True,
    auc_threshold: float = 0.6,
    max_rows: int = 5000,
    seed: int = 0,
) -> DataDriftReport:
    """Compare two windows (rows x columns, numbers; NaN or ±inf = missing) feature by feature.

    Columns are matched by name (``current_columns`` when the current window's differ). A column
    is tested with χ² when listed in ``categorical`` or when both windows hold at most
    ``max_categories`` distinct values; otherwise with the two-sample KS test. PSI is reported
    for both, Wasserstein (raw and divided by the reference standard deviation) for numbers,
    Jensen-Shannon for categories. p-values are corrected with ``correction`` (``bh``
    Benjamini-Hochberg, ``holm``, ``none``) over the tested features; a feature drifts when its
    adjusted p-value is ≤ ``alpha / 2`` (``alpha`` when the domain classifier does not run).
    Features that cannot be tested (only in one window, all missing, fewer than ``min_rows``
    values, constant in both, identifier-like) get a ``skipped`` reason and the rest of the
    report is still produced.
    """
    if not 0 < alpha < 1:
        raise Invalid(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if min_rows < 2:
        raise Invalid(f"min_rows must be at least 2, got {min_rows}")
    ref_names = [str(c) for c in columns]
    cur_names = ref_names if current_columns is None else [str(c) for c in current_columns]
    ref = _matrix(reference, ref_names, "reference")
    cur = _matrix(current, cur_names, "current")
    unknown = sorted(set(categorical) - set(ref_names) - set(cur_names))
    if unknown:
        raise Invalid(f"categorical column(s) not in either window: {', '.join(unknown)}")
    shared = [c for c in ref_names if c in set(cur_names)]
    if not shared:
        raise Invalid(
            "the windows share no column: reference has "
            f"{', '.join(ref_names) or 'none'}; current has {', '.join(cur_names) or 'none'}"
        )
    cur_pos = {c: i for i, c in enumerate(cur_names)}
    ref_pos = {c: i for i, c in enumerate(ref_names)}
    R = np.ascontiguousarray(np.sort(ref[:, [ref_pos[c] for c in shared]], axis=0).T)
    C = np.ascontiguousarray(np.sort(cur[:, [cur_pos[c] for c in shared]], axis=0).T)
    n_ref = (~np.isnan(R)).sum(axis=1)
    n_cur = (~np.isnan(C)).sum(axis=1)
    cats = set(categorical)

    results: dict[str, FeatureDrift] = {}
    for j, name in enumerate(shared):
        a, b = R[j, : n_ref[j]], C[j, : n_cur[j]]
        counts: dict[str, Any] = {
            "n_reference": int(a.size),
            "n_current": int(b.size),
            "missing_reference": 1 - a.size / len(ref) if len(ref) else 1.0,
            "missing_current": 1 - b.size / len(cur) if len(cur) else 1.0,
        }
        kind = "categorical" if name in cats else "numeric"
        if a.size == 0 or b.size == 0:
            window = "reference" if a.size == 0 else "current"
            results[name] = _skip(name, kind, f"all values missing in the {window} window", **counts)
            continue
        if min(a.size, b.size) < min_rows:
            window = "reference" if a.size < b.size else "current"
            results[name] = _skip(
                name, kind,
                f"only {min(a.size, b.size)} non-missing values in the {window} window, fewer than "
                f"min_rows={min_rows}: use longer windows or lower min_rows",
                **counts,
            )  # fmt: skip
            continue
        if a[0] == a[-1] == b[0] == b[-1]:
            results[name] = _skip(
                name, kind, f"constant ({a[0]:g}) in both windows: nothing to compare", **counts
            )
            continue
        identifier = _identifier(a, b, kind == "categorical")
        if identifier is not None:
            results[name] = _skip(name, kind, identifier, **counts)
            continue
        if kind == "categorical" or max(_distinct(a), _distinct(b)) <= max_categories:
            _, count_a, count_b = uv.category_counts(a, b)
            stat, p = uv.chi2_test(count_a, count_b)
            results[name] = FeatureDrift(
                name, "categorical", "chi2", stat, p, None, False,
                psi=uv.psi_from_shares(count_a / a.size, count_b / b.size),
                jensen_shannon=uv.js_distance(count_a, count_b),
                **counts,
            )  # fmt: skip
        else:
            d = uv.ks_statistic(a, b)
            w = uv.wasserstein(a, b)
            sd = float(a.std())
            results[name] = FeatureDrift(
                name, "numeric", "ks", d, uv.ks_pvalue(d, a, b), None, False,
                psi=uv.numeric_psi(a, b, psi_bins),
                wasserstein=w,
                wasserstein_normed=w / sd if sd > 0 else None,
                **counts,
            )  # fmt: skip

    tested = [n for n in shared if results[n].skipped is None]
    adjusted = adjust_pvalues([results[n].p_value or 0.0 for n in tested], correction)
    only_ref = [_skip(c, "categorical" if c in cats else "numeric",
                      "only in the reference window: add it to the current data or drop it")
                for c in ref_names if c not in cur_pos]  # fmt: skip
    only_cur = [_skip(c, "categorical" if c in cats else "numeric",
                      "only in the current window: add it to the reference data or drop it")
                for c in cur_names if c not in ref_pos]  # fmt: skip

    auc: float | None = None
    p_domain: float | None = None
    auc_skip: str | None = None
    if not domain_classifier:
        auc_skip = "not requested"
    elif not tested:
        auc_skip = "no testable feature"
    else:
        try:
            auc, p_domain = domain_classifier_test(
                ref[:, [ref_pos[c] for c in tested]],
                cur[:, [cur_pos[c] for c in tested]],
                max_rows=max_rows,
                seed=seed,
            )
        except Invalid as exc:
            auc_skip = exc.message
    split = alpha / 2 if p_domain is not None else alpha
    for n, p_adj in zip(tested, adjusted, strict=True):
        results[n] = replace(results[n], p_adjusted=float(p_adj), drift=bool(p_adj <= split))
    features = [results[n] for n in shared] + only_ref + only_cur
    auc_drift = auc is not None and p_domain is not None and p_domain <= split and auc >= auc_threshold
    p_features = _family_p(adjusted, correction)
    p_all = [p for p in (p_features, p_domain) if p is not None]
    p_value = min(1.0, len(p_all) * min(p_all)) if p_all else None
    notes = []
    if auc_drift and not any(f.drift for f in features):
        notes.append("the domain classifier separates the windows but no single feature drifts: "
                     "look for changed relations between features")  # fmt: skip
    return DataDriftReport(
        drift=auc_drift or any(f.drift for f in features),
        features=features,
        alpha=alpha,
        correction=correction,
        n_reference=len(ref),
        n_current=len(cur),
        domain_classifier_auc=auc,
        domain_classifier_drift=auc_drift,
        auc_threshold=auc_threshold,
        domain_classifier_skipped=auc_skip,
        notes=notes,
        alpha_features=split,
        features_p_value=p_features,
        domain_classifier_p_value=p_domain,
        p_value=p_value,
    )


def _family_p(adjusted: np.ndarray, correction: str) -> float | None:
    """The per-feature family's p-value for "no feature drifts": the smallest adjusted p-value
    (Simes' test for ``bh``, Holm's Bonferroni for ``holm``; ``none`` gets Bonferroni)."""
    if adjusted.size == 0:
        return None
    smallest = float(adjusted.min())
    return min(1.0, smallest * adjusted.size) if correction == "none" else smallest
