"""Start-up: CLI commands, ``serve --workers 4`` on a loaded machine, and a 10-item REST ingest.

Before and after in one run: the "before" checkout is a ``git worktree`` of the base commit
(``git worktree add /tmp/lw-base15 HEAD`` before the change), run with the same venv by putting
its ``src`` first on ``PYTHONPATH``. Each checkout gets its own real SQLite database (the digits
project, 300 items ingested, a champion handed in), built with that checkout's own code.

1. ``loopwright --help``, ``loopwright status --help`` and ``loopwright status`` (on that
   database): hyperfine, 10 runs after 2 warm-ups; median wall time and mean CPU (user+sys);
   plus ``python -X importtime -c "import loopwright.cli.app"`` (median of 5, cumulative).
2. ``loopwright serve --workers 4`` while ``2 x cores`` busy-loop processes hog the CPU (bounded
   in time): seconds until every worker answers, and worker processes started (a respawn loop
   shows as more than 4) within ``--serve-timeout`` seconds; ``--serve-repeats`` starts (after).
3. A 10-item REST ingest with a champion (``POST /v1/projects/digits/items``, one worker):
   median latency of 10 requests after one warm-up (before: each request reloaded the model).

    .venv/bin/python bench/startup.py [--before /tmp/lw-base15] [--runs 10] [--before-runs 10]
    .venv/bin/python bench/startup.py --cli-only [--before DIR | --only-after]   # part 1 only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
AFTER = BENCH.parent
PY = sys.executable
LOOPWRIGHT = str(Path(PY).parent / "loopwright")

SEED_DB = """
import sys
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
import loopwright
root, url = sys.argv[1], sys.argv[2]
ws = loopwright.connect(url)
loop = ws.create_project(root + "/src/loopwright/examples/digits.yaml")
X, y = load_digits(return_X_y=True)
loop.use_model(LogisticRegression(max_iter=500).fit(X[:600], y[:600].astype(str)), force=True)
key = loop.config.input_key
records = [{"external_id": f"d{i}", "payload": {key: X[i].tolist()}} for i in range(600, 900)]
loop.ingest(records)
print(loop.config.input_key, loop.project.name)
"""


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root / "src"), "LOOPWRIGHT_HOME": tempfile.gettempdir()}


def seed_db(root: Path, url: str) -> str:
    done = subprocess.run(
        [PY, "-c", SEED_DB, str(root), url], env=env_for(root), capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return done.stdout.split()[0]  # the payload key


def hyperfine(root: Path, commands: dict[str, list[str]], runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in commands.items():
            export = Path(tmp) / "h.json"
            line = " ".join(cmd)
            subprocess.run(
                ["hyperfine", "-N", "-w", "2", "-r", str(runs), "--export-json", str(export), line],
                env=env_for(root),
                check=True,
                capture_output=True,
            )
            r = json.loads(export.read_text())["results"][0]
            out[name] = {
                "median_s": round(r["median"], 3),
                "min_s": round(r["min"], 3),
                "cpu_s": round(r["user"] + r["system"], 3),
            }
    return out


def importtime(root: Path, repeats: int = 5) -> dict[str, Any]:
    totals: list[int] = []
    tops: dict[str, int] = {}
    for _ in range(repeats):
        done = subprocess.run(
            [PY, "-X", "importtime", "-c", "import loopwright.cli.app"],
            env=env_for(root),
            capture_output=True,
            text=True,
            check=True,
        )
        rows = [
            (int(m.group(2)), m.group(3).strip())
            for m in re.finditer(r"import time:\s+(\d+) \|\s+(\d+) \|(.*)", done.stderr)
        ]
        totals.append(next(us for us, name in rows if name == "loopwright.cli.app"))
        for us, name in rows:
            top = name.split(".")[0]
            if top in ("sklearn", "scipy", "pandas", "skops", "sqlalchemy", "alembic", "numpy"):
                tops[top] = max(tops.get(top, 0), us)
    return {"cli_app_ms": round(statistics.median(totals) / 1000), "heavy_packages": sorted(tops)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def hog(seconds: float) -> list[subprocess.Popen[bytes]]:
    """``2 x cores`` busy loops that end by themselves after ``seconds``."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([PY, "-c", code]) for _ in range(2 * (os.cpu_count() or 1))]


