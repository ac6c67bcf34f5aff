"""Query by committee: bootstrap clones of one estimator and two disagreement measures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loopwright.active.scores import check_proba
from loopwright.errors import Invalid


def _take(X: Any, rows: NDArray[np.intp]) -> Any:
    return [X[i] for i in rows] if isinstance(X, list) else X[rows]


def fit_committee(estimator: Any, X: Any, y: ArrayLike, size: int, rng: np.random.Generator) -> list[Any]:
    """``size`` clones of ``estimator``, each fitted on a stratified bootstrap of ``(X, y)``.

    Stratified (resampling within each class) so that every member sees every class.
    """
    labels = np.asarray(y)
    if size < 2:
        raise Invalid(f"a committee needs at least 2 members, got {size}")
    if len(labels) != len(X):
        raise Invalid(f"{len(X)} labelled items but {len(labels)} labels")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise Invalid("query by committee needs labelled items of at least 2 classes")
    members = []
    for _ in range(size):
        rows = np.concatenate(
            [
                rng.choice(idx, size=len(idx), replace=True)
                for idx in (np.flatnonzero(labels == c) for c in classes)
            ]
        )
        rows.sort()
        from sklearn.base import clone  # on use: keeps start-up light

        members.append(clone(estimator).fit(_take(X, rows), labels[rows]))
    return members


def committee_proba(members: Sequence[Any], X: Any, classes: ArrayLike) -> NDArray[np.float64]:
    """Probabilities of each member, shape (members, items, classes), columns in ``classes`` order."""
    order = {c: j for j, c in enumerate(np.asarray(classes).tolist())}
    out = []
    for member in members:
        p = check_proba(member.predict_proba(X))
        full = np.zeros((p.shape[0], len(order)))
        full[:, [order[c] for c in np.asarray(member.classes_).tolist()]] = p
        out.append(full)
    return np.stack(out)


def vote_entropy(probas: ArrayLike) -> NDArray[np.float64]:
    """Entropy (nats) of the members' hard votes per item; ``probas`` as from ``committee_proba``."""
    p = np.asarray(probas, dtype=np.float64)
    votes = p.argmax(axis=2)  # (members, items)
    share = np.stack([(votes == k).mean(axis=0) for k in range(p.shape[2])], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(share > 0, share * np.log(share), 0.0).sum(axis=1)


def mean_kl(probas: ArrayLike, eps: float = 1e-12) -> NDArray[np.float64]:
    """Mean KL divergence (nats) of each member's distribution from the committee's consensus."""
    p = np.clip(np.asarray(probas, dtype=np.float64), eps, 1.0)
    consensus = p.mean(axis=0)
    return (p * (np.log(p) - np.log(consensus)[None])).sum(axis=2).mean(axis=0)
