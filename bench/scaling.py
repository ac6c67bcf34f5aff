"""Per-request cost against project size: claim, submit and ingest of 500 at 1k, 10k, 100k items.

For each backend (SQLite file, PostgreSQL in a fresh database) and size N, a project is created
through the API (3 labels, two numeric features, Dawid-Skene consensus, the ``hybrid`` queue
strategy, a certified threshold, 10 % audit, overlap 1) with a fixed callable as champion; then
N resolved items are written with bulk SQL in the set-up (items, predictions, decisions with a
10 % audit, tasks, submitted leases, one annotation each from 20 annotators who are right 85 %
of the time, resolutions): the API would take hours. Then, timed through the Python API
(``Loop``) in this process:

- ``ingest``: ``loop.ingest`` of 500 new items (scored, certified, routed, queued in hybrid
  order), after one untimed warm-up ingest, ``INGESTS`` repeats;
- ``claim``: ``loop.next_task`` by a new annotator, ``CYCLES`` repeats;
- ``submit``: ``loop.submit`` of that lease (overlap 1: every submit consolidates its item).

Each figure is the median over repeats of wall time and of this process's CPU time (SQLite
runs in-process; PostgreSQL's server CPU is not counted), with the max, and the ratio
100k / 1k next to the 1.5x target. Run it against any checkout of the code:

    nice -n 10 .venv/bin/python bench/scaling.py --label after
    git worktree add /tmp/lw-base HEAD   # the code before, same script
    PYTHONPATH=/tmp/lw-base/src nice -n 10 .venv/bin/python bench/scaling.py --label before

Each run is stored under its label in results/scaling.json (a run of the same label replaces
it); the tables of every run there are printed, so before and after sit side by side.
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

import loopwright
from loopwright import Loop, Workspace
from loopwright.store.sql import SqlStore
from loopwright.store.sql import tables as t

RESULTS = Path(__file__).resolve().parent / "results"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SIZES = (1_000, 10_000, 100_000)
INGESTS, CYCLES, BATCH = 3, 15, 500
LABELS = ["a", "b", "c"]
CONFIG: dict[str, Any] = {
    "name": "scaling",
    "labels": LABELS,
    "features": ["x", "y"],
    "routing": {
        "audit_rate": 0.1,
        "certify": {"epsilon": 0.05, "delta": 0.05},
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": 600}],
    "consensus": {"method": "dawid_skene"},
    "active": {"strategy": "hybrid"},
}


def model(X: Any) -> Any:
    """Three classes by the angle of (x, y); confidence grows with the radius."""
    X = np.asarray(X, dtype=np.float64)
    angle = np.arctan2(X[:, 1], X[:, 0])
    radius = np.hypot(X[:, 0], X[:, 1])[:, None]
    logits = np.stack([np.cos(angle - c) for c in (0.0, 2.1, 4.2)], axis=1) * radius
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def payload(rng: np.random.Generator) -> dict[str, float]:
    x, y = rng.normal(0, 2, 2)
    return {"x": float(x), "y": float(y)}


def bulk(engine: Engine, project_id: int, n: int, seed: int = 0) -> None:
    """Write ``n`` resolved items with their predictions, decisions, tasks, leases, annotations."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        version = conn.execute(
            select(t.model_versions.c.id).where(t.model_versions.c.project_id == project_id)
        )
        version_id = version.scalars().first()
        start = {
            name: int(conn.execute(select(text("coalesce(max(id), 0)")).select_from(table)).scalar_one()) + 1
            for name, table in (
                ("items", t.items),
                ("predictions", t.predictions),
                ("decisions", t.decisions),
                ("tasks", t.tasks),
                ("leases", t.leases),
                ("annotations", t.annotations),
                ("resolutions", t.resolutions),
            )
        }
        rows: dict[str, list[dict[str, Any]]] = {k: [] for k in start}
        for i in range(n):
            p = payload(rng)
            proba = model([[p["x"], p["y"]]])[0]
            truth = LABELS[int(rng.choice(3, p=proba))]
            worker = f"w{i % 20:02d}"
            said = truth if rng.random() < 0.85 else LABELS[(LABELS.index(truth) + 1) % 3]
            ids = {k: v + i for k, v in start.items()}
            audit = i % 10 == 0
            rows["items"].append(
                {
                    "id": ids["items"],
                    "project_id": project_id,
                    "external_id": f"bulk{i}",
                    "content_hash": secrets.token_hex(32),
                    "payload": p,
                    "metadata": {},
                    "created_at": now,
                }
            )
            rows["predictions"].append(
                {
                    "id": ids["predictions"],
                    "item_id": ids["items"],
                    "model_version_id": version_id,
                    "probabilities": dict(zip(LABELS, proba.tolist(), strict=True)),
                    "label": LABELS[int(proba.argmax())],
                    "confidence": float(proba.max()),
                    "error": None,
                    "created_at": now,
                }
            )
            rows["decisions"].append(
                {
                    "id": ids["decisions"],
                    "item_id": ids["items"],
                    "prediction_id": ids["predictions"],
                    "route": "review",
                    "tier": 1,
                    "reason": "audit" if audit else "uncertified",
                    "audit": audit,
                    "threshold": None,
                    "created_at": now,
                }
            )
            rows["tasks"].append(
                {
                    "id": ids["tasks"],
                    "project_id": project_id,
                    "item_id": ids["items"],
                    "decision_id": ids["decisions"],
                    "tier": 1,
                    "status": "resolved",
                    "priority": 0.5,
                    "reason": "uncertified",
                    "required_annotations": 1,
                    "parent_task_id": None,
                    "created_at": now,
                    "closed_at": now,
                    "gold_label": None,
                    "n_annotations": 1,
                }
            )
            rows["leases"].append(
                {
                    "id": ids["leases"],
                    "task_id": ids["tasks"],
                    "annotator": worker,
                    "status": "submitted",
                    "expires_at": now,
                    "created_at": now,
                    "session_id": None,
                }
            )
            rows["annotations"].append(
                {
                    "id": ids["annotations"],
                    "task_id": ids["tasks"],
                    "item_id": ids["items"],
                    "lease_id": ids["leases"],
                    "annotator": worker,
                    "label": said,
                    "unsure": False,
                    "created_at": now,
                }
            )
            rows["resolutions"].append(
                {
                    "id": ids["resolutions"],
                    "item_id": ids["items"],
                    "task_id": ids["tasks"],
                    "label": said,
                    "method": "dawid_skene",
                    "agreement": 1.0,
                    "n_annotations": 1,
                    "created_at": now,
                }
            )
        for name in ("items", "predictions", "decisions", "tasks", "leases", "annotations", "resolutions"):
            table = t.metadata.tables[name]
            for k in range(0, n, 5000):
                conn.execute(insert(table), rows[name][k : k + 5000])
            if engine.dialect.name == "postgresql":
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
                    )
                )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(url: str, n: int) -> dict[str, dict[str, float]]:
    store = SqlStore(url)
    try:
        loop: Loop = Workspace(store).create_project({**CONFIG, "name": f"scaling{n}"})
        loop.use_model(model, force=True, persist=False)
        t0 = time.perf_counter()
        bulk(store.engine, loop.project.id, n)
        print(f"  set-up of {n} items: {time.perf_counter() - t0:.1f} s", flush=True)
        rng = np.random.default_rng(n)
        batch = 0

        def ingest() -> Any:
            nonlocal batch
            batch += 1
            return loop.ingest(
                [{"external_id": f"new{batch}-{i}", "payload": payload(rng)} for i in range(BATCH)]
            )

        ingest()  # warm-up: the first certificate, caches
        assert loop.status().certification is not None, "the champion failed to score"
        samples: dict[str, list[tuple[float, float]]] = {"claim": [], "submit": [], "ingest": []}
        for _ in range(INGESTS):
            _, wall, cpu = timed(ingest)
            samples["ingest"].append((wall, cpu))
        for k in range(CYCLES):
            name = f"annotator{k}"
            assignment, wall, cpu = timed(lambda name=name: loop.next_task(name))  # type: ignore[misc]
            samples["claim"].append((wall, cpu))
            assert assignment is not None, "no task to claim"
            label = LABELS[k % 3]
            _, wall, cpu = timed(
                lambda a=assignment, name=name, label=label: loop.submit(a.lease.id, name, label)
            )  # type: ignore[misc]
            samples["submit"].append((wall, cpu))
        return {
            op: {
                "wall_ms": 1000 * statistics.median(w for w, _ in s),
                "cpu_ms": 1000 * statistics.median(c for _, c in s),
                "max_ms": 1000 * max(w for w, _ in s),
                "repeats": len(s),
            }
            for op, s in samples.items()
        }
    finally:
        store.close()


