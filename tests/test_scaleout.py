"""Scale out: three ``loopwright serve`` processes on one PostgreSQL schema, clients spread.

Each of 12 annotator clients claims on one server and submits on the next (so a lease is often
answered by a process that never saw it), until every task is resolved. Then: no task and no
item annotated twice, every acknowledged submit in the table, and each ``annotation.submitted``
event delivered to the webhook receiver exactly once although all three processes run a
webhook dispatcher.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from conftest import PG_URL
from live import free_port
from loopwright import Workspace
from loopwright.service import Role, SqlAuthenticator
from loopwright.store.sql import SqlStore, make_engine
from test_webhooks import Receiver

N_SERVERS, N_CLIENTS, N_ITEMS = 3, 9, 90
PROJECT = "scale"
CONFIG: dict[str, Any] = {
    "name": PROJECT,
    "labels": ["pos", "neg"],
    "features": ["x"],
    "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": 60}],
}
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    schema = f"lw_{secrets.token_hex(6)}"
    with pg_admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with pg_admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def seed(url: str) -> tuple[list[str], str]:
    store = SqlStore(url)
    try:
        loop = Workspace(store).create_project(CONFIG)
        loop.ingest([{"external_id": f"i{i}", "payload": {"x": float(i)}} for i in range(N_ITEMS)])
        auth = SqlAuthenticator(store)
        tokens = []
        for i in range(N_CLIENTS):
            auth.add_user(f"ann{i}")
            auth.add_membership(f"ann{i}", PROJECT, Role.ANNOTATOR)
            tokens.append(auth.issue_token(f"ann{i}"))
        auth.add_user("lead")
        auth.add_membership("lead", PROJECT, Role.LEAD)
        return tokens, auth.issue_token("lead")
    finally:
        store.close()


def start(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOOPWRIGHT_WEBHOOK_ALLOW": "127.0.0.1"}
    cmd = [sys.executable, "-m", "loopwright", "serve", "--db", url, "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_up(procs: list[subprocess.Popen[bytes]], bases: list[str]) -> None:
    deadline = time.monotonic() + 45
    for proc, base in zip(procs, bases, strict=True):
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"server exited {proc.returncode}: {err}")
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base} did not start")
            time.sleep(0.1)


async def annotate(claim_on: str, submit_on: str, token: str, acked: list[int], stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=claim_on, headers=headers, timeout=30) as claimer,
        httpx.AsyncClient(base_url=submit_on, headers=headers, timeout=30) as submitter,
    ):
        while not stop.is_set():
            r = await claimer.post(f"/v1/projects/{PROJECT}/tasks/next", json={})
            if r.status_code == 204:
                await asyncio.sleep(0.05)
                continue
            assert r.status_code == 200, r.text
            lease = r.json()["lease"]["id"]
            r = await submitter.post(f"/v1/leases/{lease}/submit", json={"label": "pos"})
            assert r.status_code == 200, r.text
            acked.append(lease)


async def run(bases: list[str], tokens: list[str], lead: str) -> list[int]:
    acked: list[int] = []
    stop = asyncio.Event()
    clients = [
        asyncio.create_task(annotate(bases[i % N_SERVERS], bases[(i + 1) % N_SERVERS], t, acked, stop))
        for i, t in enumerate(tokens)
    ]
    deadline = time.monotonic() + 40
    async with httpx.AsyncClient(base_url=bases[0], headers={"Authorization": f"Bearer {lead}"}) as watch:
        while time.monotonic() < deadline and not any(c.done() for c in clients):
            if (await watch.get(f"/v1/projects/{PROJECT}")).json()["resolutions"] == N_ITEMS:
                break
            await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*clients)
    return acked


def test_three_processes_on_one_database_no_duplicate_no_loss_each_webhook_once(pg_url: str) -> None:
    tokens, lead = seed(pg_url)
    receiver = Receiver()
    ports = [free_port() for _ in range(N_SERVERS)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [start(pg_url, p) for p in ports]
    try:
        wait_up(procs, bases)
        r = httpx.post(
            f"{bases[0]}/v1/projects/{PROJECT}/webhooks",
            json={"url": receiver.url(), "events": ["annotation.submitted"]},
            headers={"Authorization": f"Bearer {lead}"},
        )
        assert r.status_code == 201, r.text
        acked = asyncio.run(run(bases, tokens, lead))
        engine = make_engine(pg_url)
        try:
            with engine.connect() as conn:
                found = conn.execute(text("SELECT lease_id, task_id, item_id FROM annotations"))
                annotated = [tuple(x) for x in found]
                sent = text("SELECT id FROM events WHERE action = 'annotation.submitted'")
                events = set(conn.execute(sent).scalars())
        finally:
            engine.dispose()
        deadline = time.monotonic() + 15
        while len(receiver.event_ids()) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        receiver.stop()
    assert len(annotated) == N_ITEMS  # every task resolved, by one annotation each
    assert len({t for _, t, _ in annotated}) == N_ITEMS and len({i for _, _, i in annotated}) == N_ITEMS
    assert set(acked) <= {lease for lease, _, _ in annotated}  # nothing acknowledged was lost
    delivered = Counter(receiver.event_ids())
    assert set(delivered) == events and set(delivered.values()) == {1}  # each event exactly once
