"""Bounded requests and inputs that must answer 4xx, never 500 or a frozen server (issue 12).

A body too large → 413 (with or without Content-Length); oversized free text → 422; numbers,
ids and strings the database cannot hold → 422 naming the field; and readers that keep
answering while a maximum-size ingest is being written.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

import test_loop
from live import live_server
from loopwright import Conflict, Invalid, Workspace
from loopwright.service import SqlAuthenticator, create_app
from loopwright.settings import Settings
from loopwright.store.sql import SqlStore

ingest_module = importlib.import_module("loopwright.loop.ingest")  # the module, not its function
BIG_INGEST = 10_000
READER_BOUND_S = 2.0  # generous: the machine is shared; before the fix readers waited ~50 s


@dataclass
class Served:
    url: str
    ws: Workspace
    tokens: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@contextlib.contextmanager
def serve(store: SqlStore, **app_options: Any) -> Iterator[Served]:
    """Project ``toy`` (no model yet) with an admin ``root`` and a ``service`` member, behind
    a real uvicorn on a free port, authenticating against the same store."""
    ws = Workspace(store)
    ws.create_project(test_loop.CONFIG)
    auth = SqlAuthenticator(store)
    auth.add_user("root", admin=True)
    auth.add_user("service")
    auth.add_membership("service", "toy", "service")
    tokens = {u: auth.issue_token(u) for u in ("root", "service")}
    app = create_app(ws, authenticator=auth, webhooks=False, **app_options)
    with live_server(app) as url:
        yield Served(url, ws, tokens)


def big_batch(n: int, prefix: str = "big") -> dict[str, Any]:
    return {"items": [{"external_id": f"{prefix}{i}", "payload": {"x": i % 97, "y": 1.5}} for i in range(n)]}


def readers_during_ingest(
    s: Served, monkeypatch: pytest.MonkeyPatch, n: int = BIG_INGEST, readers: int = 3
) -> tuple[float, float, int]:
    """(ingest seconds, max ``/v1/me`` latency, reader requests) with readers polling
    ``/v1/me`` back to back for as long as one ``n``-item ingest takes.

    The ingest holds after its first chunk until ``readers`` requests have been answered, so
    the readers are measured while the big request is in flight however fast the machine is;
    a reader that waited for the ingest would leave the writer holding until it gives up."""
    done, answered = threading.Event(), threading.Event()
    result: dict[str, Any] = {}
    real, chunks = ingest_module._ingest_chunk, []

    def holding_chunk(*args: Any, **kwargs: Any) -> Any:
        if len(chunks) == 1 and not answered.wait(timeout=60):
            raise AssertionError(f"{readers} readers were not answered within 60 s of a big ingest")
        chunks.append(1)
        return real(*args, **kwargs)

    def ingest() -> None:
        started = time.monotonic()
        with httpx.Client(timeout=600) as c:
            r = c.post(f"{s.url}/v1/projects/toy/items", json=big_batch(n), headers=s.headers("service"))
        result["status"], result["seconds"] = r.status_code, time.monotonic() - started
        done.set()

    monkeypatch.setattr(ingest_module, "_ingest_chunk", holding_chunk)
    latencies: list[float] = []
    writer = threading.Thread(target=ingest)
    writer.start()
    with httpx.Client(timeout=600) as c:
        while not chunks and not done.is_set():  # the writer's request is in
            time.sleep(0.01)
        while not done.is_set():
            t = time.monotonic()
            r = c.get(f"{s.url}/v1/me", headers=s.headers("root"))
            latencies.append(time.monotonic() - t)
            assert r.status_code == 200, r.text
            if len(latencies) >= readers:
                answered.set()
            time.sleep(0.05)
    writer.join()
    assert result["status"] == 200
    assert len(chunks) > 1  # the batch was written in chunks, with the readers between them
    return result["seconds"], max(latencies), len(latencies)


def test_readers_do_not_wait_for_a_big_ingest(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(store) as s:
        seconds, worst, count = readers_during_ingest(s, monkeypatch)
        print(
            f"{store.engine.dialect.name}: ingest {BIG_INGEST} items {seconds:.1f}s;"
            f" /v1/me max {worst:.3f}s over {count} requests"
        )
        assert _count(s.ws) == BIG_INGEST
    assert count >= 3
    assert worst < READER_BOUND_S


# -- defect 5: big batches are written in chunks --------------------------------------------


def test_a_crash_mid_batch_leaves_whole_chunks_and_a_retry_completes(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(store)
    loop = ws.create_project(test_loop.CONFIG)
    records = big_batch(2 * ingest_module.CHUNK + 7)["items"]
    real, calls = ingest_module._ingest_chunk, []

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_ingest_chunk", crashing)
    with pytest.raises(RuntimeError, match="power cut"):
        loop.ingest(records)
    assert _count(ws) == ingest_module.CHUNK  # the first chunk, whole; nothing of the second
    monkeypatch.setattr(ingest_module, "_ingest_chunk", real)
    report = loop.ingest(records)
    assert (report.duplicates, report.created) == (ingest_module.CHUNK, ingest_module.CHUNK + 7)
    assert _count(ws) == len(records)
    assert [o.external_id for o in report.outcomes] == [r["external_id"] for r in records]


def test_a_bad_record_or_a_changed_item_in_the_last_chunk_writes_nothing(store: SqlStore) -> None:
    ws = Workspace(store)
    loop = ws.create_project(test_loop.CONFIG)
    loop.ingest([{"external_id": "old", "payload": {"x": 1.0, "y": 2.0}}])
    records = big_batch(2 * ingest_module.CHUNK)["items"]
    with pytest.raises(Invalid):
        loop.ingest([*records, {"external_id": "bad", "payload": {"x": "one", "y": 2.0}}])
    with pytest.raises(Conflict):
        loop.ingest([*records, {"external_id": "old", "payload": {"x": 9.0, "y": 2.0}}])
    assert _count(ws) == 1


def _count(ws: Workspace) -> int:
    project_id = ws.project("toy").project.id
    with ws.store.unit_of_work() as uow:
        return uow.items.count(project_id)


# -- defect 6: bounded bodies and fields ----------------------------------------------------

SMALL_CAP = 4096


def test_a_body_over_the_cap_gets_413_with_or_without_content_length(store: SqlStore) -> None:
    body = json.dumps(big_batch(200)).encode()
    assert len(body) > SMALL_CAP
    with serve(store, max_body_bytes=SMALL_CAP) as s, httpx.Client(timeout=30) as c:
        url, headers = (
            f"{s.url}/v1/projects/toy/items",
            {**s.headers("service"), "content-type": "application/json"},
        )
        declared = c.post(url, content=body, headers=headers)
        assert declared.status_code == 413
        assert declared.json() == {
            "code": "too_large",
            "message": f"the request body exceeds the limit of {SMALL_CAP} bytes",
        }

        def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        streamed = c.post(url, content=chunks(), headers=headers)
        assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"
        small = c.post(url, json=big_batch(3), headers=s.headers("service"))
        assert small.status_code == 200, small.text
        assert c.get(f"{s.url}/v1/me", headers=s.headers("root")).status_code == 200
        assert _count(s.ws) == 3


def test_the_cap_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().max_body_bytes == 32 * 1024 * 1024
    monkeypatch.setenv("LOOPWRIGHT_MAX_BODY_BYTES", "1000")
    assert Settings.from_env().max_body_bytes == 1000
    monkeypatch.setenv("LOOPWRIGHT_MAX_BODY_BYTES", "lots")
    with pytest.raises(ValueError, match="LOOPWRIGHT_MAX_BODY_BYTES"):
        Settings.from_env()


@pytest.fixture
def api(store: SqlStore) -> Iterator[tuple[TestClient, Workspace, dict[str, str]]]:
    """Project ``toy`` with one item, an open lease on it, and the admin's headers."""
    ws = Workspace(store)
    ws.create_project(test_loop.CONFIG).ingest([{"external_id": "a", "payload": {"x": 1.0, "y": 2.0}}])
    auth = SqlAuthenticator(store)
    auth.add_user("root", admin=True)
    headers = {"Authorization": f"Bearer {auth.issue_token('root')}"}
    with TestClient(create_app(ws, authenticator=auth, webhooks=False)) as c:
        yield c, ws, headers


def fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid"
    return [e["field"] for e in body["errors"]]


def test_oversized_free_text_is_422(api: tuple[TestClient, Workspace, dict[str, str]]) -> None:
    c, ws, h = api
    lease = c.post("/v1/projects/toy/tasks/next", headers=h).json()["lease"]["id"]
    huge = "x" * 5_000_000
    feedback = {"prediction_id": 1, "kind": "wrong", "idempotency_key": "k1", "comment": huge}
    assert fields(c.post("/v1/projects/toy/feedback", json=feedback, headers=h)) == ["body.comment"]
    too_long = {"prediction_id": 1, "kind": "k" * 201, "idempotency_key": "i" * 201, "correction": "c" * 201}
    assert sorted(fields(c.post("/v1/projects/toy/feedback", json=too_long, headers=h))) == [
        "body.correction",
        "body.idempotency_key",
        "body.kind",
    ]
    submit = {"label": "a", "comment": huge}
    assert fields(c.post(f"/v1/leases/{lease}/submit", json=submit, headers=h)) == ["body.comment"]
    assert fields(c.post(f"/v1/leases/{lease}/submit", json={"label": "a" * 201}, headers=h)) == [
        "body.label"
    ]
    item = {"external_id": "e" * 513, "payload": {"x": 1.0, "y": 2.0}, "metadata": {"note": "m" * 70_000}}
    found = fields(c.post("/v1/projects/toy/items", json={"items": [item]}, headers=h))
    assert found == ["body.items.0.external_id", "body.items.0.metadata"]
    config = {**test_loop.CONFIG, "name": "long", "guidelines": "g" * 50_001, "labels": ["a", "b" * 201]}
    assert fields(c.post("/v1/projects", json=config, headers=h)) == ["guidelines", "labels.1"]
    assert [p["name"] for p in c.get("/v1/projects", headers=h).json()["projects"]] == ["toy"]
    project_id = ws.project("toy").project.id
    with ws.store.unit_of_work() as uow:
        assert uow.items.count(project_id) == 1
        assert uow.feedback.by_key(project_id, "k1") is None


