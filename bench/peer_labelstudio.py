"""Peer: the same annotation workload against Label Studio and against loopwright, in one run.

Workload, on each system: import 10,000 tasks in one HTTP request, then 20 concurrent
annotators (20 users, one token each) doing next → submit for 60 s. Both run on this machine,
bound to 127.0.0.1, on SQLite (a file in a fresh temp dir) and on PostgreSQL (a new database for
Label Studio, a new schema for loopwright), driven by the same asyncio client loop (``_server.RawClient``)
(``annotate`` below); only the two requests differ:

* Label Studio (its own venv ``.venv-ls``, ``label-studio start`` = Django's threaded server):
  ``GET /api/projects/{id}/next`` (the label stream's next task; 404 when none), then
  ``POST /api/tasks/{id}/annotations/`` with a choices result (201).
* loopwright (``uvicorn`` through ``_server.make_app``, 1 worker): ``POST
  /v1/projects/{name}/tasks/next`` (200 or 204), then ``POST /v1/leases/{id}/submit`` (200).

Users, tokens and projects are set up before the clock starts (Label Studio's users through
its Django ORM, loopwright's in-process). Afterwards each database is checked for tasks
annotated twice and acknowledged annotations that are missing. Writes results/peer.{json,md}.

    python3 -m venv .venv-ls && .venv-ls/bin/pip install label-studio   # once (or LOOPWRIGHT_LS_VENV=dir)
    .venv/bin/python bench/peer_labelstudio.py [--duration 60] [--clients 20] [--tasks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    LABELS,
    PG_URL,
    Record,
    Server,
    check_db,
    children,
    cpu_seconds,
    database,
    free_port,
    load_average,
    make_client,
    project_config,
    service_token,
    summarise,
    wait_http,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LS_START_TIMEOUT = 900  # s: Django migrates a fresh database on start (minutes on a busy machine)
LS_VENV = Path(os.environ.get("LOOPWRIGHT_LS_VENV", ROOT / ".venv-ls")).expanduser()  # Label Studio's venv
LS_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text">'
    + "".join(f'<Choice value="{c}"/>' for c in LABELS)
    + "</Choices></View>"
)
LS_ADMIN, LS_PASSWORD, LS_TOKEN = (
    "bench@example.com",
    "bench-password-1",
    "benchtoken0123456789abcdef0123456789abcd",
)

# (client, rng) -> (task id, handle for submit) or None when there is no task
NextFn = Callable[[Any], Awaitable[tuple[int, Any] | None]]
# (client, handle, label) -> annotation id, or None when the submit was refused
SubmitFn = Callable[[Any, Any, str], Awaitable[int | None]]


async def annotate(
    client: Any, next_task: NextFn, submit: SubmitFn, until: float, rec: Record, seed: int
) -> None:
    """One annotator: next → submit until ``until`` (perf_counter), timing each request."""
    rng = random.Random(seed)
    async with client:
        while time.perf_counter() < until:
            try:
                t = time.perf_counter()
                got = await next_task(client)
                dt = time.perf_counter() - t
                if got is None:
                    rec.empty += 1
                    await asyncio.sleep(0.05)
                    continue
                rec.next_s.append(dt)
                task_id, handle = got
                t = time.perf_counter()
                annotation_id = await submit(client, handle, rng.choice(LABELS))
                dt = time.perf_counter() - t
                if annotation_id is None:
                    rec.error("submit refused")
                    continue
                rec.submit_s.append(dt)
                rec.acknowledged.append(annotation_id)
                rec.tasks.append(task_id)
            except (httpx.HTTPError, RuntimeError) as exc:
                rec.error(f"{type(exc).__name__}: {str(exc)[:80]}")
                await asyncio.sleep(0.05)


async def drive(clients: list[Any], next_task: NextFn, submit: SubmitFn, duration: float) -> Any:
    records = [Record() for _ in clients]
    start = time.perf_counter()
    await asyncio.gather(
        *(
            annotate(c, next_task, submit, start + duration, r, i)
            for i, (c, r) in enumerate(zip(clients, records, strict=True))
        )
    )
    return records, time.perf_counter() - start


def measure(
    pids: Callable[[], list[int]],
    clients: list[Any],
    next_task: NextFn,
    submit: SubmitFn,
    duration: float,
) -> tuple[list[Record], dict[str, Any]]:
    cpu0, client0 = sum(cpu_seconds(p) for p in pids()), time.process_time()
    records, wall = asyncio.run(drive(clients, next_task, submit, duration))
    server_cpu, client_cpu = sum(cpu_seconds(p) for p in pids()) - cpu0, time.process_time() - client0
    out = summarise(records, wall)
    cycles = max(out["cycles"], 1)
    out.update(
        wall_s=wall,
        server_cpu_ms_per_cycle=1000 * server_cpu / cycles,
        client_cpu_ms_per_cycle=1000 * client_cpu / cycles,
        load=load_average(),
    )
    return records, out


# -- Label Studio ------------------------------------------------------------------------------


def ls_env(data_dir: Path, db: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        **(db or {}),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_FEATURE_FLAGS_OFFLINE": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }


def ls_users(data_dir: Path, n: int, db: dict[str, str] | None = None) -> list[str]:
    """Create ``n`` annotator users in Label Studio's organisation; their API tokens."""
    script = f"""
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
import django
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
org = Organization.objects.first()
tokens = []
for i in range({n}):
    user = User.objects.create_user(email=f"ann{{i:03d}}@example.com", password="x-{LS_PASSWORD}")
    org.add_user(user)
    user.active_organization = org
    user.save(update_fields=["active_organization"])
    tokens.append(Token.objects.get_or_create(user=user)[0].key)
print(json.dumps(tokens))
"""
    out = subprocess.run(
        [str(LS_VENV / "bin" / "python"), "-c", script],
        env=ls_env(data_dir, db),
        check=True,
        capture_output=True,
        text=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def ls_database(backend: str, data_dir: Path, pg_url: str) -> Iterator[tuple[dict[str, str], str]]:
    """Label Studio's database settings (env) and a SQLAlchemy URL to check it afterwards."""
    if backend == "sqlite":
        yield {"DJANGO_DB": "sqlite"}, f"sqlite:///{data_dir / 'label_studio.sqlite3'}"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from loopwright.store.sql import make_engine

    name = f"ls_bench_{secrets.token_hex(4)}"
    admin = make_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    url = make_url(pg_url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        env = {
            "DJANGO_DB": "postgresql",
            "POSTGRE_NAME": name,
            "POSTGRE_USER": url.username or "postgres",
            "POSTGRE_PASSWORD": url.password or "",
            "POSTGRE_HOST": url.host or "127.0.0.1",
            "POSTGRE_PORT": str(url.port or 5432),
        }
        yield env, url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def run_label_studio(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="ls-bench-") as tmp,
        ls_database(backend, Path(tmp), args.pg) as (db_env, db_url),
    ):
        data_dir = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [str(LS_VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1"]
        cmd += ["--port", str(port), "--username", LS_ADMIN, "--password", LS_PASSWORD]
        cmd += ["--user-token", LS_TOKEN, "--enable-legacy-api-token", "--log-level", "ERROR"]
        log = (data_dir / "server.log").open("wb")
        proc = subprocess.Popen(
            cmd, env=ls_env(data_dir, db_env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            t = time.perf_counter()
            wait_http(f"{base}/health", LS_START_TIMEOUT, proc)
            startup = time.perf_counter() - t
            admin = {"Authorization": f"Token {LS_TOKEN}"}
            r = httpx.post(
                f"{base}/api/projects",
                headers=admin,
                json={"title": "bench", "label_config": LS_CONFIG, "maximum_annotations": 1},
                timeout=60,
            )
            r.raise_for_status()
            project_id = r.json()["id"]
            tasks = [{"data": {"text": f"item {i}"}} for i in range(args.tasks)]
            t = time.perf_counter()
            r = httpx.post(f"{base}/api/projects/{project_id}/import", headers=admin, json=tasks, timeout=600)
            r.raise_for_status()
            import_s = time.perf_counter() - t
            tokens = ls_users(data_dir, args.clients, db_env)

            async def next_task(client: Any) -> tuple[int, Any] | None:
                r = await client.get(f"/api/projects/{project_id}/next")
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise RuntimeError(f"next {r.status_code} {r.text[:80]}")
                task_id = int(r.json()["id"])
                return task_id, task_id

            async def submit(client: Any, task_id: Any, label: str) -> int | None:
                result = [
                    {
                        "from_name": "label",
                        "to_name": "text",
                        "type": "choices",
                        "value": {"choices": [label]},
                    }
                ]
                r = await client.post(
                    f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 1.0}
                )
                return int(r.json()["id"]) if r.status_code == 201 else None

            clients = [make_client(base, {"Authorization": f"Token {tok}"}) for tok in tokens]
            records, out = measure(
                lambda: [proc.pid, *children(proc.pid)], clients, next_task, submit, args.duration
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            proc.wait(30)
            log.close()
        errors = [
            ln for ln in (data_dir / "server.log").read_text(errors="replace").splitlines() if "Error" in ln
        ]
        stored, dup_tasks, n_tasks = ls_check(db_url, project_id)
    acked = {a for r in records for a in r.acknowledged}
    out.update(
        system=f"Label Studio {ls_version()} ({backend}, label-studio start)",
        startup_s=startup,
        import_s=import_s,
        tasks_imported=n_tasks,
        duplicate_tasks=dup_tasks,
        lost=len(acked - stored),
        annotations_stored=len(stored),
        server_log_errors=errors[-10:],
    )
    return out


def ls_check(url: str, project_id: int) -> tuple[set[int], int, int]:
    """Annotations stored, tasks annotated more than once, and tasks, in Label Studio's database."""
    from sqlalchemy import text

    from loopwright.store.sql import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = set(
                conn.execute(text("SELECT id FROM task_completion WHERE was_cancelled = false")).scalars()
            )
            dup_tasks = conn.execute(
                text(
                    "SELECT count(*) FROM"
                    " (SELECT task_id FROM task_completion GROUP BY task_id HAVING count(*) > 1) d"
                )
            ).scalar_one()
            n_tasks = conn.execute(
                text("SELECT count(*) FROM task WHERE project_id = :p"), {"p": project_id}
            ).scalar_one()
    finally:
        engine.dispose()
    return stored, int(dup_tasks), int(n_tasks)


def ls_version() -> str:
    out = subprocess.run(
        [str(LS_VENV / "bin" / "python"), "-c", "import label_studio; print(label_studio.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# -- loopwright --------------------------------------------------------------------------------


def run_loopwright(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    from loopwright import Workspace
    from loopwright.service import Role, SqlAuthenticator
    from loopwright.store.sql import SqlStore

    with database(backend, args.pg) as url:
        store = SqlStore(url)
        try:
            Workspace(store).create_project(project_config("peer"))
            auth = SqlAuthenticator(store)
            tokens = []
            for i in range(args.clients):
                auth.add_user(f"ann{i:03d}")
                auth.add_membership(f"ann{i:03d}", "peer", Role.ANNOTATOR)
                tokens.append(auth.issue_token(f"ann{i:03d}"))
        finally:
            store.close()
        svc = service_token(url, "peer")
        with Server(url, 1) as server:
            items = [{"external_id": f"i{i}", "payload": {"x": float(i)}} for i in range(args.tasks)]
            t = time.perf_counter()
            r = httpx.post(
                f"{server.base}/v1/projects/peer/items",
                headers={"Authorization": f"Bearer {svc}"},
                json={"items": items},
                timeout=600,
            )
            r.raise_for_status()
            import_s = time.perf_counter() - t
            if backend == "postgres":
                analyze(url)

            async def next_task(client: Any) -> tuple[int, Any] | None:
                r = await client.post("/v1/projects/peer/tasks/next", json={})
                if r.status_code == 204:
                    return None
                if r.status_code != 200:
                    raise RuntimeError(f"next {r.status_code} {r.text[:80]}")
                body = r.json()
                return int(body["task"]["id"]), body["lease"]["id"]

            async def submit(client: Any, lease_id: Any, label: str) -> int | None:
                r = await client.post(f"/v1/leases/{lease_id}/submit", json={"label": label})
                return int(lease_id) if r.status_code == 200 else None  # blind: no annotation id back

            clients = [make_client(server.base, {"Authorization": f"Bearer {tok}"}) for tok in tokens]
            records, out = measure(server.pids, clients, next_task, submit, args.duration)
        check = check_db(url, "peer", [a for r in records for a in r.acknowledged])
    out.update(
        system=f"loopwright ({backend}, uvicorn 1 worker)",
        import_s=import_s,
        duplicate_tasks=check.duplicate_tasks,
        lost=check.lost,
        annotations_stored=check.annotations,
    )
    return out


def analyze(url: str) -> None:
    """PostgreSQL: refresh planner statistics after the import, as autovacuum would."""
    from sqlalchemy import text

    from loopwright.store.sql import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], help="loopwright's databases"
    )
    parser.add_argument("--ls-backends", nargs="*", default=["sqlite", "postgres"], help="Label Studio's")
    parser.add_argument("--out", default="peer", help="results/<out>.json; '-' writes nothing")
    args = parser.parse_args()
    if not (LS_VENV / "bin" / "label-studio").exists():
        sys.exit(
            f"Label Studio is not installed: python3 -m venv {LS_VENV}"
            f" && {LS_VENV}/bin/pip install label-studio"
        )
    results: dict[str, Any] = {}
    print(f"load before: {load_average()}", flush=True)
    for backend in args.ls_backends:
        results[f"label_studio_{backend}"] = run_label_studio(args, backend)
        print(json.dumps(results[f"label_studio_{backend}"], default=str), flush=True)
    for backend in args.backends:
        results[f"loopwright_{backend}"] = run_loopwright(args, backend)
        print(json.dumps(results[f"loopwright_{backend}"], default=str), flush=True)
    ratios = {  # loopwright's throughput over Label Studio's, for every pair of databases
        f"{lw} / {ls}": results[lw]["cycles_per_s"] / max(results[ls]["cycles_per_s"], 1e-9)
        for lw in results
        if lw.startswith("loopwright")
        for ls in results
        if ls.startswith("label_studio")
    }
    meta = {
        "tasks": args.tasks,
        "clients": args.clients,
        "duration_s": args.duration,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps({"ratios": ratios}), flush=True)
    if args.out != "-":
        RESULTS.mkdir(exist_ok=True)
        payload = {"meta": meta, "results": results, "throughput_ratio_vs_label_studio": ratios}
        (RESULTS / f"{args.out}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
