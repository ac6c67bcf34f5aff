"""HTTP batch ingest with a champion: items/s through ``POST /v1/projects/{name}/items``.

Per run: a fresh database (SQLite file or a new PostgreSQL schema), a two-label project whose
champion is trained in-process (60 items labelled by hand through review, one retrain), a
service token, then ``uvicorn`` (1 worker) on 127.0.0.1 and one client posting ``--items``
new items in batches of ``--batch``. Reported: items/s (wall, the client waits for each
batch), server CPU ms per 1,000 items, and the number of items stored afterwards.

``--compare SRC`` runs the same thing a second time with ``PYTHONPATH=SRC`` (e.g. the ``src``
of a ``git worktree`` of the commit before) in a child process, so both sides share one run.
``--labelstudio`` also imports the same number of tasks into Label Studio (``label-studio
start``, its venv as in ``peer_labelstudio.py``) in the same batches through
``POST /api/projects/{id}/import`` — no model, so no prediction or routing there.

    .venv/bin/python bench/ingest.py --compare /tmp/lw-head/src [--items 10000] [--repeats 3] [--labelstudio]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import PG_URL, Server, database, load_average, service_token

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "ingest"
CONFIG: dict[str, Any] = {
    "name": PROJECT,
    "labels": ["pos", "neg"],
    "features": ["x"],
    "routing": {"accept_threshold": 0.9, "audit_rate": 0.05, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": 300}],
    "retrain": {"every_n_labels": 1000, "min_labels": 20, "eval_fraction": 0.3},
    "gate": {"min_eval_items": 3},
}


def records(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"external_id": f"r{i}", "payload": {"x": float(i % 100)}} for i in range(start, start + n)]


def seed_champion(url: str) -> None:
    """The project, 60 items labelled (x < 50: pos) and a trained champion."""
    from loopwright import Workspace
    from loopwright.store.sql import SqlStore

    store = SqlStore(url)
    try:
        loop = Workspace(store).create_project(CONFIG)
        loop.ingest(records(60, start=10_000_000))
        while (a := loop.next_task("seeder")) is not None:
            loop.submit(a.lease.id, "seeder", "pos" if a.item.payload["x"] < 50 else "neg")
        loop.retrain()
        with store.engine.connect() as conn:
            champion = conn.execute(text("SELECT count(*) FROM model_versions WHERE status = 'champion'"))
            assert champion.scalar_one() == 1, "no champion after the seed retrain"
    finally:
        store.close()


def run_once(backend: str, pg_url: str, args: argparse.Namespace) -> dict[str, Any]:
    with database(backend, pg_url) as url:
        seed_champion(url)
        token = service_token(url, PROJECT)
        with Server(url, 1) as server:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.base, headers=headers, timeout=300) as client:
                warm = client.post(f"/v1/projects/{PROJECT}/items", json={"items": records(10, 20_000_000)})
                assert warm.status_code == 200, warm.text
                cpu0, t0 = server.cpu_seconds(), time.perf_counter()
                for start in range(0, args.items, args.batch):
                    batch = records(min(args.batch, args.items - start), start)
                    r = client.post(f"/v1/projects/{PROJECT}/items", json={"items": batch})
                    assert r.status_code == 200, r.text[:300]
                wall = time.perf_counter() - t0
                cpu = server.cpu_seconds() - cpu0
        from loopwright.store.sql import make_engine

        engine = make_engine(url)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM items WHERE external_id LIKE 'r%'")).scalar_one()
            predicted = conn.execute(text("SELECT count(*) FROM predictions WHERE label IS NOT NULL"))
            n_pred = predicted.scalar_one()
        engine.dispose()
    return {
        "items_per_s": args.items / wall,
        "server_cpu_ms_per_1000": 1000 * cpu / args.items * 1000,
        "stored": stored - 60,
        "predicted": n_pred,
        "wall_s": wall,
        "load": load_average(),
    }


def one(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in args.backends:
        runs = [run_once(backend, args.pg, args) for _ in range(args.repeats)]
        for r in runs:
            print(f"  {backend}: {json.dumps(r)}", file=sys.stderr, flush=True)
        out[backend] = {
            "items_per_s": statistics.median(r["items_per_s"] for r in runs),
            "server_cpu_ms_per_1000": statistics.median(r["server_cpu_ms_per_1000"] for r in runs),
            "stored": min(r["stored"] for r in runs),
            "runs": runs,
        }
    return out


def run_label_studio(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Label Studio's task import of ``--items`` tasks, ``--batch`` a request (wall and CPU), into
    ``--repeats`` new projects of one server (its start migrates a fresh database: minutes)."""
    import tempfile

    from _server import children, free_port, wait_http
    from peer_labelstudio import (
        LS_ADMIN,
        LS_PASSWORD,
        LS_START_TIMEOUT,
        LS_TOKEN,
        LS_VENV,
        ls_database,
        ls_env,
    )

    with (
        tempfile.TemporaryDirectory(prefix="ls-ingest-") as tmp,
        ls_database(backend, Path(tmp), args.pg) as (db_env, _),
    ):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [str(LS_VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1"]
        cmd += ["--port", str(port), "--username", LS_ADMIN, "--password", LS_PASSWORD]
        cmd += ["--user-token", LS_TOKEN, "--enable-legacy-api-token", "--log-level", "ERROR"]
        env = ls_env(Path(tmp), db_env)
        with (Path(tmp) / "server.log").open("wb") as log:
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                wait_http(f"{base}/health", LS_START_TIMEOUT, proc)
                admin = {"Authorization": f"Token {LS_TOKEN}"}
                with httpx.Client(base_url=base, headers=admin, timeout=600) as client:
                    runs = [
                        _ls_import(client, [proc.pid, *children(proc.pid)], args, i)
                        for i in range(args.repeats)
                    ]
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(30)
    return {
        "items_per_s": statistics.median(r["items_per_s"] for r in runs),
        "server_cpu_ms_per_1000": statistics.median(r["server_cpu_ms_per_1000"] for r in runs),
        "stored": min(r["stored"] for r in runs),
        "runs": runs,
    }


def _ls_import(client: httpx.Client, pids: list[int], args: argparse.Namespace, n: int) -> dict[str, Any]:
    """One timed import into a new Label Studio project of the running server."""
    from _server import cpu_seconds
    from peer_labelstudio import LS_CONFIG

    config = {"title": f"ingest {n}", "label_config": LS_CONFIG, "maximum_annotations": 1}
    project_id = client.post("/api/projects", json=config).raise_for_status().json()["id"]
    url = f"/api/projects/{project_id}/import"
    client.post(url, json=_ls_tasks(10, 20_000_000)).raise_for_status()  # warm-up
    cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    for start in range(0, args.items, args.batch):
        client.post(url, json=_ls_tasks(min(args.batch, args.items - start), start)).raise_for_status()
    wall = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    stored = client.get(f"/api/projects/{project_id}").json().get("task_number")
    return {
        "items_per_s": args.items / wall,
        "server_cpu_ms_per_1000": 1000 * cpu / args.items * 1000,
        "stored": (stored or 0) - 10,
        "wall_s": wall,
        "load": load_average(),
    }


def _ls_tasks(n: int, start: int) -> list[dict[str, Any]]:
    """The same items as :func:`records`, as Label Studio tasks (its config shows ``text``)."""
    return [{"data": {"text": f"r{i}", "x": float(i % 100)}} for i in range(start, start + n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", help="the src directory of the code before (a git worktree)")
    parser.add_argument("--labelstudio", action="store_true", help="also time Label Studio's import")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args)))
        return
    results = {"after": one(args)}
    if args.compare:
        cmd = [sys.executable, __file__, "--child", "--pg", args.pg, "--items", str(args.items)]
        cmd += ["--batch", str(args.batch), "--repeats", str(args.repeats), "--backends", *args.backends]
        env = {**os.environ, "PYTHONPATH": args.compare}
        done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        sys.stderr.write(done.stderr)
        results["before"] = json.loads(done.stdout)
    if args.labelstudio:
        results["labelstudio"] = {b: run_label_studio(b, args) for b in args.backends}
        for b, r in results["labelstudio"].items():
            print(f"  labelstudio {b}: {json.dumps(r)}", file=sys.stderr, flush=True)
    meta = {"items": args.items, "batch": args.batch, "repeats": args.repeats}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(table(results))


def table(results: dict[str, Any]) -> str:
    lines = ["| backend | before items/s | after items/s | ratio | server CPU ms/1,000 before | after |"]
    lines.append("|---|---|---|---|---|---|")
    for backend, ls in results.get("labelstudio", {}).items():
        rate, cpu = ls["items_per_s"], ls["server_cpu_ms_per_1000"]
        lines.append(f"| Label Studio import, {backend} | - | {rate:.0f} | - | - | {cpu:.0f} |")
    for backend, after in results["after"].items():
        before = results.get("before", {}).get(backend)
        rate, cpu = after["items_per_s"], after["server_cpu_ms_per_1000"]
        if before:
            old, old_cpu = before["items_per_s"], before["server_cpu_ms_per_1000"]
            lines.append(
                f"| {backend} | {old:.0f} | {rate:.0f} | {rate / old:.1f}x | {old_cpu:.0f} | {cpu:.0f} |"
            )
        else:
            lines.append(f"| {backend} | - | {rate:.0f} | - | - | {cpu:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
