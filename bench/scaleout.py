"""Scale out: N API processes (uvicorn, 1 worker each, one port each: stand-ins for hosts) on one
PostgreSQL schema, annotator clients spread round-robin across them.

Per N in ``--servers``: a fresh schema, ``--items`` tasks, ``--clients`` annotators doing
next → submit for ``--duration`` seconds (closed loop, after ``--warmup`` untimed seconds),
then the database check (duplicate annotations, acknowledged annotations missing). Reported
per N: cycles/s, p50/p99, server and client CPU ms per cycle (all server processes),
duplicates, lost. ``--pg`` may point at PgBouncer (transaction mode) instead of PostgreSQL.

    .venv/bin/python bench/scaleout.py [--servers 1 2 3] [--duration 15] [--pg URL] [--label L]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    PG_URL,
    Record,
    Server,
    annotate_loopwright,
    check_db,
    cores_busy,
    cpu_seconds,
    database,
    load_average,
    machine_jiffies,
    seed,
    summarise,
)

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "scale"


async def drive(bases: list[str], tokens: list[str], duration: float) -> tuple[list[Record], float]:
    records = [Record() for _ in tokens]
    until = time.perf_counter() + duration
    start = time.perf_counter()
    await asyncio.gather(
        *(
            annotate_loopwright(bases[i % len(bases)], PROJECT, tok, until, rec, i)
            for i, (tok, rec) in enumerate(zip(tokens, records, strict=True))
        )
    )
    return records, time.perf_counter() - start


@contextlib.contextmanager
def fresh(args: argparse.Namespace) -> Iterator[str]:
    """A new schema on ``--pg``; with ``--bouncer``, ``--pg`` is a database of its own (PgBouncer
    drops the ``options`` that pick a schema) whose public schema is emptied first."""
    if not args.bouncer:
        with database("postgres", args.pg) as url:
            yield url
        return
    from loopwright.store.sql import make_engine

    engine = make_engine(args.pg)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield args.pg


def run_once(n: int, args: argparse.Namespace) -> dict[str, Any]:
    with fresh(args) as url:
        tokens = seed(url, PROJECT, args.items, args.clients)
        with ExitStack() as stack:
            servers = [stack.enter_context(Server(args.bouncer or url, 1)) for _ in range(n)]
            bases = [s.base for s in servers]
            asyncio.run(drive(bases, tokens, args.warmup))  # lazy imports, pools: not timed
            cpu0, client0 = sum(s.cpu_seconds() for s in servers), time.process_time()
            per_pid0, jiffies0 = {p: cpu_seconds(p) for s in servers for p in s.pids()}, machine_jiffies()
            records, wall = asyncio.run(drive(bases, tokens, args.duration))
            cpu = sum(s.cpu_seconds() for s in servers) - cpu0
            busy = cores_busy(jiffies0, machine_jiffies())
            per_pid = sorted((cpu_seconds(p) - c for p, c in per_pid0.items()), reverse=True)
            client_cpu = time.process_time() - client0
        out = summarise(records, wall)
        check = check_db(url, PROJECT, [a for r in records for a in r.acknowledged])
    out.update(
        servers=n,
        server_cpu_ms_per_cycle=1000 * cpu / max(out["cycles"], 1),
        client_cpu_ms_per_cycle=1000 * client_cpu / max(out["cycles"], 1),
        duplicate_tasks=check.duplicate_tasks,
        duplicate_items=check.duplicate_items,
        lost=check.lost,
        load=load_average(),
        machine_cores_busy=busy,  # every process on the machine, other jobs included
        server_process_cpu_s=[round(c, 2) for c in per_pid],
    )
    print(f"  {n} servers{args.label}: {json.dumps(out, default=str)}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--servers", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--items", type=int, default=8_000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load first")
    parser.add_argument("--label", default="")
    parser.add_argument("--bouncer", help="servers connect here (PgBouncer); --pg: the same database, direct")
    args = parser.parse_args()
    results = {f"{n} server{'s' if n > 1 else ''}{args.label}": run_once(n, args) for n in args.servers}
    path = RESULTS / "scaleout.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **results}, indent=2, default=str) + "\n")
    print(table({**old, **results}))


def table(results: dict[str, Any]) -> str:
    lines = ["| configuration | cycles/s | next p50 / p99 ms | submit p50 / p99 ms | server CPU ms/cycle"]
    lines[0] += " | dup tasks | dup items | lost | errors | load |"
    lines.append("|---" * 10 + "|")
    for key, r in results.items():
        lines.append(
            f"| {key} | {r['cycles_per_s']:.0f} | {r['next_p50_ms']:.0f} / {r['next_p99_ms']:.0f}"
            f" | {r['submit_p50_ms']:.0f} / {r['submit_p99_ms']:.0f} | {r['server_cpu_ms_per_cycle']:.1f}"
            f" | {r['duplicate_tasks']} | {r['duplicate_items']} | {r['lost']} | {r['errors'] or 0}"
            f" | {r['load']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
