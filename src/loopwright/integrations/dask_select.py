"""Active-learning selection over a Parquet pool larger than one process, scored on Dask.

The pool (a Parquet file or a folder of them, local or any URL pyarrow opens: ``s3://``,
``gs://``, ``hdfs://``) is cut into partitions of whole row groups. Each partition is read,
scored with the model and reduced to its own candidates; only those travel back.

* **margin / entropy / least-confidence** — a partition keeps its top ``budget`` rows by
  (score descending, global row number ascending). Every row of the global top ``budget`` is in
  the top ``budget`` of its own partition (fewer than ``budget`` rows precede it there), so
  merging the candidates by the same order gives *exactly* the single-process answer, ties
  included. Rows are scored in the same blocks on both paths, so even the last bit agrees.
* **kcenter** — a documented approximation (the two-round scheme of Malkomes et al., NeurIPS
  2015): greedy k-center picks ``budget`` candidates in each partition, then greedy k-center over
  the union of candidates picks the answer. Greedy on any subset has covering radius at most
  ``2 * OPT`` (OPT: the best radius of ``budget`` centres for the whole pool), each row lies within
  its partition's radius of a candidate, so every row lies within ``4 * OPT`` of the answer, where
  the single-process greedy guarantees ``2 * OPT``. The answer depends on the partitioning.

``dask.distributed`` and ``pyarrow`` (the ``cluster`` extra) are imported only here.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.active.diversity import kcenter_greedy
from loopwright.active.scores import entropy, least_confidence, pool_proba, smallest_margin
from loopwright.active.topk import top_k
from loopwright.errors import Invalid, LoopwrightError

SCORES: dict[str, Callable[[Any], NDArray[np.float64]]] = {
    "margin": smallest_margin,
    "entropy": entropy,
    "least-confidence": least_confidence,
}
STRATEGIES = (*SCORES, "kcenter")


class ClusterUnavailable(LoopwrightError):
    """The Dask scheduler could not be reached."""

    code = "cluster_unavailable"


@dataclass(frozen=True, slots=True)
class Part:
    """Whole row groups of one Parquet file; ``offset``: the global row number of its first row."""

    path: str
    row_groups: tuple[int, ...]
    offset: int
    rows: int


@dataclass(frozen=True, slots=True)
class Pool:
    """Where the pool is and how it is cut."""

    uri: str
    parts: tuple[Part, ...]
    columns: tuple[str, ...]  # the feature columns, in the model's order
    id_column: str | None
    rows: int


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as its skops artifact: shipped once to each worker and loaded there."""

    blob: bytes
    trusted: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return hashlib.sha256(self.blob).hexdigest()


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen rows, best first (k-center: in pick order)."""

    rows: NDArray[np.int64]  # global row numbers in the pool
    ids: list[Any]  # the id column's values (row numbers when there is none)
    scores: NDArray[np.float64]  # uncertainty; k-center: squared distance when picked (first: inf)
    strategy: str
    parts: int
    seconds: float
    where: str  # "single process", "LocalCluster(4 workers)", "tcp://…"
    extra: dict[str, Any] = field(default_factory=dict)


# --- the pool --------------------------------------------------------------------------------


def _filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" not in uri:
        import os

        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise Invalid(f"cannot open pool {uri!r}: {exc}") from None


def _files(fs: Any, root: str, uri: str) -> list[str]:
    import pyarrow.fs as pafs

    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise Invalid(f"pool {uri!r} does not exist")
    if info.type == pafs.FileType.File:
        return [root]
    found = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    files = sorted(f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(".parquet"))
    if not files:
        raise Invalid(f"pool {uri!r} is a folder without .parquet files")
    return files


def open_pool(
    uri: str,
    features: Sequence[str] | None = None,
    id_column: str | None = None,
    rows_per_part: int = 250_000,
) -> Pool:
    """The pool's partitions (whole row groups, at least ``rows_per_part`` rows each unless the
    file ends) and its feature columns: ``features``, else every numeric column but the id."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, root = _filesystem(uri)
    parts: list[Part] = []
    offset, schema = 0, None
    for path in _files(fs, root, uri):
        try:
            meta = pq.ParquetFile(fs.open_input_file(path)).metadata
        except Exception as exc:
            raise Invalid(f"{path} is not a readable Parquet file ({exc})") from None
        schema = schema or meta.schema.to_arrow_schema()
        groups: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            groups.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= rows_per_part or g == meta.num_row_groups - 1:
                parts.append(Part(path, tuple(groups), offset, rows))
                offset, groups, rows = offset + rows, [], 0
    if schema is None or offset == 0:
        raise Invalid(f"pool {uri!r} has no rows")
    names = list(schema.names)
    if id_column is not None and id_column not in names:
        raise Invalid(f"pool {uri!r} has no id column {id_column!r} (columns: {names[:20]})")
    if features:
        missing = [c for c in features if c not in names]
        if missing:
            raise Invalid(f"pool {uri!r} lacks the feature column(s) {missing}")
        columns = list(features)
    else:
        numeric = (pa.types.is_integer, pa.types.is_floating)
        columns = [
            f.name for f in schema if f.name != id_column and any(t(f.type) for t in numeric)
        ]  # fmt: skip
        if not columns:
            raise Invalid(f"pool {uri!r} has no numeric feature columns")
    return Pool(uri, tuple(parts), tuple(columns), id_column, offset)


