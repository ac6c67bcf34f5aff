"""Load: 50 annotator clients doing next → submit over HTTP against a real uvicorn server.

Per run: a fresh database (SQLite file, or a new PostgreSQL schema), a project whose every item
is one review task (no model, one tier, overlap 1), ``--items`` items and one annotator user
and token per client seeded in-process; then ``uvicorn --workers N`` on 127.0.0.1 in a
subprocess and ``--clients`` asyncio clients (``_server.RawClient``, one process, one
keep-alive connection each) doing next → submit for ``--duration`` seconds. Reported: cycles/s
(acknowledged submits per second), p50/p99 of next and submit, CPU seconds per cycle of the
server, the client and PostgreSQL, and from the database afterwards: duplicate annotations (a
task annotated more than once, an item annotated twice) and lost annotations (acknowledged with
HTTP 200 but not in the table). Median of ``--repeats`` runs per configuration. Writes
results/<out>.json (``--table`` prints it as Markdown); LOOPWRIGHT_BENCH_CLIENT=httpx drives
the server with httpx's client instead, as runs before this one did.

    .venv/bin/python bench/load.py [--pg URL] [--duration 20] [--repeats 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    CLIENT,
    CLIENT_ERRORS,
    PG_URL,
    Record,
    Server,
    annotate_loopwright,
    check_db,
    cores_busy,
    cores_by_kind,
    cpu_seconds,
    database,
    load_average,
    machine_jiffies,
    make_client,
    postgres_cpu_seconds,
    seed,
    summarise,
)

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "load"


async def drive(base: str, tokens: list[str], duration: float) -> tuple[list[Record], float]:
    records = [Record() for _ in tokens]
    until = time.perf_counter() + duration
    start = time.perf_counter()
    await asyncio.gather(
        *(
            annotate_loopwright(base, PROJECT, tok, until, rec, i)
            for i, (tok, rec) in enumerate(zip(tokens, records, strict=True))
        )
    )
    return records, time.perf_counter() - start


async def drive_open(
    base: str, tokens: list[str], duration: float, rate: float
) -> tuple[list[Record], float]:
    """Open-loop load: cycles (next → submit) start at Poisson arrivals of ``rate`` per second,
    whatever the server's pace, each by an idle annotator (annotators with think time); a late
    server shows up as latency, not as fewer arrivals."""
    rng = random.Random(0)
    idle: asyncio.Queue[tuple[Any, Record]] = asyncio.Queue()
    clients = [make_client(base, {"Authorization": f"Bearer {t}"}, 30) for t in tokens]
    records = [Record() for _ in tokens]
    for pair in zip(clients, records, strict=True):
        idle.put_nowait(pair)

    async def one_cycle() -> None:
        client, rec = await idle.get()
        try:
            t = time.perf_counter()
            r = await client.post(f"/v1/projects/{PROJECT}/tasks/next", json={})
            if r.status_code != 200:
                rec.error(f"next {r.status_code}")
                return
            rec.next_s.append(time.perf_counter() - t)
            lease_id = r.json()["lease"]["id"]
            t = time.perf_counter()
            r = await client.post(f"/v1/leases/{lease_id}/submit", json={"label": rng.choice(["pos", "neg"])})
            if r.status_code != 200:
                rec.error(f"submit {r.status_code}")
                return
            rec.submit_s.append(time.perf_counter() - t)
            rec.acknowledged.append(lease_id)
        except CLIENT_ERRORS as exc:
            rec.error(type(exc).__name__)
        finally:
            idle.put_nowait((client, rec))

    start = time.perf_counter()
    tasks = []
    next_at = start
    while (now := time.perf_counter()) < start + duration:
        if now < next_at:
            await asyncio.sleep(next_at - now)
        tasks.append(asyncio.create_task(one_cycle()))
        next_at += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    for c in clients:
        await c.aclose()
    return records, wall


def run_once(backend: str, pg_url: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    with database(backend, pg_url) as url:
        tokens = seed(url, PROJECT, args.items, args.clients)
        with Server(url, workers) as server:
            spy = None
            if args.profile:  # sampled stacks of the server (and its workers), collapsed format
                out_file = f"{args.profile}-{backend}-w{workers}.txt"
                cmd = ["py-spy", "record", "--format", "raw", "--subprocesses", "-r", "100"]
                cmd += ["-d", str(int(args.duration)), "-o", out_file, "-p", str(server.proc.pid)]  # type: ignore[union-attr]
                spy = subprocess.Popen([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]])
            asyncio.run(drive(server.base, tokens, args.warmup))  # lazy imports, pools: not timed
            cpu0, pg0, client0 = server.cpu_seconds(), postgres_cpu_seconds(), time.process_time()
            per_pid0, jiffies0 = {p: cpu_seconds(p) for p in server.pids()}, machine_jiffies()
            if args.rate:
                records, wall = asyncio.run(drive_open(server.base, tokens, args.duration, args.rate))
            else:
                records, wall = asyncio.run(drive(server.base, tokens, args.duration))
            if spy is not None:
                spy.wait()
            server_cpu = server.cpu_seconds() - cpu0
            jiffies1 = machine_jiffies()
            busy, by_kind = cores_busy(jiffies0, jiffies1), cores_by_kind(jiffies0, jiffies1)
            per_pid = sorted((cpu_seconds(p) - c for p, c in per_pid0.items()), reverse=True)
            pg_cpu = postgres_cpu_seconds() - pg0 if backend == "postgres" else 0.0
            client_cpu = time.process_time() - client0
        out = summarise(records, wall)
        check = check_db(url, PROJECT, [a for r in records for a in r.acknowledged])
    cycles = max(out["cycles"], 1)
    out.update(
        wall_s=wall,
        duplicate_tasks=check.duplicate_tasks,
        duplicate_items=check.duplicate_items,
        lost=check.lost,
        unacknowledged=check.unacknowledged,
        server_cpu_ms_per_cycle=1000 * server_cpu / cycles,
        client_cpu_ms_per_cycle=1000 * client_cpu / cycles,
        postgres_cpu_ms_per_cycle=1000 * pg_cpu / cycles,
        load=load_average(),
        client=CLIENT,
        machine_cores_busy=busy,  # every process on the machine, other jobs included
        machine_cores_by_kind=by_kind,  # user, system, softirq (loopback TCP), ...
        server_process_cpu_s=[round(c, 2) for c in per_pid],  # per process: how the workers share
    )
    if out["cycles"] >= args.items:
        out["errors"]["queue ran dry"] = 1
    print(f"  {backend} w{workers}: {json.dumps(out, default=str)}", flush=True)
    return out


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
    for k in ("duplicate_tasks", "duplicate_items", "lost"):  # the worst run, not the median
        out[k] = max(r[k] for r in runs)
    out["errors"] = {}
    for r in runs:
        for k, v in r["errors"].items():
            out["errors"][k] = out["errors"].get(k, 0) + v
    out["load"] = [r["load"] for r in runs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL (a schema is created and dropped)")
    parser.add_argument("--backends", nargs="+", default=["postgres", "sqlite"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of untimed load first")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: cycles started per second")
    parser.add_argument("--label", default="", help="suffix for the result rows (e.g. 'before')")
    parser.add_argument("--profile", help="py-spy the server into <PROFILE>-<backend>-w<N>.txt")
    parser.add_argument("--out", default="load", help="results/<out>.{json,md}; '-' writes nothing")
    parser.add_argument("--table", action="store_true", help="print results/load.json as a table and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((RESULTS / "load.json").read_text())["results"]))
        return
    results: dict[str, Any] = {}
    for backend in args.backends:
        for workers in args.workers:
            runs = [run_once(backend, args.pg, workers, args) for _ in range(args.repeats)]
            key = f"{backend} · {workers} worker{'s' if workers > 1 else ''}{args.label}"
            results[key] = {"median": median_of(runs), "runs": runs}
    if args.out == "-":
        return
    meta = {
        "clients": args.clients,
        "items": args.items,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    write(RESULTS / args.out, meta, results)


def write(stem: Path, meta: dict[str, Any], results: dict[str, Any]) -> None:
    stem.parent.mkdir(exist_ok=True)
    old = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
    merged = {**old.get("results", {}), **results}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": merged}, indent=2) + "\n")
    print(f"wrote {stem}.json")


def table(results: dict[str, Any]) -> str:
    """The medians as the Markdown table that results/load.md quotes."""
    cols = ["cycles_per_s", "next_p50_ms", "next_p99_ms", "submit_p50_ms", "submit_p99_ms"]
    cols += ["server_cpu_ms_per_cycle", "client_cpu_ms_per_cycle", "postgres_cpu_ms_per_cycle"]
    cols += ["duplicate_tasks", "duplicate_items", "lost"]
    head = "| configuration | cycles/s | next p50 | next p99 | submit p50 | submit p99 | server CPU"
    head += " ms/cycle | client CPU | PG CPU | dup tasks | dup items | lost |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for key, row in results.items():
        med = row["median"]
        lines.append(f"| {key} | " + " | ".join(f"{med[c]:g}" for c in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
