"""`loopwright select` on Dask vs the single-process path, on a 10,000,000 x 64 Parquet pool.

    nice -n 10 .venv/bin/python bench/select_cluster.py [--rows 10000000] [--repeats 3]

Writes a seeded float32 pool (row groups of 250,000 rows, about 2.5 GB) under /tmp once, fits a
4-class LogisticRegression on 5,000 seeded rows, then times margin selection of 1,000 rows:
the single-process path (partitions one after the other, one partition in memory) and a Dask
LocalCluster of 2 worker processes (cluster start timed apart), median of ``--repeats``;
checks both answers are identical. k-center (approximate on Dask, exact greedy in one process)
runs on a separate 250,000-row pool in 10 partitions with budget 100: times and covering radii
side by side (``--kcenter-only`` redoes just that part, keeping the margin figures).
Results: bench/results/select_cluster.{md,json}.

``--sweep`` instead tries what might make Dask pay off on a smaller pool (``--sweep-rows``,
2,000,000 by default): partition size (250,000 vs 1,000,000 rows) and worker processes vs
threads, each against the single-process path, with the time one partition spends reading vs
scoring. Results: bench/results/select_cluster_sweep.{md,json}.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread per process on both paths (workers inherit it)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from loopwright.integrations import dask_select as ds  # noqa: E402
from loopwright.learning.artifact import dump_model  # noqa: E402

D, GROUP, BUDGET = 64, 250_000, 1_000
RESULTS = Path(__file__).parent / "results"


def write_pool(path: Path, rows: int, group: int = GROUP) -> None:
    """Seeded standard-normal float32 features, one row group per ``group`` rows."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([(f"f{j}", pa.float32()) for j in range(D)])
    rng = np.random.default_rng(2026)
    with pq.ParquetWriter(tmp, schema, compression="none", use_dictionary=False) as writer:
        for start in range(0, rows, group):
            n = min(group, rows - start)
            X = rng.standard_normal((n, D), dtype=np.float32)
            writer.write_table(
                pa.table({f"f{j}": X[:, j] for j in range(D)}, schema=schema), row_group_size=group
            )
    tmp.rename(path)  # atomic: a half-written pool is never taken for a whole one


def model() -> ds.ModelSpec:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5_000, D))
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] + 0.3 * X[:, 2] > 0).astype(int)
    return ds.ModelSpec(dump_model(LogisticRegression(max_iter=1000).fit(X, y)))


