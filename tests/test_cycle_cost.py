"""What one annotator cycle (next → submit over HTTP) costs the database, and how long a cached
caller outlives a revocation made elsewhere.

The bound: after the first request of a caller (auth and project lookups cached per process),
a cycle that resolves its task is at most ``MAX_STATEMENTS`` SQL statements in at most
``MAX_TRANSACTIONS`` transactions, with no query for the caller, the membership or the project.
Before issue 15 the same cycle was 30 statements in 8 transactions (auth twice, the project and
the lease's project each in their own transaction).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from loopwright import Workspace
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

MAX_STATEMENTS = 22  # BEGIN (SQLite) not counted
MAX_TRANSACTIONS = 4  # next, its blind view, submit, its blind view
CONFIG: dict[str, Any] = {
    "name": "p",
    "labels": ["pos", "neg"],
    "features": ["x"],
    "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1, "lease_seconds": 300}],
}


@pytest.fixture
def world(store: SqlStore) -> Iterator[tuple[TestClient, SqlAuthenticator, dict[str, str]]]:
    ws = Workspace(store)
    ws.create_project(CONFIG).ingest(
        [{"external_id": f"i{i}", "payload": {"x": float(i)}} for i in range(20)]
    )
    auth = SqlAuthenticator(store)
    auth.add_user("ann")
    auth.add_membership("ann", "p", Role.ANNOTATOR)
    headers = {"Authorization": f"Bearer {auth.issue_token('ann')}"}
    with TestClient(create_app(ws, authenticator=auth, webhooks=False)) as client:
        yield client, auth, headers


def cycle(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.post("/v1/projects/p/tasks/next", headers=headers, json={})
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/leases/{r.json()['lease']['id']}/submit", headers=headers, json={"label": "pos"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_one_cycle_is_a_bounded_number_of_statements_and_transactions(
    store: SqlStore, world: tuple[TestClient, SqlAuthenticator, dict[str, str]]
) -> None:
    client, _, headers = world
    cycle(client, headers)  # the first request of this caller fills the caches
    statements: list[str] = []
    transactions: list[int] = []

    def on_execute(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if not sql.startswith("BEGIN"):
            statements.append(sql)

    event.listen(store.engine, "before_cursor_execute", on_execute)
    event.listen(store.engine, "begin", lambda conn: transactions.append(1))
    try:
        result = cycle(client, headers)
    finally:
        event.remove(store.engine, "before_cursor_execute", on_execute)
    assert result["resolution"] is None or result["resolution"]["label"] == "pos"  # blind: maybe hidden
    assert len(statements) <= MAX_STATEMENTS, "\n".join(statements)
    assert len(transactions) <= MAX_TRANSACTIONS
    touched = " ".join(statements)
    assert "api_tokens" not in touched and "memberships" not in touched  # the caller: cached
    assert "FROM projects" not in touched  # the project row: cached (it never changes)


def test_a_revocation_made_elsewhere_bites_within_the_cache_time(store: SqlStore) -> None:
    server = SqlAuthenticator(store, cache_seconds=0.5)
    cli = SqlAuthenticator(store, cache_seconds=0)  # another process: the CLI, another server
    cli.add_user("ann")
    token = cli.issue_token("ann")
    assert server.resolve(token) is not None
    assert cli.revoke_token(token)
    assert server.resolve(token) is not None  # still cached here
    time.sleep(0.6)
    assert server.resolve(token) is None  # the cache time is the bound
    other = cli.issue_token("ann")
    assert server.resolve(other) is not None  # a new token works at once (misses are not cached)
    assert server.revoke_token(other) and server.resolve(other) is None  # here: at once