def read_part(pool: Pool, part: Part) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """The part's feature matrix (float32, the columns in order) and its ids."""
    import pyarrow.parquet as pq

    fs, _ = _filesystem(pool.uri)
    wanted = [*pool.columns, *([pool.id_column] if pool.id_column else [])]
    table = pq.ParquetFile(fs.open_input_file(part.path)).read_row_groups(
        list(part.row_groups), columns=wanted
    )
    X = np.empty((table.num_rows, len(pool.columns)), dtype=np.float32)
    for j, name in enumerate(pool.columns):
        X[:, j] = table.column(name).to_numpy()
    ids = table.column(pool.id_column).to_numpy(zero_copy_only=False) if pool.id_column else None
    return X, ids


# --- one partition ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _load(key: str, blob: bytes, trusted: tuple[str, ...]) -> Any:
    from loopwright.learning.artifact import load_model

    return load_model(blob, trusted)


def part_candidates(
    pool: Pool, part: Part, model: ModelSpec | None, strategy: str, k: int, random_state: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[Any], NDArray[np.float32] | None]:
    """One partition's candidates: (scores, global rows, ids, points for k-center or None)."""
    X, ids = read_part(pool, part)
    rows_local: NDArray[np.intp]
    if strategy == "kcenter":
        m = min(k, len(X))
        rng = np.random.default_rng([random_state, part.offset])
        rows_local = kcenter_greedy(X, m, rng)
        scores = np.zeros(m)
        points: NDArray[np.float32] | None = X[rows_local]
    else:
        assert model is not None
        s = SCORES[strategy](pool_proba(_load(model.key, model.blob, model.trusted), X))
        rows_local = top_k(s, k)
        scores, points = s[rows_local], None
    rows = rows_local.astype(np.int64) + part.offset
    got = ids[rows_local] if ids is not None else rows
    return scores, rows, got, points


def merge_top(
    found: Sequence[tuple[NDArray[np.float64], NDArray[np.int64], NDArray[Any], Any]], k: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[Any]]:
    """The ``k`` best of every partition's candidates: score descending, then row ascending."""
    scores = np.concatenate([f[0] for f in found])
    rows = np.concatenate([f[1] for f in found])
    ids = np.concatenate([np.asarray(f[2], dtype=object) for f in found])
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order], ids[order]


def merge_kcenter(
    found: Sequence[tuple[Any, NDArray[np.int64], NDArray[Any], Any]], k: int, random_state: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[Any]]:
    """Greedy k-center over the union of the partitions' candidates (in row order)."""
    rows = np.concatenate([f[1] for f in found])
    ids = np.concatenate([np.asarray(f[2], dtype=object) for f in found])
    points = np.concatenate([f[3] for f in found])
    order = np.argsort(rows, kind="stable")
    rows, ids, points = rows[order], ids[order], points[order]
    picks = kcenter_greedy(points, min(k, len(points)), np.random.default_rng(random_state))
    return _pick_distances(points, picks), rows[picks], ids[picks]


