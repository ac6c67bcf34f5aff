"""Diversity sampling on dense points: k-center greedy (core-set) and k-means++ seeding.

Both keep one float32 vector of squared distances from every pool point to its nearest chosen
point and update it chunk by chunk; no pool x pool matrix is ever formed.

k-center greedy is *lazy*: each chunk of the pool remembers how many of the chosen centres it
has already been compared with and the largest distance left in it. Distances only shrink, so
that largest distance bounds the chunk from above; a pick refreshes chunks in decreasing order
of their bound (one small matrix product with the centres they have not seen yet) until no
unrefreshed chunk can beat the best refreshed point. The result is exactly the eager
algorithm's, ties going to the lower index, with matrix products instead of one
matrix-vector product per pick. Those products are small, so k-center runs BLAS on one
thread: on a shared 2-core machine that was 3-4x faster than letting two threads spin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from loopwright.errors import Invalid

_PICKED = np.float32(-1.0)  # below every distance: a chosen point is never chosen again
_BLOCK_CELLS = 4_000_000  # distance cells per matrix product (16 MB of float32)


def as_points(X: Any, what: str = "pool") -> NDArray[np.float32]:
    """``X`` as a finite, C-contiguous 2-D float32 array, or ``Invalid``."""
    try:
        points = np.ascontiguousarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"{what} features must be numbers ({exc}); embed text first") from exc
    if points.ndim != 2:
        raise Invalid(f"{what} features must be a 2-D matrix (one row per item), got shape {points.shape}")
    if not np.isfinite(points).all():
        raise Invalid(f"{what} features contain NaN or infinite values")
    return points


def check_batch(batch: int, pool: int) -> None:
    """``Invalid`` unless 1 ≤ batch ≤ pool."""
    if pool == 0:
        raise Invalid("the pool is empty: there is nothing left to select")
    if batch < 1:
        raise Invalid(f"batch must be at least 1, got {batch}")
    if batch > pool:
        raise Invalid(f"batch {batch} is larger than the pool of {pool} items: ask for at most {pool}")


def nearest_sq_distance(
    points: NDArray[np.float32], norms: NDArray[np.float32], centers: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Squared Euclidean distance from each point to its nearest centre, in blocks of centres."""
    out = np.full(len(points), np.inf, dtype=np.float32)
    step = max(1, _BLOCK_CELLS // max(1, len(points)))
    for start in range(0, len(centers), step):
        block = centers[start : start + step]
        d = points @ block.T
        d *= -2.0
        d += norms[:, None]
        d += np.einsum("ij,ij->i", block, block)[None, :]
        np.minimum(out, d.min(axis=1), out=out)
    np.maximum(out, 0.0, out=out)
    return out


def kcenter_greedy(
    X: Any,
    batch: int,
    rng: np.random.Generator,
    X_labelled: Any = None,
    chunk: int = 4096,
) -> NDArray[np.intp]:
    """Greedy k-center core-set: repeatedly take the pool point farthest from everything chosen.

    Starts from ``X_labelled`` when given (non-empty), else from one point drawn with ``rng``.
    Returns ``batch`` pool indices in pick order; exact, ties to the lower index.
    """
    with threadpool_limits(1, user_api="blas"):
        return _kcenter(X, batch, rng, X_labelled, chunk)


def _kcenter(X: Any, batch: int, rng: np.random.Generator, X_labelled: Any, chunk: int) -> NDArray[np.intp]:
    points = as_points(X)
    n = len(points)
    check_batch(batch, n)
    seeds = None if X_labelled is None else as_points(X_labelled, "labelled")
    if seeds is not None and seeds.size and seeds.shape[1] != points.shape[1]:
        raise Invalid(f"labelled features have {seeds.shape[1]} columns, the pool has {points.shape[1]}")
    norms = np.einsum("ij,ij->i", points, points)
    n_seeds = 0 if seeds is None else len(seeds)
    centers = np.empty((n_seeds + batch, points.shape[1]), dtype=np.float32)
    picks: list[int] = []
    if n_seeds:
        centers[:n_seeds] = seeds
    else:
        picks.append(int(rng.integers(n)))
        centers[0] = points[picks[0]]
    used = n_seeds + len(picks)
    mind = np.full(n, np.inf, dtype=np.float32)
    mind[picks] = _PICKED
    starts = np.arange(0, n, chunk)
    seen = np.zeros(len(starts), dtype=np.intp)  # centres each chunk has been compared with
    bound = np.full(len(starts), np.inf, dtype=np.float32)

    while len(picks) < batch:
        best_val, best_idx = np.float32(-np.inf), -1
        for c in np.lexsort((starts, -bound)):
            lo = int(starts[c])
            if best_idx >= 0 and (bound[c] < best_val or (bound[c] == best_val and lo > best_idx)):
                break
            hi = min(lo + chunk, n)
            view = mind[lo:hi]
            if seen[c] < used:
                fresh = nearest_sq_distance(points[lo:hi], norms[lo:hi], centers[seen[c] : used])
                np.minimum(view, fresh, out=view)
                seen[c] = used
            j = int(np.argmax(view))
            bound[c] = view[j]
            if view[j] > best_val or (view[j] == best_val and lo + j < best_idx):
                best_val, best_idx = view[j], lo + j
        picks.append(best_idx)
        centers[used] = points[best_idx]
        used += 1
        mind[best_idx] = _PICKED
        c = best_idx // chunk
        bound[c] = mind[c * chunk : min((c + 1) * chunk, n)].max()
    return np.asarray(picks, dtype=np.intp)


def kmeans_pp(
    X: Any,
    batch: int,
    rng: np.random.Generator,
    X_labelled: Any = None,
) -> NDArray[np.intp]:
    """k-means++ seeding: each next point drawn with probability ∝ squared distance to the chosen.

    Starts from ``X_labelled`` when given (non-empty), else from one uniformly drawn point.
    """
    points = as_points(X)
    n = len(points)
    check_batch(batch, n)
    norms = np.einsum("ij,ij->i", points, points)
    picks: list[int] = []
    if X_labelled is not None and len(X_labelled):
        mind = nearest_sq_distance(points, norms, as_points(X_labelled, "labelled"))
    else:
        picks.append(int(rng.integers(n)))
        mind = nearest_sq_distance(points, norms, points[picks])
    mind[picks] = 0.0
    while len(picks) < batch:
        total = float(mind.sum(dtype=np.float64))
        if total > 0:
            cum = np.cumsum(mind, dtype=np.float64)
            pick = min(int(np.searchsorted(cum, rng.random() * total, side="right")), n - 1)
        else:  # every point coincides with a chosen one: draw among the rest
            rest = np.setdiff1d(np.arange(n), picks)
            pick = int(rest[rng.integers(len(rest))])
        picks.append(pick)
        np.minimum(mind, nearest_sq_distance(points, norms, points[[pick]]), out=mind)
        mind[picks] = 0.0
    return np.asarray(picks, dtype=np.intp)
