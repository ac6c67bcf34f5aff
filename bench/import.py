"""``loopwright ingest`` of a generated Parquet file (default 1,000,000 rows, tabular), run as a
user runs it (a subprocess with its progress bar and rejected-rows report), without a champion
and with one. Writes results/import.json and results/import.md: rows/s, CPU seconds, peak RSS.

    nice -n 10 .venv/bin/python bench/import.py [--rows 1000000] [--db-dir /tmp/lw-import]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
FEATURES = [f"x{i}" for i in range(8)]
BAD_EVERY = 997  # one row in 997 has a feature that is not a number (a null): rejected


def make_file(path: Path, rows: int, seed: int = 0) -> int:
    """Write the file in row groups of 100,000; return how many rows are bad."""
    rng = np.random.default_rng(seed)
    writer = None
    bad = 0
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        ids = np.arange(start, start + n)
        cols: dict[str, object] = {"external_id": pa.array([f"r{i}" for i in ids])}
        for j, name in enumerate(FEATURES):
            values = rng.normal(0.0, 1.0, n)
            mask = (ids % BAD_EVERY == 0) if j == 0 else None
            cols[name] = pa.array(values, mask=mask)
        bad += int((ids % BAD_EVERY == 0).sum())
        cols["source"] = pa.array(np.where(ids % 2 == 0, "web", "app"))
        table = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return bad


_WRAPPER = """
import json, resource, runpy, sys
sys.argv = ["loopwright"] + sys.argv[2:]
try:
    runpy.run_module("loopwright", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
finally:
    u = resource.getrusage(resource.RUSAGE_SELF)
    open(__USAGE_PATH__, "w").write(json.dumps(
        {"cpu_s": u.ru_utime + u.ru_stime, "max_rss_mb": u.ru_maxrss / 1024}))
"""


def run(args: list[str], usage: Path, log: Path) -> tuple[float, dict[str, float], str]:
    code = _WRAPPER.replace("__USAGE_PATH__", repr(str(usage)))
    started = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-c", code, "x", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
        )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}): {log.read_text()[-2000:]}")
    return seconds, json.loads(usage.read_text()), done.stdout


def scenario(name: str, champion: bool, data: Path, work: Path, batch: int) -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression

    from loopwright.api import connect

    db = work / f"{name}.db"
    for p in work.glob(f"{name}.db*"):
        p.unlink()
    url = f"sqlite:///{db}"
    loop = connect(url).create_project({"name": "bench", "labels": ["neg", "pos"], "features": FEATURES})
    if champion:
        rng = np.random.default_rng(1)
        X = rng.normal(0.0, 1.0, (2000, len(FEATURES)))
        y = np.where(X[:, 1] + 0.5 * X[:, 2] > 0, "pos", "neg")
        loop.use_model(LogisticRegression().fit(X, y), force=True)
    rejects = work / f"{name}.rejects.csv"
    seconds, usage, out = run(
        [
            "ingest",
            str(data),
            "--db",
            url,
            "--project",
            "bench",
            "--batch",
            str(batch),
            "--metadata-cols",
            "source",
            "--rejects",
            str(rejects),
            "--json",
        ],
        work / f"{name}.usage.json",
        work / f"{name}.stderr.log",
    )
    result = json.loads(out)
    bar = [line for line in (work / f"{name}.stderr.log").read_text().splitlines() if "rows/s" in line]
    return {
        "scenario": name,
        "champion": champion,
        "rows": result["read"],
        "ingested": result["ingested"],
        "rejected": result["rejected"],
        "rejected_by_reason": result["rejected_by_reason"],
        "to_review": result["to_review"],
        "wall_s": round(seconds, 1),
        "rows_per_s": round(result["read"] / seconds, 1),
        "cpu_s": round(usage["cpu_s"], 1),
        "max_rss_mb": round(usage["max_rss_mb"], 1),
        "rejects_lines": sum(1 for _ in rejects.open()) - 1 if rejects.exists() else 0,
        "progress_last_line": bar[-1].strip() if bar else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--db-dir", type=Path, default=Path("/tmp/lw-import-bench"))
    ap.add_argument("--only", choices=["no_champion", "champion"], default=None)
    ap.add_argument(
        "--runs-from", type=Path, nargs="*", help="write the report from run lines printed earlier"
    )
    args = ap.parse_args()
    args.db_dir.mkdir(parents=True, exist_ok=True)
    data = args.db_dir / f"rows{args.rows}.parquet"
    t0 = time.perf_counter()
    bad = (
        make_file(data, args.rows)
        if not (args.runs_from and data.exists())
        else (args.rows - 1) // BAD_EVERY + 1
    )
    made = time.perf_counter() - t0
    runs = []
    for path in args.runs_from or ():  # separate invocations (e.g. run side by side), joined here
        runs += [json.loads(line) for line in path.read_text().splitlines() if line.startswith('{"scenario"')]
    for name, champion in (("no_champion", False), ("champion", True)):
        if args.runs_from is None and args.only in (None, name):
            runs.append(scenario(name, champion, data, args.db_dir, args.batch))
            print(json.dumps(runs[-1]), flush=True)
    report = {
        "rows": args.rows,
        "bad_rows": bad,
        "file_mb": round(data.stat().st_size / 2**20, 1),
        "generate_s": round(made, 1),
        "batch": args.batch,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "runs": runs,
    }
    out = HERE / "results"
    (out / "import.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# `loopwright ingest` of a Parquet file",
        "",
        f"{args.rows:,} rows x {len(FEATURES)} features + id + a metadata column "
        f"({report['file_mb']} MB, row groups of 100,000), {bad:,} bad rows (a null feature); "
        f"SQLite, batches of {args.batch:,}; {report['machine']} (shared, noisy).",
        "Run with `nice -n 10 .venv/bin/python bench/import.py`; each run is the real command in",
        "a subprocess (progress bar on stderr, rejected rows to a CSV report).",
        "",
        "| run | rows | ingested | rejected (report lines) | to review | wall s | rows/s | CPU s "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['scenario']} | {r['rows']:,} | {r['ingested']:,} | {r['rejected']:,} "
            f"({r['rejects_lines']:,}) | {r['to_review']:,} | {r['wall_s']} | {r['rows_per_s']:,.0f} "
            f"| {r['cpu_s']} | {r['max_rss_mb']} |"
        )
    lines += ["", "Last progress-bar line of each run:", ""]
    lines += [f"- {r['scenario']}: `{r['progress_last_line']}`" for r in runs]
    (out / "import.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