def kcenter_exact(
    pool: Pool, k: int, random_state: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[Any]]:
    """Greedy k-center over every row of the pool at once (the reference the two rounds approximate)."""
    read = [read_part(pool, p) for p in pool.parts]
    points = np.concatenate([X for X, _ in read])
    rows_all = np.arange(len(points), dtype=np.int64)
    ids = rows_all.astype(object)
    if pool.id_column:
        ids = np.concatenate([np.asarray(i, dtype=object) for _, i in read])
    picks = kcenter_greedy(points, min(k, len(points)), np.random.default_rng(random_state))
    return _pick_distances(points, picks), rows_all[picks], ids[picks]


def covering_radius(pool: Pool, rows: Sequence[int]) -> float:
    """The largest distance from any row of the pool to its nearest chosen row (k-center's cost)."""
    from loopwright.active.diversity import nearest_sq_distance

    parts = [read_part(pool, p)[0] for p in pool.parts]
    points = np.concatenate(parts)
    centers = points[np.asarray(rows)]
    worst = 0.0
    for start in range(0, len(points), 65_536):
        block = points[start : start + 65_536]
        d = nearest_sq_distance(block, np.einsum("ij,ij->i", block, block), centers)
        worst = max(worst, float(d.max()))
    return float(np.sqrt(worst))


def _pick_distances(points: NDArray[np.float32], picks: NDArray[np.intp]) -> NDArray[np.float64]:
    """Squared distance of each pick to the picks before it (the first: inf)."""
    out = np.full(len(picks), np.inf)
    chosen = points[picks].astype(np.float64)
    for i in range(1, len(picks)):
        out[i] = float(((chosen[:i] - chosen[i]) ** 2).sum(axis=1).min())
    return out


# --- the whole pool --------------------------------------------------------------------------


def _check(strategy: str, budget: int, model: ModelSpec | None) -> None:
    if strategy not in STRATEGIES:
        raise Invalid(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if budget < 1:
        raise Invalid(f"budget must be at least 1, got {budget}")
    if strategy != "kcenter" and model is None:
        raise Invalid(f"strategy {strategy} needs a model: a project with a champion, or --model FILE")


def _merge(found: list[Any], strategy: str, budget: int, random_state: int) -> Any:
    if strategy == "kcenter":
        return merge_kcenter(found, budget, random_state)
    return merge_top(found, budget)


Progress = Callable[[int, int], None]  # (partitions done, partitions in all); may raise to stop


def select_single(
    pool: Pool,
    budget: int,
    strategy: str,
    model: ModelSpec | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
) -> Selection:
    """The single-process answer. Uncertainty: partitions one after the other in this process,
    memory bounded by one partition. k-center: exact greedy over the whole pool, held in memory
    (rows x columns x 4 bytes)."""
    _check(strategy, budget, model)
    started = time.perf_counter()
    total = len(pool.parts)
    if strategy == "kcenter":
        scores, rows, ids = kcenter_exact(pool, budget, random_state)
    else:
        found = []
        for done, p in enumerate(pool.parts, 1):
            found.append(part_candidates(pool, p, model, strategy, budget, random_state))
            if progress is not None:
                progress(done, total)
        scores, rows, ids = _merge(found, strategy, budget, random_state)
    took = time.perf_counter() - started
    return Selection(rows, list(ids), scores, strategy, len(pool.parts), took, "single process")


def connect_cluster(
    scheduler: str | None,
    workers: int = 2,
    processes: bool = True,
    timeout: float = 10.0,
    threads: int = 1,
) -> Any:
    """A Dask client: on a new LocalCluster (``scheduler`` None) of ``workers`` workers with
    ``threads`` threads each, or on ``tcp://host:port``; :class:`ClusterUnavailable` in one line
    when the scheduler does not answer."""
    from dask.distributed import Client, LocalCluster

    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=processes,
            protocol="tcp",  # an address other processes can reach, even with processes=False
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        )
        return Client(cluster)
    if not scheduler.startswith(("tcp://", "tls://")):
        raise Invalid(f"scheduler {scheduler!r}: give tcp://host:port")
    try:
        return Client(scheduler, timeout=timeout)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterUnavailable(f"Dask scheduler {scheduler} is not answering ({reason})") from None


