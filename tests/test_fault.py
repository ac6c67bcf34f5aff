"""Fault: SIGKILL a real ``loopwright serve`` mid-load, restart it on the same database.

Ten annotator clients (asyncio + httpx, one token each) do next → submit over HTTP while two
more claim a task each and hold it. The server is SIGKILLed mid-request and restarted; the
clients go on until every task is resolved. Every annotation acknowledged with HTTP 200 before
the kill must be in the database; leases active at the kill must expire (5-second leases) and
their tasks be claimed again and annotated; in the end every task has exactly one annotation.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from live import free_port
from loopwright import Workspace
from loopwright.service import Role, SqlAuthenticator
from loopwright.store.sql import SqlStore, make_engine

N_ITEMS, N_CLIENTS, N_HOLDERS, LEASE_SECONDS = 100, 10, 2, 5
PROJECT = "fault"
CONFIG: dict[str, Any] = {
    "name": PROJECT,
    "labels": ["pos", "neg"],
    "features": ["x"],
    "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": LEASE_SECONDS}],
}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@dataclass
class Seen:
    acknowledged: dict[int, int] = field(default_factory=dict)  # lease id -> task id (submit: HTTP 200)
    held: dict[int, int] = field(default_factory=dict)  # lease id -> task id, claimed by a holder
    failures: list[str] = field(default_factory=list)


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopwright", "serve", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("server did not start")


async def annotate(base: str, token: str, seen: Seen, stop: asyncio.Event) -> None:
    """next → submit until ``stop``; a refused connection (server down) is retried."""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        while not stop.is_set():
            try:
                r = await client.post(f"/v1/projects/{PROJECT}/tasks/next", json={})
                if r.status_code == 204:
                    await asyncio.sleep(0.1)
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                lease = body["lease"]["id"]
                r = await client.post(f"/v1/leases/{lease}/submit", json={"label": "pos"})
                if r.status_code == 200:  # annotators see no ids in the reply (blind review)
                    seen.acknowledged[lease] = body["task"]["id"]
                else:  # a lease that ran out under load: 409, the task goes back to the queue
                    assert r.status_code == 409, r.text
                    seen.failures.append(r.text)
            except httpx.TransportError:
                await asyncio.sleep(0.1)


async def hold(base: str, token: str, seen: Seen) -> None:
    """Claim one task and never submit it."""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        r = await client.post(f"/v1/projects/{PROJECT}/tasks/next", json={})
        assert r.status_code == 200, r.text
        seen.held[r.json()["lease"]["id"]] = r.json()["task"]["id"]


async def load_then_kill(base: str, tokens: list[str], proc: subprocess.Popen[bytes], seen: Seen) -> None:
    await asyncio.gather(*(hold(base, t, seen) for t in tokens[N_CLIENTS : N_CLIENTS + N_HOLDERS]))
    stop = asyncio.Event()
    clients = [asyncio.create_task(annotate(base, t, seen, stop)) for t in tokens[:N_CLIENTS]]
    deadline = time.monotonic() + 30
    while len(seen.acknowledged) < N_ITEMS // 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are in flight
    proc.wait()
    stop.set()
    await asyncio.gather(*clients)


async def finish(base: str, tokens: list[str], seen: Seen) -> None:
    stop = asyncio.Event()
    clients = [asyncio.create_task(annotate(base, t, seen, stop)) for t in tokens[:-1]]
    headers = {"Authorization": f"Bearer {tokens[-1]}"}
    deadline = time.monotonic() + 40
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            if (await client.get(f"/v1/projects/{PROJECT}")).json()["resolutions"] == N_ITEMS:
                break
            await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*clients)


def seed(url: str) -> list[str]:
    store = SqlStore(url)
    try:
        loop = Workspace(store).create_project(CONFIG)
        loop.ingest([{"external_id": f"i{i}", "payload": {"x": float(i)}} for i in range(N_ITEMS)])
        auth = SqlAuthenticator(store)
        tokens = []
        for i in range(N_CLIENTS + N_HOLDERS):
            auth.add_user(f"ann{i}")
            auth.add_membership(f"ann{i}", PROJECT, Role.ANNOTATOR)
            tokens.append(auth.issue_token(f"ann{i}"))
        auth.add_user("lead")
        auth.add_membership("lead", PROJECT, Role.LEAD)
        return [*tokens, auth.issue_token("lead")]  # the lead's token last: it watches, never claims
    finally:
        store.close()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_sigkill_mid_load_loses_no_acknowledged_annotation(store_url: str) -> None:
    tokens = seed(store_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    seen = Seen()
    proc = start_server(store_url, port)
    try:
        asyncio.run(load_then_kill(base, tokens, proc, seen))
    finally:
        proc.kill()
        proc.wait()
    acked_at_kill = dict(seen.acknowledged)
    assert len(acked_at_kill) >= N_ITEMS // 3
    assert len(seen.held) == N_HOLDERS
    annotated_leases = {i for (i,) in rows(store_url, "SELECT lease_id FROM annotations")}
    assert set(acked_at_kill) <= annotated_leases  # 0 acknowledged annotations lost
    assert len(annotated_leases - set(acked_at_kill)) <= N_CLIENTS  # committed, reply cut by the kill
    active = dict(rows(store_url, "SELECT id, task_id FROM leases WHERE status = 'active'"))
    assert set(seen.held) <= set(active)

    proc = start_server(store_url, port)  # the same database, the same address
    try:
        asyncio.run(finish(base, tokens, seen))
        deadline = time.monotonic() + 30  # the server's lease sweep runs every few seconds
        while rows(store_url, "SELECT count(*) FROM leases WHERE status = 'active'") != [(0,)]:
            assert time.monotonic() < deadline, "stale leases were never swept"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)

    annotations = rows(store_url, "SELECT id, task_id, item_id, lease_id FROM annotations")
    by_lease = {a[3]: a for a in annotations}
    assert set(seen.acknowledged) <= set(by_lease)
    assert all(by_lease[lease][1] == task for lease, task in seen.acknowledged.items())
    assert len(annotations) == N_ITEMS  # every task annotated exactly once (overlap 1)
    assert len({a[1] for a in annotations}) == N_ITEMS
    assert len({a[2] for a in annotations}) == N_ITEMS
    statuses = dict(rows(store_url, "SELECT status, count(*) FROM tasks GROUP BY status"))
    assert statuses == {"resolved": N_ITEMS}
    # leases live at the kill expired, and their tasks were claimed anew and annotated
    lease_status = dict(rows(store_url, "SELECT id, status FROM leases"))
    assert {lease_status[lease] for lease in active} == {"expired"}
    annotated_under = {a[1]: a[3] for a in annotations}
    for lease, task in active.items():
        assert annotated_under[task] != lease
    assert rows(store_url, "SELECT count(*) FROM leases WHERE status = 'active'") == [(0,)]
    # the claim's per-task counter (migration 0007) agrees with the annotations table
    drift = "SELECT count(*) FROM tasks t WHERE t.n_annotations <> (SELECT count(*) FROM annotations a"
    assert rows(store_url, drift + " WHERE a.task_id = t.id)") == [(0,)]