def serve_workers(root: Path, url: str, workers: int, timeout: float) -> dict[str, Any]:
    """Start ``loopwright serve --workers N`` under a CPU hog; time to every worker answering."""
    port = free_port()
    hogs = hog(timeout + 15)
    cmd = [LOOPWRIGHT, "serve", "--db", url, "--port", str(port), "--open", "--workers", str(workers)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env_for(root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: set[int] = set()
    ready_s = None
    settle = 0.0
    try:
        while time.monotonic() - start < timeout and proc.poll() is None:
            seen.update(c for c in children(proc.pid) if _is_worker(c))
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/projects", timeout=2)
                if r.status_code == 200:
                    alive = [c for c in seen if Path(f"/proc/{c}").exists()]
                    if len(alive) == workers and ready_s is None:
                        ready_s = time.monotonic() - start
                        settle = time.monotonic() + 5  # watch 5 s more for respawns
                    if ready_s is not None and time.monotonic() > settle:
                        break
            except (httpx.TransportError, OSError):
                pass
            time.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for h in hogs:
            h.kill()
            h.wait()
    return {
        "ready_s": None if ready_s is None else round(ready_s, 1),
        "worker_processes_started": len(seen),
        "respawns": max(0, len(seen) - workers),
    }


def ingest_latency(root: Path, url: str, key: str, n: int) -> dict[str, Any]:
    """Median latency of ``n`` 10-item ingests over HTTP (one worker), after one warm-up."""
    from sklearn.datasets import load_digits

    X = load_digits().data
    port = free_port()
    cmd = [LOOPWRIGHT, "serve", "--db", url, "--port", str(port), "--open"]
    proc = subprocess.Popen(cmd, env=env_for(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    times = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/v1/projects", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        tag = f"{time.time_ns()}"
        with httpx.Client(base_url=base, timeout=120) as client:
            for k in range(n + 1):
                batch = [
                    {"external_id": f"r{tag}-{k}-{i}", "payload": {key: X[(10 * k + i) % len(X)].tolist()}}
                    for i in range(10)
                ]
                t0 = time.perf_counter()
                r = client.post("/v1/projects/digits/items", json={"items": batch})
                if r.status_code != 200:
                    raise SystemExit(f"ingest answered {r.status_code}: {r.text[:300]}")
                if k:  # the first request is the warm-up
                    times.append(time.perf_counter() - t0)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    return {"median_ms": round(1000 * statistics.median(times), 1), "min_ms": round(1000 * min(times), 1)}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_cli(
    root: Path, args: argparse.Namespace, tmp: Path, label: str
) -> tuple[dict[str, Any], str, str]:
    """Part 1 on a freshly seeded database: the results, the database URL and the payload key."""
    url = f"sqlite:///{tmp / label / 'loopwright.db'}"
    (tmp / label).mkdir()
    key = seed_db(root, url)
    print(f"{label}: seeded {url} (load {load_average()})", flush=True)
    cli = {
        "loopwright --help": [LOOPWRIGHT, "--help"],
        "loopwright status --help": [LOOPWRIGHT, "status", "--help"],
        "loopwright status": [LOOPWRIGHT, "status", "--db", url],
    }
    runs = args.runs if label == "after" else args.before_runs
    out: dict[str, Any] = {"cli": hyperfine(root, cli, runs), "importtime": importtime(root, 3)}
    out["runs"] = runs
    out["load"] = load_average()
    print(f"{label}: {json.dumps(out)}", flush=True)
    return out, url, key


def measure(root: Path, args: argparse.Namespace, tmp: Path, label: str) -> dict[str, Any]:
    out, url, key = measure_cli(root, args, tmp, label)
    repeats = args.serve_repeats if label == "after" else 1
    out["serve_runs"] = [serve_workers(root, url, args.workers, args.serve_timeout) for _ in range(repeats)]
    ready = [r["ready_s"] for r in out["serve_runs"]]
    out["serve"] = {  # the worst start of the repeats
        "ready_s": None if None in ready else max(ready),
        "worker_processes_started": sum(r["worker_processes_started"] for r in out["serve_runs"]),
        "respawns": sum(r["respawns"] for r in out["serve_runs"]),
        "starts": f"{sum(r is not None for r in ready)} of {repeats}",
    }
    print(f"{label}: serve {out['serve_runs']}", flush=True)
    out["ingest_10"] = ingest_latency(root, url, key, args.ingests)
    print(f"{label}: ingest {out['ingest_10']}", flush=True)
    out["load"] = load_average()
    return out


def table(results: dict[str, Any]) -> str:
    before, after = results.get("before"), results["after"]
    lines = ["| measure | before | after | ratio | target | met |", "|---|---|---|---|---|---|"]
    for name in after["cli"]:
        a = after["cli"][name]
        b = before["cli"][name] if before else None
        ratio = f"{b['median_s'] / a['median_s']:.1f}x" if b else ""
        lines.append(
            f"| `{name}` wall, median of {(before or after)['runs']}/{after['runs']} (mean CPU) | "
            + (f"{b['median_s']} s ({b['cpu_s']} s)" if b else "")
            + f" | {a['median_s']} s ({a['cpu_s']} s) | {ratio} | ≤ 0.5 s | "
            + ("yes" if a["median_s"] <= 0.5 else f"CPU {'yes' if a['cpu_s'] <= 0.5 else 'no'}, wall no")
            + " |"
        )
    bi = before["importtime"] if before else None
    ai = after["importtime"]
    lines.append(
        "| `import loopwright.cli.app` (-X importtime, median of 3) | "
        + (f"{bi['cli_app_ms']} ms: {', '.join(bi['heavy_packages'])}" if bi else "")
        + f" | {ai['cli_app_ms']} ms: {', '.join(ai['heavy_packages']) or 'none of them'} | "
        + (f"{bi['cli_app_ms'] / ai['cli_app_ms']:.1f}x" if bi else "")
        + " | no SciPy/scikit-learn | "
        + ("yes" if not {"scipy", "sklearn"} & set(ai["heavy_packages"]) else "no")
        + " |"
    )
    w = results["meta"]["workers"]
    starts = after["serve"].get("starts", "1 of 1")
    for k, label in (
        ("ready_s", f"s until all workers answer (worst of {starts})"),
        ("respawns", "worker respawns"),
    ):
        b = before["serve"][k] if before else ""
        lines.append(
            f"| `serve --workers {w}` under a CPU hog: {label} | "
            f"{'never' if b is None else b} | {after['serve'][k]} | | starts every time | "
            + ("yes" if after["serve"]["ready_s"] is not None and after["serve"]["respawns"] == 0 else "no")
            + " |"
        )
    b = before["ingest_10"]["median_ms"] if before else None
    a = after["ingest_10"]["median_ms"]
    lines.append(
        f"| 10-item REST ingest with a champion, median | {b} ms | {a} ms | "
        + (f"{b / a:.1f}x" if b else "")
        + " | model loaded once per process | "
        + ("yes" if b and a < b else "see ratio")
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=Path("/tmp/lw-base15"), help="base checkout")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--before-runs", type=int, default=10, help="fewer on a saturated machine")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--serve-timeout", type=float, default=240.0)
    parser.add_argument("--serve-repeats", type=int, default=3, help="starts of serve (after only)")
    parser.add_argument("--ingests", type=int, default=10)
    parser.add_argument("--only-after", action="store_true")
    parser.add_argument(
        "--cli-only", action="store_true", help="part 1 only, kept under 'cli_rerun' in startup.json"
    )
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is needed: apt-get install hyperfine")
    if args.cli_only:
        cli_rerun(args)
        return
    results: dict[str, Any] = {
        "meta": {
            "runs": args.runs,
            "workers": args.workers,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": load_average(),
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["after"] = measure(AFTER, args, Path(tmp), "after")
        write(results)
        if not args.only_after:
            results["before"] = measure(args.before, args, Path(tmp), "before")
            write(results)


def cli_rerun(args: argparse.Namespace) -> None:
    """Part 1 only (before unless ``--only-after``), stored next to the full run's results."""
    rerun: dict[str, Any] = {"meta": {"runs": args.runs, "load_at_start": load_average()}}
    with tempfile.TemporaryDirectory() as tmp:
        rerun["after"] = measure_cli(AFTER, args, Path(tmp), "after")[0]
        if not args.only_after:
            rerun["before"] = measure_cli(args.before, args, Path(tmp), "before")[0]
    path = RESULTS / "startup.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    results["cli_rerun"] = rerun
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for name, a in rerun["after"]["cli"].items():
        b = rerun.get("before", {}).get("cli", {}).get(name)
        was = f"{b['median_s']} s ({b['cpu_s']} s CPU) -> " if b else ""
        print(f"{name}: {was}{a['median_s']} s ({a['cpu_s']} s CPU), min {a['min_s']} s")


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md = [
        "# Start-up",
        "",
        f"Written by `bench/startup.py` on {results['meta']['cores']} shared cores (load average "
        f"{results['meta']['load_at_start']} at the start; read the CPU column next to the wall "
        "time). Before: the base commit's checkout; after: this tree.",
        "",
        table(results),
        "",
    ]
    (RESULTS / "startup.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