def select_on_dask(
    pool: Pool,
    budget: int,
    strategy: str,
    client: Any,
    model: ModelSpec | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
) -> Selection:
    """Score the partitions in parallel on ``client``'s cluster and merge their candidates."""
    _check(strategy, budget, model)
    started = time.perf_counter()
    # hash=False: a key of its own per call. With the content's hash, a second selection on the
    # same client gets the first one's key, which is released when the first call's future is
    # collected: its parts then fail with "lost dependencies".
    shared = client.scatter(model, broadcast=True, hash=False) if model is not None else None
    futures = [
        client.submit(part_candidates, pool, p, shared, strategy, budget, random_state, pure=False)
        for p in pool.parts
    ]
    if progress is None:
        found = client.gather(futures)
    else:
        from dask.distributed import as_completed

        try:
            for done, _ in enumerate(as_completed(futures), 1):
                progress(done, len(futures))
        except BaseException:
            client.cancel(futures)  # stopped (a cancelled job): the parts still running are dropped
            raise
        found = client.gather(futures)
    scores, rows, ids = _merge(found, strategy, budget, random_state)
    took = time.perf_counter() - started
    workers = len(client.scheduler_info().get("workers", {}))
    return Selection(rows, list(ids), scores, strategy, len(pool.parts), took, f"dask ({workers} workers)")


# --- as a background job -----------------------------------------------------------------------


def selection_rows(chosen: Selection) -> list[dict[str, Any]]:
    """The chosen rows as JSON: rank, global row number, id, score (None: k-center's first pick,
    at no distance from any pick before it)."""
    return [
        {"rank": i + 1, "row": int(r), "id": _plain(v), "score": float(s) if np.isfinite(s) else None}
        for i, (r, v, s) in enumerate(zip(chosen.rows, chosen.ids, chosen.scores, strict=True))
    ]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def run_selection(
    pool: Pool,
    budget: int,
    strategy: str,
    model: ModelSpec | None,
    *,
    single: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    seed: int = 0,
    connect_timeout: float = 10.0,
    progress: Progress | None = None,
) -> Selection:
    """One selection, in this process (``single``) or on Dask: a ``tcp://`` scheduler, else a
    LocalCluster of ``workers`` processes started for it and closed after."""
    if single:
        return select_single(pool, budget, strategy, model, seed, progress)
    _check(strategy, budget, model)  # bad input fails before a cluster starts
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise Invalid("scoring on Dask needs the cluster extra: pip install 'loopwright[cluster]'") from None
    client = connect_cluster(scheduler, workers, timeout=connect_timeout)
    try:
        return select_on_dask(pool, budget, strategy, client, model, seed, progress)
    finally:
        cluster = client.cluster if scheduler is None else None
        client.close()
        if cluster is not None:
            cluster.close()


class DaskPools:
    """The :class:`~loopwright.loop.ports.PoolScorer` a ``select`` job runs on."""

    def select(
        self,
        params: Mapping[str, Any],
        model: bytes | None,
        trusted: Sequence[str],
        progress: Progress,
    ) -> dict[str, Any]:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise Invalid("reading a Parquet pool needs pyarrow: pip install 'loopwright[cluster]'") from None
        strategy = str(params.get("strategy", "margin"))
        features = params.get("features")
        pool = open_pool(
            str(params["pool"]),
            list(features) if features else None,
            params.get("id_column"),
            int(params.get("rows_per_part") or 250_000),
        )
        spec = ModelSpec(model, tuple(trusted)) if model is not None else None
        chosen = run_selection(
            pool,
            int(params["budget"]),
            strategy,
            spec,
            single=bool(params.get("single", False)),
            scheduler=params.get("scheduler"),
            workers=int(params.get("workers") or 2),
            seed=int(params.get("seed") or 0),
            progress=progress,
        )
        return {
            "strategy": strategy,
            "pool": pool.uri,
            "pool_rows": pool.rows,
            "parts": chosen.parts,
            "where": chosen.where,
            "seconds": round(chosen.seconds, 3),
            "rows": selection_rows(chosen),
        }
