"""Shared pieces of the HTTP benchmarks (``load.py``, ``peer_labelstudio.py``).

A database per run (a SQLite file in a temp dir, or a fresh PostgreSQL schema), a project
seeded in-process, a real uvicorn server in a subprocess on 127.0.0.1 (``--workers N``
through the ``make_app`` factory below), asyncio annotator clients on httpx doing
next → submit with per-request latencies, and the database check afterwards: duplicate
annotations per task, and acknowledged annotations missing from the table.

    .venv/bin/python -m uvicorn --app-dir bench --factory _server:make_app  # LOOPWRIGHT_BENCH_DB=url
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LABELS = ["pos", "neg"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLIENT = os.environ.get("LOOPWRIGHT_BENCH_CLIENT", "raw")  # "httpx": the clients of earlier runs


def project_config(name: str, lease_seconds: int = 300) -> dict[str, Any]:
    """No model and one tier with one annotation: every item becomes one review task."""
    return {
        "name": name,
        "labels": LABELS,
        "features": ["x"],
        "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
        "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": lease_seconds}],
    }


def items(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"external_id": f"i{i}", "payload": {"x": float(i)}} for i in range(start, start + n)]


# -- databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def database(backend: str, pg_url: str = PG_URL) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in a temp dir, or a new PostgreSQL schema."""
    from loopwright.store.sql import make_engine

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    schema = f"bench_{secrets.token_hex(4)}"
    admin = make_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def seed(url: str, project: str, n_items: int, n_annotators: int, lease_seconds: int = 300) -> list[str]:
    """Create the project, ingest ``n_items`` (1,000 a transaction), and one annotator user per
    client; return the annotators' bearer tokens."""
    from loopwright import Workspace
    from loopwright.service import Role, SqlAuthenticator
    from loopwright.store.sql import SqlStore

    store = SqlStore(url)
    try:
        loop = Workspace(store).create_project(project_config(project, lease_seconds))
        for start in range(0, n_items, 1000):
            loop.ingest(items(min(1000, n_items - start), start))
        auth = SqlAuthenticator(store)
        tokens = []
        for i in range(n_annotators):
            auth.add_user(f"ann{i:03d}")
            auth.add_membership(f"ann{i:03d}", project, Role.ANNOTATOR)
            tokens.append(auth.issue_token(f"ann{i:03d}"))
        if store.engine.dialect.name == "postgresql":
            with store.engine.begin() as conn:  # what autovacuum does within a minute of the import
                conn.execute(text("ANALYZE"))
        return tokens
    finally:
        store.close()


def service_token(url: str, project: str, name: str = "svc") -> str:
    """A token for a ``service`` member of ``project`` (may ingest)."""
    from loopwright.service import Role, SqlAuthenticator
    from loopwright.store.sql import SqlStore

    store = SqlStore(url)
    try:
        auth = SqlAuthenticator(store)
        auth.add_user(name)
        auth.add_membership(name, project, Role.SERVICE)
        return auth.issue_token(name)
    finally:
        store.close()


@dataclass
class DbCheck:
    annotations: int
    tasks_done: int
    duplicate_tasks: int  # tasks with more annotations than overlap 1 allows
    duplicate_items: int  # items annotated twice
    lost: int  # acknowledged (HTTP 200) annotations not in the table
    unacknowledged: int  # in the table, never acknowledged (the response was lost, e.g. a kill)
    leases_by_status: dict[str, int]