# -- defect 7: inputs that answered 500 -----------------------------------------------------


def test_a_4000_digit_integer_is_422_on_ingest_and_predict(
    api: tuple[TestClient, Workspace, dict[str, str]],
) -> None:
    c, ws, h = api
    huge = 10**3999
    item = {"external_id": "huge", "payload": {"x": huge, "y": 1.0}}
    r = c.post("/v1/projects/toy/items", json={"items": [item]}, headers=h)
    assert fields(r) == ["[0].payload"] and "['x'] are not numbers" in r.json()["errors"][0]["message"]
    assert fields(
        c.post("/v1/projects/toy/predict", json={"payloads": [{"x": 1.0, "y": huge}]}, headers=h)
    ) == ["[0]"]
    assert _count(ws) == 1


def test_nul_characters_are_422_naming_the_field(api: tuple[TestClient, Workspace, dict[str, str]]) -> None:
    c, ws, h = api
    item = {
        "external_id": "a\x00b",
        "payload": {"x": 1.0, "y": 2.0},
        "metadata": {"k\x00": "v", "ok": ["\x00"]},
    }
    r = c.post("/v1/projects/toy/items", json={"items": [item]}, headers=h)
    assert sorted(fields(r)) == [
        "body.items.0.external_id",
        "body.items.0.metadata.k",
        "body.items.0.metadata.ok.0",
    ]
    assert r.json()["errors"][0]["message"] == "must not contain NUL characters (U+0000)"
    assert fields(c.get("/v1/projects/to%00y", headers=h)) == ["path"]
    assert fields(c.get("/v1/projects/toy/session?session_id=a%00", headers=h)) == ["query.session_id"]
    config = {**test_loop.CONFIG, "name": "other", "guidelines": "read\x00me"}
    assert fields(c.post("/v1/projects", json=config, headers=h)) == ["body.guidelines"]
    escaped = {"external_id": "back\\u0000slash", "payload": {"x": 1.0, "y": 2.0}}  # a backslash, no NUL
    assert c.post("/v1/projects/toy/items", json={"items": [escaped]}, headers=h).status_code == 200
    assert _count(ws) == 2


