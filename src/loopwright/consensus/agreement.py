"""Inter-annotator agreement: percent agreement, Cohen's κ per pair, Fleiss' κ, Krippendorff's alpha."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.consensus.answers import Answers, encode


def rating_counts(ans: Answers) -> NDArray[np.float64]:
    """``counts[i, k]``: how many answers put item ``i`` in class ``k``."""
    counts = np.zeros((len(ans.items), len(ans.classes)))
    np.add.at(counts, (ans.item_idx, ans.label_idx), 1.0)
    return counts


def percent_agreement(counts: NDArray[np.float64]) -> float | None:
    """Mean over items with ≥ 2 ratings of the share of agreeing rater pairs."""
    per_item = _item_agreement(counts)
    return None if per_item.size == 0 else float(per_item.mean())


def fleiss_kappa(counts: NDArray[np.float64]) -> float | None:
    """Fleiss' κ allowing a different number of ratings ``n_i`` per item; items with < 2 dropped.

    Per-item agreement uses that item's ``n_i``; chance agreement uses the pooled class shares.
    """
    kept = counts[counts.sum(axis=1) >= 2]
    if kept.size == 0:
        return None
    p_bar = _item_agreement(kept).mean()
    share = kept.sum(axis=0) / kept.sum()
    p_e = float((share**2).sum())
    return None if p_e >= 1.0 else float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha(counts: NDArray[np.float64]) -> float | None:
    """Nominal Krippendorff's alpha from item x class counts (``krippendorff`` package); None if undefined."""
    if (counts.sum(axis=0) > 0).sum() < 2 or not (counts.sum(axis=1) >= 2).any():
        return None  # one value only, or no item with two answers: agreement is undefined
    import krippendorff  # on use: keeps the review path's start-up light

    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def cohen_kappas(ans: Answers, min_shared: int = 2) -> list[dict[str, Any]]:
    """Cohen's κ and nominal Krippendorff's alpha for every worker pair sharing ≥ ``min_shared``
    items, on the items both answered; a figure is None when undefined (one class only)."""
    n_items, n_workers, k = len(ans.items), len(ans.workers), len(ans.classes)
    said = []  # said[a][i, w] = 1 if worker w answered class a on item i
    for a in range(k):
        rows = ans.label_idx == a
        from scipy import sparse  # on use: keeps start-up light

        m = sparse.csr_matrix(
            (np.ones(int(rows.sum())), (ans.item_idx[rows], ans.worker_idx[rows])), shape=(n_items, n_workers)
        )
        m.data[:] = 1.0  # a repeated answer counts once
        said.append(m)
    # table[w, v, a, b] = items where worker w said a and worker v said b
    table = np.stack(
        [np.stack([(said[a].T @ said[b]).toarray() for b in range(k)], -1) for a in range(k)], -2
    )
    shared = table.sum(axis=(2, 3))
    w, v = np.nonzero(np.triu(shared >= min_shared, k=1))
    t = table[w, v]
    n = shared[w, v]
    p_o = np.einsum("pkk->p", t) / n
    p_e = (t.sum(axis=2) * t.sum(axis=1)).sum(axis=1) / n**2
    # Krippendorff: coincidences o = t + tᵀ over N = 2n pairable values;
    # alpha = 1 - (N - 1)(N - sum_c o_cc) / (N^2 - sum_c n_c^2)
    coincide = t + t.transpose(0, 2, 1)
    n_values = 2.0 * n
    n_c = coincide.sum(axis=2)
    expected = n_values**2 - (n_c**2).sum(axis=1)
    observed = n_values - np.einsum("pkk->p", coincide)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (p_o - p_e) / (1.0 - p_e)
        alpha = 1.0 - (n_values - 1.0) * observed / expected
    names = ans.workers.tolist()
    return [
        {
            "a": names[a],
            "b": names[b],
            "shared_items": int(m),
            "kappa": None if pe >= 1.0 else round(float(kp), 6),
            "krippendorff_alpha": None if ex <= 0.0 else round(float(al), 6),
        }
        for a, b, m, pe, kp, ex, al in zip(
            w.tolist(),
            v.tolist(),
            n.tolist(),
            p_e.tolist(),
            kappa.tolist(),
            expected.tolist(),
            alpha.tolist(),
            strict=True,
        )
    ]


def agreement_report(items: Sequence[str], workers: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Overall, per label (one-vs-rest) and per worker pair agreement, as JSON-friendly values."""
    ans = encode(items, workers, labels)
    counts = rating_counts(ans)
    per_label = {}
    for j, label in enumerate(ans.classes.tolist()):
        ovr = np.stack([counts[:, j], counts.sum(axis=1) - counts[:, j]], axis=1)
        per_label[label] = {
            "fleiss_kappa": _round(fleiss_kappa(ovr)),
            "krippendorff_alpha": _round(krippendorff_alpha(ovr)),
        }
    pairs = cohen_kappas(ans)
    defined = [p["kappa"] for p in pairs if p["kappa"] is not None]
    return {
        "items": len(ans.items),
        "workers": len(ans.workers),
        "answers": len(ans.item_idx),
        "items_with_2_or_more": int((counts.sum(axis=1) >= 2).sum()),
        "percent_agreement": _round(percent_agreement(counts)),
        "fleiss_kappa": _round(fleiss_kappa(counts)),
        "krippendorff_alpha": _round(krippendorff_alpha(counts)),
        "per_label": per_label,
        "pairs": {
            "count": len(pairs),
            "median_cohen_kappa": _round(float(np.median(defined))) if defined else None,
            "cohen_kappa": pairs,
        },
    }


def _item_agreement(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    n = counts.sum(axis=1)
    keep = n >= 2
    c, m = counts[keep], n[keep]
    return np.asarray((c * (c - 1)).sum(axis=1) / (m * (m - 1)), dtype=np.float64)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)