def fresh_pg(base: str) -> tuple[str, Callable[[], None]]:
    name = f"lw_scaling_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return make_url(base).set(database=name).render_as_string(hide_password=False), drop


def run(backends: list[str], sizes: tuple[int, ...], pg: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in backends:
        out[backend] = {}
        for n in sizes:
            print(f"{backend} {n}", flush=True)
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    out[backend][str(n)] = measure(f"sqlite:///{tmp}/scaling.db", n)
            else:
                url, drop = fresh_pg(pg)
                try:
                    out[backend][str(n)] = measure(url, n)
                finally:
                    drop()
            print(f"  {json.dumps(out[backend][str(n)])}", flush=True)
    return out


def stored() -> dict[str, Any]:
    path = RESULTS / "scaling.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def report() -> str:
    runs = stored()
    order = sorted(runs, key=lambda k: (k != "before", k))
    lines = [
        "# Per-request cost against project size",
        "",
        "`bench/scaling.py` (see its docstring; reproduce with the commands in `bench/README.md`).",
        "Median over repeats of wall time and of the benchmark process's CPU time per request",
        f"(ingest: {INGESTS} batches of {BATCH} after a warm-up; claim and submit: {CYCLES} cycles),",
        "max wall time in brackets. Target: 100k / 1k ≤ 1.5x on both databases (issue 15).",
        "PostgreSQL's own server CPU is not in the CPU column. 2 shared, noisy cores.",
        "",
    ]
    for label in order:
        data = runs[label]
        load = data["meta"].get("load_start_end")
        load_note = f", load {load[0]} → {load[1]}" if load else ""
        lines += [f"## {label} ({data['meta']['when']}, {data['meta']['code']}{load_note})", ""]
        lines += [
            "| backend | request | "
            + " | ".join(f"{int(n) // 1000}k wall ms (cpu) [max]" for n in data["sizes"])
            + " | 100k / 1k wall | 100k / 1k cpu | target ≤ 1.5x (both) |",
            "|---|---|" + "---|" * len(data["sizes"]) + "---|---|---|",
        ]
        for backend, by_size in data["results"].items():
            for op in ("claim", "submit", "ingest"):
                cells = []
                for n in data["sizes"]:
                    m = by_size[n][op]
                    cells.append(f"{m['wall_ms']:.1f} ({m['cpu_ms']:.1f}) [{m['max_ms']:.0f}]")
                lo, hi = by_size[data["sizes"][0]][op], by_size[data["sizes"][-1]][op]
                wall, cpu = hi["wall_ms"] / lo["wall_ms"], hi["cpu_ms"] / max(lo["cpu_ms"], 1e-9)
                verdict = "met" if max(wall, cpu) <= 1.5 else "missed"
                lines.append(
                    f"| {backend} | {op} | "
                    + " | ".join(cells)
                    + f" | {wall:.2f}x | {cpu:.2f}x | {verdict} |"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    global CYCLES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="name of this run (before / after)")
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL server URL (a database is created)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--cycles", type=int, default=CYCLES, help="claim and submit repeats per size")
    args = parser.parse_args()
    CYCLES = args.cycles
    sizes = tuple(int(s) for s in args.sizes.split(","))
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    results = run(args.backends.split(","), sizes, args.pg)
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code": str(Path(loopwright.__file__).parent),
        "python": platform.python_version(),
        "cycles": CYCLES,
        "load_start_end": [" ".join(load_start), " ".join(Path("/proc/loadavg").read_text().split()[:3])],
    }
    RESULTS.mkdir(exist_ok=True)
    runs = {**stored(), args.label: {"meta": meta, "sizes": [str(n) for n in sizes], "results": results}}
    (RESULTS / "scaling.json").write_text(json.dumps(runs, indent=1) + "\n")
    print(report())


if __name__ == "__main__":
    main()