def test_ids_beyond_64_bits_and_boolean_seconds_are_422(
    api: tuple[TestClient, Workspace, dict[str, str]],
) -> None:
    c, _, h = api
    hook = c.post("/v1/projects/toy/webhooks", json={"url": "https://example.com/hook"}, headers=h)
    assert hook.status_code in (200, 201), hook.text
    deliveries = f"/v1/projects/toy/webhooks/{hook.json()['id']}/deliveries"
    assert fields(c.get(deliveries, params={"before": 2**63}, headers=h)) == ["query.before"]
    assert fields(c.get(deliveries, params={"before": 2**31}, headers=h)) == ["query.before"]
    assert c.get(deliveries, params={"before": 2**31 - 1}, headers=h).status_code == 200
    assert fields(c.get(f"/v1/projects/toy/events?after={2**64}", headers=h)) == ["query.after"]
    assert fields(c.post(f"/v1/leases/{2**31}/release", headers=h)) == ["path.lease_id"]
    lease = c.post("/v1/projects/toy/tasks/next", headers=h).json()["lease"]
    assert fields(c.post(f"/v1/leases/{lease['id']}/extend", json={"seconds": True}, headers=h)) == [
        "body.seconds"
    ]
    assert fields(c.post("/v1/projects/toy/tasks/next", json={"tiers": [2**63]}, headers=h)) == [
        "body.tiers.0"
    ]
    feedback = {"prediction_id": True, "kind": "wrong", "idempotency_key": "k"}
    assert fields(c.post("/v1/projects/toy/feedback", json=feedback, headers=h)) == ["body.prediction_id"]
    extended = c.post(f"/v1/leases/{lease['id']}/extend", json={"seconds": 60}, headers=h)
    assert extended.status_code == 200, extended.text


def test_safe_methods_do_not_write(tmp_path: Path) -> None:
    """GET and HEAD run in read mode (SQLite: a snapshot that never waits for a writer), so no
    GET route may write; only the best-effort note of when a token was last used may."""
    import test_auth_matrix as matrix
    from service_world import build_world

    w = build_world(f"sqlite:///{tmp_path / 'world.db'}")
    writes: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(" ", 1)[0].upper()
        if verb in {"INSERT", "UPDATE", "DELETE", "REPLACE"} and "api_tokens" not in statement:
            writes.append(statement[:80])

    c = TestClient(create_app(w.ws, authenticator=w.auth, webhooks=False))
    s = w.projects["toy"]
    assert isinstance(w.ws.store, SqlStore)
    engine = w.ws.store.engine
    gets = [(t, row) for (m, t), row in matrix.MATRIX.items() if m == "GET"]
    assert len(gets) > 20
    paths = []  # made first: a row's fixture may write (e.g. enqueue the job it reads)
    for template, row in gets:
        values = {"name": s.name, **row.params}
        path = template.format(**{k: v(w, s) if callable(v) else v for k, v in values.items()})
        paths.append((template, path, row))
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        for template, path, row in paths:
            r = c.get(path, params=row.query, headers=w.headers("root"))
            assert r.status_code == 200, (path, r.text)
            assert writes == [], (template, writes)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        w.ws.close()