def check_db(url: str, project: str, acknowledged: Sequence[int]) -> DbCheck:
    """What the database holds after a run, against the lease ids whose submit clients saw
    acknowledged (annotators get no annotation ids back: blind review)."""
    from loopwright.store.sql import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT id FROM projects WHERE name = :n"), {"n": project}).scalar_one()
            ids = set(
                conn.execute(
                    text(
                        "SELECT a.lease_id FROM annotations a JOIN tasks t ON t.id = a.task_id"
                        " WHERE t.project_id = :p"
                    ),
                    {"p": pid},
                ).scalars()
            )
            dup_tasks = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT a.task_id FROM annotations a"
                    " JOIN tasks t ON t.id = a.task_id WHERE t.project_id = :p"
                    " GROUP BY a.task_id HAVING count(*) > max(t.required_annotations)) d"
                ),
                {"p": pid},
            ).scalar_one()
            dup_items = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT a.item_id FROM annotations a"
                    " JOIN tasks t ON t.id = a.task_id WHERE t.project_id = :p"
                    " GROUP BY a.item_id HAVING count(*) > 1) d"
                ),
                {"p": pid},
            ).scalar_one()
            done = conn.execute(
                text("SELECT count(*) FROM tasks WHERE project_id = :p AND status <> 'open'"), {"p": pid}
            ).scalar_one()
            leases: dict[str, int] = dict(
                conn.execute(
                    text(
                        "SELECT l.status, count(*) FROM leases l JOIN tasks t ON t.id = l.task_id"
                        " WHERE t.project_id = :p GROUP BY l.status"
                    ),
                    {"p": pid},
                ).all()
            )
    finally:
        engine.dispose()
    acked = set(acknowledged)
    return DbCheck(len(ids), done, dup_tasks, dup_items, len(acked - ids), len(ids - acked), leases)


# -- the server --------------------------------------------------------------------------------