def timed(fn, repeats: int) -> tuple[float, list[float], object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def kcenter_block(rows: int, workers: int, budget: int = 100) -> dict[str, object]:
    """Two rounds on Dask vs exact greedy on a pool of ``rows`` in 10 partitions."""
    path = Path(f"/tmp/loopwright-pool-kc-{rows}x{D}.parquet")
    write_pool(path, rows, group=rows // 10)
    pool = ds.open_pool(str(path), rows_per_part=rows // 10)
    client = ds.connect_cluster(None, workers=workers, processes=True)
    try:
        dask_s, _, on_dask = timed(lambda: ds.select_on_dask(pool, budget, "kcenter", client), 1)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    single_s, _, single = timed(lambda: ds.select_single(pool, budget, "kcenter"), 1)
    r_dask = ds.covering_radius(pool, on_dask.rows)  # type: ignore[attr-defined]
    r_single = ds.covering_radius(pool, single.rows)  # type: ignore[attr-defined]
    return {
        "rows": rows,
        "parts": len(pool.parts),
        "budget": budget,
        "dask_two_round_s": round(dask_s, 2),
        "single_exact_s": round(single_s, 2),
        "radius_dask": round(r_dask, 4),
        "radius_single": round(r_single, 4),
        "radius_ratio": round(r_dask / r_single, 3),
    }


def render(doc: dict) -> str:  # type: ignore[type-arg]
    k = doc["kcenter"]
    runs = {
        key: ", ".join(f"{x:.2f}" for x in doc[key]["all"]) for key in ("single_margin_s", "dask_margin_s")
    }
    return f"""# `loopwright select` on Dask vs one process

Pool: {doc["rows"]:,} x {D} float32 Parquet (seeded standard normal, {doc["parts"]} row groups of
{GROUP:,}, uncompressed, 2.5 GB, written in {doc["write_pool_s"]:.0f} s), a 4-class
LogisticRegression, margin selection of {doc["budget"]:,} rows. Machine: 2 cores shared with other
jobs (load average {doc["load"]:.0f} when it ended: very noisy); medians of {doc["repeats"]}; one BLAS
thread per process. The single-process path reads one partition at a time (memory: one partition).

| path | median s | runs s |
|---|---:|---|
| single process | {doc["single_margin_s"]["median"]:.2f} | {runs["single_margin_s"]} |
| Dask LocalCluster, {doc["workers"]} worker processes | {doc["dask_margin_s"]["median"]:.2f} | {runs["dask_margin_s"]} |

Speed-up {doc["speedup"]}x (cluster start {doc["dask_cluster_start_s"]:.1f} s, not included).
Identical answer (rows, order, scores): **{doc["identical_answer"]}**.

k-center on a separate {k["rows"]:,}-row pool in {k["parts"]} partitions, budget {k["budget"]}: two
rounds on Dask {k["dask_two_round_s"]} s, covering radius {k["radius_dask"]}; exact greedy in one
process {k["single_exact_s"]} s, radius {k["radius_single"]}; ratio {k["radius_ratio"]} (guaranteed
at most 4: the exact greedy's radius is at least OPT, the two rounds' at most 4 OPT; see the README).
"""  # noqa: E501


def part_profile(pool: ds.Pool, spec: ds.ModelSpec) -> dict[str, float]:
    """Seconds one partition spends being read (Parquet to float32) and being scored."""
    t = time.perf_counter()
    X, _ = ds.read_part(pool, pool.parts[0])
    read_s = time.perf_counter() - t
    model = ds._load(spec.key, spec.blob, spec.trusted)
    t = time.perf_counter()
    ds.top_k(ds.SCORES["margin"](ds.pool_proba(model, X)), BUDGET)
    return {"rows": len(X), "read_s": round(read_s, 3), "score_s": round(time.perf_counter() - t, 3)}


SWEEP = (  # (label, rows per part, workers, threads per worker, processes)
    ("2 processes x 1 thread, parts of 250k (the default)", 250_000, 2, 1, True),
    ("2 processes x 1 thread, parts of 1M", 1_000_000, 2, 1, True),
    ("1 process x 2 threads, parts of 250k", 250_000, 1, 2, True),
    ("2 threads in this process, parts of 250k", 250_000, 2, 1, False),
)


def sweep(rows: int, repeats: int) -> dict[str, object]:
    path = Path(f"/tmp/loopwright-pool-{rows}x{D}.parquet")
    write_pool(path, rows)
    spec = model()
    load_before = os.getloadavg()[0]
    out: dict[str, object] = {"rows": rows, "repeats": repeats, "load_before": round(load_before, 1)}
    out["profile"] = part_profile(ds.open_pool(str(path), rows_per_part=GROUP), spec)
    runs = []
    reference = None
    for per_part in sorted({c[1] for c in SWEEP}):
        pool = ds.open_pool(str(path), rows_per_part=per_part)
        med, all_s, single = timed(lambda pool=pool: ds.select_single(pool, BUDGET, "margin", spec), repeats)
        reference = reference or single.rows.tolist()  # type: ignore[attr-defined]
        runs.append({"config": f"single process, parts of {per_part:,}", "median_s": round(med, 2),
                     "all_s": [round(x, 2) for x in all_s], "start_s": 0.0, "identical": True})  # fmt: skip
    for label, per_part, workers, threads, processes in SWEEP:
        pool = ds.open_pool(str(path), rows_per_part=per_part)
        t = time.perf_counter()
        client = ds.connect_cluster(None, workers=workers, processes=processes, threads=threads)
        start_s = time.perf_counter() - t
        try:
            med, all_s, got = timed(
                lambda pool=pool, client=client: ds.select_on_dask(pool, BUDGET, "margin", client, spec),
                repeats,
            )
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
        runs.append({"config": label, "median_s": round(med, 2), "all_s": [round(x, 2) for x in all_s],
                     "start_s": round(start_s, 2), "identical": got.rows.tolist() == reference})  # type: ignore[attr-defined]  # fmt: skip
    out["runs"] = runs
    out["load_after"] = round(os.getloadavg()[0], 1)
    return out


def render_sweep(doc: dict) -> str:  # type: ignore[type-arg]
    p = doc["profile"]
    lines = [
        "# `loopwright select`: partition size and worker threads vs one process",
        "",
        f"Pool: {doc['rows']:,} x {D} float32 Parquet (row groups of {GROUP:,}), margin selection of "
        f"{BUDGET:,} rows, medians of {doc['repeats']}; cluster start not included. Machine: 2 cores "
        f"shared with other jobs, load average {doc['load_before']} before, {doc['load_after']} after.",
        "",
        f"One partition of {p['rows']:,} rows: read {p['read_s']} s, scored {p['score_s']} s.",
        "",
        "| configuration | median s | runs s | cluster start s | same answer |",
        "|---|---:|---|---:|---|",
    ]
    for r in doc["runs"]:
        runs = ", ".join(f"{x:.2f}" for x in r["all_s"])
        lines.append(
            f"| {r['config']} | {r['median_s']:.2f} | {runs} | {r['start_s']:.1f} | {r['identical']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kcenter-rows", type=int, default=250_000)
    ap.add_argument("--kcenter-only", action="store_true", help="redo k-center; keep the margin figures")
    ap.add_argument("--sweep", action="store_true", help="partition size and threads on a smaller pool")
    ap.add_argument("--sweep-rows", type=int, default=2_000_000)
    args = ap.parse_args()
    if args.sweep:
        found = sweep(args.sweep_rows, args.repeats)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "select_cluster_sweep.json").write_text(json.dumps(found, indent=2) + "\n")
        md = render_sweep(found)
        (RESULTS / "select_cluster_sweep.md").write_text(md)
        print(md)
        return
    out = RESULTS / "select_cluster.json"
    if args.kcenter_only:
        doc = json.loads(out.read_text())
    else:
        path = Path(f"/tmp/loopwright-pool-{args.rows}x{D}.parquet")
        t = time.perf_counter()
        write_pool(path, args.rows)
        write_s = time.perf_counter() - t
        spec = model()
        pool = ds.open_pool(str(path), rows_per_part=GROUP)
        single_med, single_all, single = timed(
            lambda: ds.select_single(pool, BUDGET, "margin", spec), args.repeats
        )
        t = time.perf_counter()
        client = ds.connect_cluster(None, workers=args.workers, processes=True)
        start_s = time.perf_counter() - t
        try:
            dask_med, dask_all, on_dask = timed(
                lambda: ds.select_on_dask(pool, BUDGET, "margin", client, spec), args.repeats
            )
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
        doc = {
            "rows": args.rows,
            "columns": D,
            "parts": len(pool.parts),
            "budget": BUDGET,
            "workers": args.workers,
            "repeats": args.repeats,
            "write_pool_s": round(write_s, 1),
            "single_margin_s": {"median": round(single_med, 2), "all": [round(x, 2) for x in single_all]},
            "dask_margin_s": {"median": round(dask_med, 2), "all": [round(x, 2) for x in dask_all]},
            "dask_cluster_start_s": round(start_s, 2),
            "speedup": round(single_med / dask_med, 2),
            "identical_answer": on_dask.rows.tolist() == single.rows.tolist(),  # type: ignore[attr-defined]
        }
    doc["kcenter"] = kcenter_block(args.kcenter_rows, args.workers)
    doc["load"] = round(os.getloadavg()[0], 1)
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    md = render(doc)
    (RESULTS / "select_cluster.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
