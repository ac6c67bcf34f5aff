"""What one annotator cycle (next → submit over HTTP) costs the database, and how long a cached
caller outlives a revocation made elsewhere.

The bound: after the first request of a caller (auth and project lookups cached per process),
a cycle that resolves its task is at most ``MAX_STATEMENTS`` SQL statements in at most
``MAX_TRANSACTIONS`` transactions, with no query for the caller, the membership or the project.
Before issue 15 the same cycle was 30 statements in 8 transactions (auth twice, the project and
the lease's project each in their own transaction); then 22 in 4 (the blind view read the task
and the champion in transactions of its own); then 15 in 2. Now: one transaction per request, the
hot statements as plain SQL on the driver (:mod:`loopwright.store.sql.plain`, the champion's
too), no gold read in a project that serves no gold, no annotation read when the task had one
slot, and on PostgreSQL the annotation and its task's counter in one statement.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from loopwright import Workspace, wire
from loopwright.errors import Conflict, NotFound
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.service.blind import View
from loopwright.service.deps import respond
from loopwright.store.sql import SqlStore
from loopwright.store.sql.plain import PlainSql
from loopwright.store.sql.tables import events, tasks

# BEGIN (SQLite) not counted; next 6 (with the champion's), submit 9 on SQLite and 8 on
# PostgreSQL (the annotation and the task's counter in one statement there)
MAX_STATEMENTS = {"sqlite": 16, "postgresql": 14}  # sqlite: + annotator_stats work (0017)
MAX_TRANSACTIONS = 2  # next, submit: the blind view reads nothing of its own
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
    with TestClient(create_app(ws, authenticator=auth, webhooks=False, job_threads=0)) as client:
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

    def ours() -> bool:  # not the lease sweeper's timer
        return threading.current_thread().name != "lease-sweeper"

    def on_execute(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if not sql.startswith("BEGIN") and ours():
            statements.append(sql)

    def on_begin(conn: Any) -> None:
        if ours():
            transactions.append(1)

    event.listen(store.engine, "before_cursor_execute", on_execute)
    event.listen(store.engine, "begin", on_begin)
    try:
        result = cycle(client, headers)
    finally:
        event.remove(store.engine, "before_cursor_execute", on_execute)
        event.remove(store.engine, "begin", on_begin)
    assert result["resolution"] is None or result["resolution"]["label"] == "pos"  # blind: maybe hidden
    assert len(statements) <= MAX_STATEMENTS[store.engine.dialect.name], "\n".join(statements)
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


def test_plain_sql_round_trips_types_and_maps_errors_like_the_orm(store: SqlStore) -> None:
    """Plain SQL binds and reads datetimes (aware UTC), JSON and booleans as SQLAlchemy does, and
    a driver error surfaces as SQLAlchemy's own (so Conflict/NotFound mapping is unchanged)."""
    loop = Workspace(store).create_project(CONFIG)
    loop.ingest([{"external_id": "a", "payload": {"x": 1.0}}])
    add = PlainSql(
        "INSERT INTO events (project_id, actor, action, subject_type, subject_id, data, at)"
        " VALUES (:p, 'me', 'x', 't', '1', :data, :at) RETURNING id, data, at",
        [events.c.id, events.c.data, events.c.at],
    )
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with store.unit_of_work() as uow:
        row = add.first(uow.events._conn, {"p": loop.project.id, "data": {"k": ["é", 1]}, "at": at})
        assert row is not None and row["data"] == {"k": ["é", 1]} and row["at"] == at
        stored = uow.events.list(loop.project.id)[-1]
        assert stored.data == {"k": ["é", 1]} and stored.at == at  # the ORM reads what plain SQL wrote
        task = PlainSql("SELECT id, created_at FROM tasks LIMIT 1", [tasks.c.id, tasks.c.created_at])
        found = task.first(uow.events._conn, {})
        assert found is not None and found["created_at"].tzinfo is UTC
    with pytest.raises(IntegrityError), store.unit_of_work() as uow:
        add.first(uow.events._conn, {"p": 999_999, "data": {}, "at": at})  # no such project
    with store.unit_of_work() as uow:
        task_row = uow.tasks.for_item(1)[0]
    with pytest.raises(NotFound, match="lease id 424242"), store.unit_of_work() as uow:
        uow.annotations.add(task_row.id, task_row.item_id, 424_242, "ann", "pos", False)


def test_a_second_annotation_by_the_same_annotator_is_a_conflict(
    store: SqlStore, world: tuple[TestClient, SqlAuthenticator, dict[str, str]]
) -> None:
    client, _, headers = world
    r = client.post("/v1/projects/p/tasks/next", headers=headers, json={})
    lease = r.json()["lease"]["id"]
    r = client.post(f"/v1/leases/{lease}/submit", headers=headers, json={"label": "pos"})
    assert r.status_code == 200
    with store.unit_of_work() as uow:
        task = uow.tasks.get(uow.leases.get(lease).task_id)
    with pytest.raises(Conflict, match="already annotated"), store.unit_of_work() as uow:
        uow.annotations.add(task.id, task.item_id, lease, "ann", "neg", False)


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.LEAD])
def test_the_review_routes_send_what_their_response_models_would(store: SqlStore, role: Role) -> None:
    """``respond`` (the hot routes' encoder, no response validation) gives the body FastAPI
    made from the response model: the same keys (nested too, blind keys left out), the same
    values, datetimes with ``Z``."""
    ws = Workspace(store)
    loop = ws.create_project({**CONFIG, "tiers": [{**CONFIG["tiers"][0], "required_annotations": 2}]})
    loop.ingest([{"external_id": "a", "payload": {"x": 1.0}}])
    auth = SqlAuthenticator(store)
    for name in ("ann", "bob"):
        auth.add_user(name)
        auth.add_membership(name, "p", role)
    for name in ("ann", "bob"):
        who = auth.resolve(auth.issue_token(name))
        assert who is not None
        view = View(who, "p")
        assignment = loop.next_task(name, score_now=not view.sees_gold)
        assert assignment is not None
        sent = view.assignment(loop, assignment)
        result = view.submit(ws, loop.submit(assignment.lease.id, name, "pos"))
        assert b'Z"' in respond(wire.Assignment, sent).body  # UTC times as pydantic writes them
        for model, data in ((wire.Assignment, sent), (wire.SubmitResult, result)):
            expected = model.model_validate(data).model_dump(mode="json", exclude_unset=True)
            assert json.loads(respond(model, data).body) == expected
    assert expected["resolution"] is None or expected["resolution"]["label"] == "pos"
    assert (expected["resolution"] is None) is (role is Role.ANNOTATOR)  # blind: no votes shown