def make_app() -> Any:
    """uvicorn factory: ``create_app`` on ``LOOPWRIGHT_BENCH_DB`` (one per worker process)."""
    from loopwright.service import create_app

    return create_app(os.environ["LOOPWRIGHT_BENCH_DB"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``uvicorn --factory _server:make_app`` on 127.0.0.1 in a subprocess (its own process group)."""

    def __init__(self, url: str, workers: int = 1, port: int | None = None) -> None:
        self.url, self.workers = url, workers
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), "--factory", "_server:make_app"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        cmd += ["--no-access-log", "--workers", str(self.workers)]
        env = {**os.environ, "LOOPWRIGHT_BENCH_DB": self.url}
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        wait_http(f"{self.base}/openapi.json", timeout, self.proc)
        return self

    def pids(self) -> list[int]:
        """The server process and its worker processes."""
        assert self.proc is not None
        return [self.proc.pid, *children(self.proc.pid)]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                child = int(stat.parent.name)
                out += [child, *children(child)]
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> float:
    """CPU of every ``postgres`` process on the machine (other users' queries included)."""
    total = 0.0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "postgres":
                total += cpu_seconds(int(comm.parent.name))
    return total


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_jiffies() -> list[int]:
    """The machine's CPU jiffies since boot by kind (``STAT_FIELDS``), from ``/proc/stat``."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def cores_busy(start: list[int], end: list[int]) -> float:
    """How many of the machine's cores were busy between two ``machine_jiffies`` readings."""
    return round(sum(cores_by_kind(start, end).values()), 2)


def cores_by_kind(start: list[int], end: list[int]) -> dict[str, float]:
    """Busy cores between two readings by kind (user, system, softirq, ...; idle left out)."""
    delta = [b - a for a, b in zip(start, end, strict=True)]
    total = max(sum(delta), 1)
    cores = os.cpu_count() or 1
    return {
        k: round(cores * d / total, 2)
        for k, d in zip(STAT_FIELDS, delta, strict=True)
        if k not in ("idle", "iowait")
    }


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as ``uptime`` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the annotator clients ---------------------------------------------------------------------


class HttpError(RuntimeError):
    """A connection, time-out or protocol failure of ``RawClient``."""


@dataclass
class Reply:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class RawClient:
    """HTTP/1.1 with keep-alive on one asyncio stream, for the load generators.

    httpx's async client costs ~5 ms of CPU per request here, as much as the server it drives
    on 2 cores; this costs a few tenths of a millisecond. Bodies by ``Content-Length`` or chunked;
    ``Connection: close`` and a keep-alive connection the server dropped while idle reconnect
    (the request is re-sent only when the server closed before answering any byte).
    ``post``/``get`` mirror httpx's, so ``make_client`` can hand out either."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self.host, self.port, self.timeout = url.hostname or "127.0.0.1", url.port or 80, timeout
        self._head = f"Host: {url.netloc}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, json: Any = None) -> Reply:
        return await self.request("POST", path, json)

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        data = b"" if body is None else _dumps(body)
        head = f"{method} {path} HTTP/1.1\r\n{self._head}"
        head += "Content-Type: application/json\r\n" if body is not None else ""
        message = f"{head}Content-Length: {len(data)}\r\n\r\n".encode("latin-1") + data
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(message)
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            await self.aclose()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, message: bytes) -> Reply:
        for attempt in range(2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._conn
            writer.write(message)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial and attempt == 0:  # closed while idle: reconnect once
                    await self.aclose()
                    continue
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip().lower()
            if "content-length" in headers:
                content = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                content = await _read_chunked(reader)
            elif status in (204, 304) or status < 200:
                content = b""
            else:  # delimited by the end of the connection
                content = await reader.read()
                headers["connection"] = "close"
            if headers.get("connection") == "close":
                await self.aclose()
            return Reply(status, content)
        raise HttpError("the server closed the connection twice")

    async def aclose(self) -> None:
        if self._conn is not None:
            writer, self._conn = self._conn[1], None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while (await reader.readline()) not in (b"\r\n", b""):  # trailers
        pass
    return b"".join(parts)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def make_client(base: str, headers: dict[str, str], timeout: float = 60.0) -> Any:
    """The load generators' HTTP client: ``RawClient``, or httpx's with LOOPWRIGHT_BENCH_CLIENT=httpx."""
    if CLIENT == "httpx":
        return httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout)
    return RawClient(base, headers, timeout)


CLIENT_ERRORS = (httpx.HTTPError, HttpError)


@dataclass
class Record:
    """What one client saw."""

    next_s: list[float] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)  # lease ids of HTTP-200 submits
    tasks: list[int] = field(default_factory=list)  # task ids of HTTP-200 submits
    empty: int = 0  # 204s
    errors: dict[str, int] = field(default_factory=dict)
    held: dict[int, int] = field(default_factory=dict)  # lease id -> task id, claimed, not yet answered

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def annotate_loopwright(
    base: str,
    project: str,
    token: str,
    until: float,
    rec: Record,
    seed: int,
    stop: asyncio.Event | None = None,
) -> None:
    """next → submit against loopwright until ``until`` (perf_counter) or ``stop``; never raises."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    async with make_client(base, headers, 30.0) as client:
        while time.perf_counter() < until and not (stop and stop.is_set()):
            try:
                t = time.perf_counter()
                r = await client.post(f"/v1/projects/{project}/tasks/next", json={})
                dt = time.perf_counter() - t
                if r.status_code == 204:
                    rec.empty += 1
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code != 200:
                    rec.error(f"next {r.status_code}")
                    continue
                rec.next_s.append(dt)
                body = r.json()
                lease_id, task_id = body["lease"]["id"], body["task"]["id"]
                rec.held[lease_id] = task_id
                t = time.perf_counter()
                r = await client.post(f"/v1/leases/{lease_id}/submit", json={"label": rng.choice(LABELS)})
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    rec.error(f"submit {r.status_code}")
                    continue
                del rec.held[lease_id]
                rec.submit_s.append(dt)
                rec.acknowledged.append(lease_id)  # annotators see no ids in the reply (blind review)
                rec.tasks.append(task_id)
            except CLIENT_ERRORS as exc:
                rec.error(type(exc).__name__)
                await asyncio.sleep(0.05)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) in ms; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(records: Sequence[Record], wall: float) -> dict[str, Any]:
    nexts = [x for r in records for x in r.next_s]
    submits = [x for r in records for x in r.submit_s]
    errors: dict[str, int] = {}
    for r in records:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    cycles = sum(len(r.acknowledged) for r in records)
    return {
        "cycles": cycles,
        "cycles_per_s": cycles / wall,
        "next_p50_ms": pct(nexts, 0.5),
        "next_p99_ms": pct(nexts, 0.99),
        "submit_p50_ms": pct(submits, 0.5),
        "submit_p99_ms": pct(submits, 0.99),
        "empty_204": sum(r.empty for r in records),
        "errors": errors,
        "active_clients": sum(bool(r.acknowledged) for r in records),
    }
