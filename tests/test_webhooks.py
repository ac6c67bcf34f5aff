"""Signed webhooks against a real HTTP receiver on 127.0.0.1, on SQLite and PostgreSQL.

The dispatcher runs round by round (``run_once``) on a manual clock, so backoff is exact and
nothing sleeps; one test runs it in the app's background thread to show a request never waits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from loopwright import Workspace
from loopwright.service import Role, TokenAuthenticator, create_app
from loopwright.service.webhooks import (
    Dispatcher,
    Webhooks,
    WebhookVerificationError,
    new_secret,
    sign,
    verify,
)
from loopwright.store.sql import SqlStore
from loopwright.store.sql.repositories import SqlEventRepo
from people import bearer, members

CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b"],
    "features": ["x", "y"],
    "routing": {"audit_rate": 0.0},
}
USERS = {  # name -> (admin, role in "toy")
    "root": (True, None),
    "lead": (False, Role.LEAD),
    "svc": (False, Role.SERVICE),
    "ann": (False, Role.ANNOTATOR),
    "exp": (False, Role.EXPERT),
    "view": (False, Role.VIEWER),
    "stranger": (False, None),
}
SCHEDULE = (5.0, 30.0, 120.0)  # four attempts, then dead
LOOPBACK = ("127.0.0.1",)  # the receivers listen here: allowed explicitly, as an operator would


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class Receiver:
    """An HTTP server that records every POST; answers ``status`` after ``delays`` (per request)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.delays: list[float] = []  # seconds to hang on the next requests, one per request
        self.arrived = threading.Event()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.set()
                if receiver.delays:
                    time.sleep(receiver.delays.pop(0))
                self.send_response(receiver.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def event_ids(self, path: str | None = None) -> list[int]:
        return [json.loads(b)["data"]["event_id"] for p, _, b in self.requests if path in (None, p)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    if r._server is not None:
        r.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ws(store: SqlStore, clock: ManualClock) -> Workspace:
    workspace = Workspace(store, clock)
    workspace.create_project(CONFIG)
    workspace.create_project({**CONFIG, "name": "secret"})
    return workspace


@pytest.fixture
def auth() -> tuple[TokenAuthenticator, dict[str, dict[str, str]]]:
    admins = tuple(name for name, (admin, _) in USERS.items() if admin)
    authenticator, tokens = members("toy", {n: role for n, (_, role) in USERS.items()}, admins)
    return authenticator, bearer(tokens)


@pytest.fixture
def h(auth: tuple[TokenAuthenticator, dict[str, dict[str, str]]]) -> dict[str, dict[str, str]]:
    return auth[1]


@pytest.fixture
def client(ws: Workspace, auth: tuple[TokenAuthenticator, dict[str, dict[str, str]]]) -> TestClient:
    # not entered as a context manager: no lifespan, so no background dispatcher here
    app = create_app(ws, authenticator=auth[0], webhook_allow=LOOPBACK)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def dispatcher(store: SqlStore, clock: ManualClock) -> Iterator[Dispatcher]:
    d = Dispatcher(store, clock, schedule=SCHEDULE, jitter=0.0, timeout=2.0, min_gap_age=0.2, allow=LOOPBACK)
    yield d
    d.stop()


def subscribe(
    client: TestClient, h: dict[str, dict[str, str]], url: str, events: list[str] | None = None
) -> Any:
    r = client.post("/v1/projects/toy/webhooks", json={"url": url, "events": events or []}, headers=h["lead"])
    assert r.status_code == 201, r.text
    return r.json()


def ingest(client: TestClient, h: dict[str, dict[str, str]], *ids: str) -> None:
    items = [{"external_id": i, "payload": {"x": 1.0, "y": 2.0}} for i in ids]
    r = client.post("/v1/projects/toy/items", json={"items": items}, headers=h["svc"])
    assert r.status_code == 200, r.text


def project_events(ws: Workspace, after: int, prefix: str = "") -> list[int]:
    return [e.id for e in ws.project("toy").events(after, 1000) if e.action.startswith(prefix)]


# --- signing -------------------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"type":"x"}'
    stamp = int(time.time())
    signature = sign(secret, "evt_1", stamp, body)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    by_hand = base64.b64encode(hmac.new(key, f"evt_1.{stamp}.".encode() + body, hashlib.sha256).digest())
    assert signature == "v1," + by_hand.decode()
    headers = {"Webhook-Id": "evt_1", "Webhook-Timestamp": str(stamp), "Webhook-Signature": signature}
    assert verify(secret, headers, body) == {"type": "x"}
    assert verify(secret.removeprefix("whsec_"), headers, body.decode()) == {"type": "x"}
    assert verify(secret, {**headers, "webhook-signature": "v1,bm9wZQ== " + signature}, body)
    bad = [
        ({**headers, "Webhook-Signature": sign(new_secret(), "evt_1", stamp, body)}, body),  # other key
        (headers, b'{"type":"y"}'),  # tampered body
        ({**headers, "Webhook-Id": "evt_2"}, body),  # another message's signature
        ({k: v for k, v in headers.items() if k != "Webhook-Id"}, body),
        ({**headers, "Webhook-Timestamp": "soon"}, body),
    ]
    for hdrs, b in bad:
        with pytest.raises(WebhookVerificationError):
            verify(secret, hdrs, b)
    with pytest.raises(WebhookVerificationError, match="away from now"):
        verify(secret, headers, body, now=stamp + 301)
    assert verify(secret, headers, body, now=stamp + 299)


# --- delivery ------------------------------------------------------------------------------------


def test_events_arrive_signed_and_in_order(
    client: TestClient,
    h: dict[str, dict[str, str]],
    ws: Workspace,
    dispatcher: Dispatcher,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    sub = subscribe(client, h, receiver.url())
    ingest(client, h, "p0", "p1")
    lease = client.post("/v1/projects/toy/tasks/next", headers=h["ann"]).json()["lease"]["id"]
    r = client.post(f"/v1/leases/{lease}/submit", json={"label": "a"}, headers=h["ann"])
    assert r.status_code == 200, r.text
    report = dispatcher.run_once(clock.now)
    expected = project_events(ws, sub["last_event_id"])
    assert report.queued == report.delivered == len(expected) >= 3 and report.failed == 0
    assert receiver.event_ids() == expected
    types = []
    for _, headers, body in receiver.requests:
        doc = verify(sub["secret"], headers, body)
        assert headers["webhook-id"] == f"evt_{doc['data']['event_id']}"
        assert headers["content-type"] == "application/json"
        assert doc["data"]["project"] == "toy" and doc["type"] == doc["data"]["action"]
        types.append(doc["type"])
    assert types[:3] == ["items.ingested", "task.claimed", "annotation.submitted"]
    ingested = json.loads(receiver.requests[0][2])["data"]
    assert ingested["actor"] == "svc" and ingested["payload"]["created"] == 2
    _, headers, body = receiver.requests[0]  # the reference implementation agrees
    assert Webhook(sub["secret"]).verify(body, headers)["type"] == "items.ingested"
    assert dispatcher.run_once(clock.now).attempted == 0  # nothing twice


def test_receiver_down_gets_every_event_once_back(
    client: TestClient,
    h: dict[str, dict[str, str]],
    ws: Workspace,
    dispatcher: Dispatcher,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    sub = subscribe(client, h, receiver.url(), ["items."])
    base = f"/v1/projects/toy/webhooks/{sub['id']}/deliveries"
    receiver.stop()  # down: connection refused
    ingest(client, h, "p0")
    t0 = clock.now
    report = dispatcher.run_once(t0)
    assert (report.queued, report.attempted, report.failed) == (1, 1, 1)
    ingest(client, h, "p1")
    ingest(client, h, "p2")
    # the oldest delivery holds the newer ones back: one request per round, on the schedule
    assert dispatcher.run_once(clock.advance(4.9)).attempted == 0
    assert dispatcher.run_once(clock.advance(0.1)).attempted == 1  # t0 + 5 s
    assert dispatcher.run_once(clock.advance(29)).attempted == 0
    rows = client.get(base, headers=h["lead"]).json()["deliveries"]
    head = min(rows, key=lambda d: d["event_id"])
    assert head["attempts"] == 2 and head["last_status_code"] is None
    assert head["last_error"] == "connection refused"
    assert datetime.fromisoformat(head["next_attempt_at"]) == t0 + timedelta(seconds=35)
    assert sorted(d["attempts"] for d in rows) == [0, 0, 2]
    receiver.start()  # back, on the same port: answers 503 once, then 200
    receiver.status = 503
    assert dispatcher.run_once(clock.advance(1)).failed == 1  # t0 + 35 s
    receiver.status = 200
    assert dispatcher.run_once(clock.advance(119)).attempted == 0
    ingest(client, h, "p3")
    report = dispatcher.run_once(clock.advance(1))  # t0 + 155 s
    assert (report.queued, report.delivered, report.failed) == (1, 4, 0)
    expected = project_events(ws, sub["last_event_id"], "items.")
    assert len(expected) == 4
    # every event, in order; the first one twice (the 503), under the same webhook-id and body
    assert receiver.event_ids() == [expected[0], *expected]
    (_, first, body1), (_, second, body2) = receiver.requests[:2]
    assert first["webhook-id"] == second["webhook-id"] == f"evt_{expected[0]}" and body1 == body2
    for _, headers, body in receiver.requests:
        verify(sub["secret"], headers, body)
    rows = client.get(base, headers=h["lead"]).json()["deliveries"]
    assert [d["status"] for d in rows] == ["delivered"] * 4
    assert sorted(d["attempts"] for d in rows) == [1, 1, 1, 4]
    assert dispatcher.run_once(clock.advance(3600)).attempted == 0


def test_dead_letter_listed_and_retried(
    client: TestClient,
    h: dict[str, dict[str, str]],
    dispatcher: Dispatcher,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    sub = subscribe(client, h, receiver.url(), ["items."])
    base = f"/v1/projects/toy/webhooks/{sub['id']}/deliveries"
    receiver.status = 503
    ingest(client, h, "p0")
    ingest(client, h, "p1")
    for wait in (0, *SCHEDULE):  # four attempts on the first event, then it is dead
        assert dispatcher.run_once(clock.advance(wait)).attempted == 1
    dead = client.get(f"{base}?status=dead", headers=h["lead"]).json()["deliveries"]
    assert len(dead) == 1 and dead[0]["attempts"] == 4 and dead[0]["last_status_code"] == 503
    assert dead[0]["last_error"] == "HTTP 503" and dead[0]["next_attempt_at"] is None
    assert dead[0]["action"] == "items.ingested"
    pending = client.get(f"{base}?status=pending", headers=h["lead"]).json()["deliveries"]
    assert len(pending) == 1 and pending[0]["attempts"] == 0  # next in line, not tried yet
    assert client.get(f"{base}?status=lost", headers=h["lead"]).status_code == 422
    receiver.status = 200
    assert dispatcher.run_once(clock.now).delivered == 1  # the second goes out now
    r = client.post(f"{base}/{dead[0]['id']}/retry", headers=h["lead"])
    assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["attempts"] == 0
    assert client.post(f"{base}/{dead[0]['id']}/retry", headers=h["lead"]).status_code == 409
    assert dispatcher.run_once(clock.now).delivered == 1
    done = client.get(f"{base}?status=delivered", headers=h["lead"]).json()["deliveries"]
    assert {d["id"] for d in done} == {dead[0]["id"], pending[0]["id"]}
    assert client.post(f"{base}/{dead[0]['id']}/retry", headers=h["lead"]).status_code == 409
    assert client.post(f"{base}/999999/retry", headers=h["lead"]).status_code == 404
    assert receiver.event_ids() == [dead[0]["event_id"]] * 4 + [pending[0]["event_id"], dead[0]["event_id"]]
    page = client.get(f"{base}?limit=1", headers=h["lead"]).json()
    older = client.get(f"{base}?limit=1&before={page['next_before']}", headers=h["lead"]).json()
    assert [d["id"] for d in page["deliveries"] + older["deliveries"]] == [pending[0]["id"], dead[0]["id"]]


def test_event_filter(
    client: TestClient,
    h: dict[str, dict[str, str]],
    ws: Workspace,
    dispatcher: Dispatcher,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    everything = subscribe(client, h, receiver.url("/all"))
    subscribe(client, h, receiver.url("/review"), ["annotation.", "task.claimed"])
    subscribe(client, h, receiver.url("/items"), ["items.ingested"])
    ingest(client, h, "p0")
    lease = client.post("/v1/projects/toy/tasks/next", headers=h["ann"]).json()["lease"]["id"]
    client.post(f"/v1/leases/{lease}/submit", json={"label": "a"}, headers=h["ann"])
    dispatcher.run_once(clock.now)
    actions = {e.id: e.action for e in ws.project("toy").events(0, 1000)}
    got = {path: [actions[i] for i in receiver.event_ids(path)] for path in ("/all", "/review", "/items")}
    assert got["/review"] == ["task.claimed", "annotation.submitted"]
    assert got["/items"] == ["items.ingested"]
    # the later subscriptions' creation events go to the first; its own does not
    assert got["/all"][:4] == ["webhook.created", "webhook.created", "items.ingested", "task.claimed"]
    assert min(receiver.event_ids("/all")) > everything["last_event_id"]


def test_a_hanging_receiver_never_blocks_a_request(
    ws: Workspace,
    auth: tuple[TokenAuthenticator, dict[str, dict[str, str]]],
    h: dict[str, dict[str, str]],
    receiver: Receiver,
) -> None:
    receiver.delays = [3.0]  # the first request hangs for 3 s
    with TestClient(create_app(ws, authenticator=auth[0], webhook_allow=LOOPBACK)) as client:
        dispatcher = client.app.state.dispatcher  # type: ignore[attr-defined]
        assert dispatcher is not None and dispatcher.poll <= 0.5
        subscribe(client, h, receiver.url(), ["items."])
        ingest(client, h, "p0")
        assert receiver.arrived.wait(5), "the background dispatcher sent nothing"
        started = time.monotonic()
        ingest(client, h, "p1")  # while the dispatcher waits on the receiver
        assert client.get("/v1/projects/toy", headers=h["view"]).status_code == 200
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(receiver.event_ids()) == 2
    assert client.app.state.dispatcher._thread is None  # type: ignore[attr-defined]  # stopped
    with TestClient(create_app(ws, authenticator=auth[0], webhooks=False)) as client:
        assert client.app.state.dispatcher is None  # type: ignore[attr-defined]


def test_several_dispatchers_send_each_event_once(
    store: SqlStore,
    client: TestClient,
    h: dict[str, dict[str, str]],
    ws: Workspace,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    subs = [subscribe(client, h, receiver.url(f"/{i}"), ["items."]) for i in range(3)]
    for i in range(6):
        ingest(client, h, f"p{i}")
    dispatchers = [Dispatcher(store, clock, jitter=0.0, batch=2, allow=LOOPBACK) for _ in range(3)]
    errors: list[BaseException] = []

    def work(d: Dispatcher) -> None:
        try:
            for _ in range(20):
                d.run_once(clock.now)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for d in dispatchers:
        d.stop()
    assert not errors
    expected = project_events(ws, subs[0]["last_event_id"], "items.")
    assert len(expected) == 6
    for i in range(3):
        assert receiver.event_ids(f"/{i}") == expected


# SQLite commits one writer at a time, so its ids become visible in order: PostgreSQL only
@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_uncommitted_event_ids_are_waited_for(
    store: SqlStore,
    client: TestClient,
    h: dict[str, dict[str, str]],
    ws: Workspace,
    dispatcher: Dispatcher,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    """PostgreSQL hands out ids before commit: a later event can be visible before an earlier one."""
    subscribe(client, h, receiver.url())
    toy = ws.project("toy").project.id
    with store.engine.connect() as slow:
        tx = slow.begin()
        early = SqlEventRepo(slow).add(toy, "slow", "slow.one", "project", "toy")
        ingest(client, h, "p0")  # a later id, committed first
        assert dispatcher.run_once(clock.now).attempted == 0
        time.sleep(0.3)
        assert dispatcher.run_once(clock.now).attempted == 0  # still running: still waited for
        tx.commit()
    dispatcher.run_once(clock.now)
    ids = receiver.event_ids()
    assert ids[0] == early.id and ids == sorted(ids) and len(ids) == 2
    with store.engine.connect() as aborted:  # a rolled-back id never comes: skipped once final
        tx = aborted.begin()
        SqlEventRepo(aborted).add(toy, "slow", "slow.two", "project", "toy")
        tx.rollback()
    ingest(client, h, "p1")
    assert dispatcher.run_once(clock.now).attempted == 0
    deadline = time.monotonic() + 10  # other transactions on the server may be waited for too
    while dispatcher.run_once(clock.now).delivered == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [json.loads(b)["type"] for _, _, b in receiver.requests] == [
        "slow.one",
        "items.ingested",
        "items.ingested",
    ]


# --- the API --------------------------------------------------------------------------------------


def test_webhook_routes_need_manage_rights(
    client: TestClient, h: dict[str, dict[str, str]], ws: Workspace, receiver: Receiver
) -> None:
    url = receiver.url()
    base = "/v1/projects/toy/webhooks"
    for user, status in [("view", 403), ("ann", 403), ("exp", 403), ("svc", 403), ("stranger", 404)]:
        assert client.post(base, json={"url": url}, headers=h[user]).status_code == status, user
        assert client.get(base, headers=h[user]).status_code == status, user
        assert client.get(f"{base}/1/deliveries", headers=h[user]).status_code == status, user
        assert client.delete(f"{base}/1", headers=h[user]).status_code == status, user
        assert client.post(f"{base}/1/deliveries/1/retry", headers=h[user]).status_code == status, user
    assert client.get(base).status_code == 401
    for bad in ["ftp://example.org/x", "not a url", "http://", "javascript:alert(1)", ""]:
        r = client.post(base, json={"url": bad}, headers=h["lead"])
        assert r.status_code == 422 and r.json()["code"] == "invalid", bad
    r = client.post(base, json={"url": url, "events": [""]}, headers=h["lead"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "events"
    assert client.post(base, json={"url": url, "secret": "x"}, headers=h["lead"]).status_code == 422
    created = subscribe(client, h, url, ["items."])
    assert created["secret"].startswith("whsec_") and created["created_by"] == "lead"
    other = client.post("/v1/projects/secret/webhooks", json={"url": url}, headers=h["root"])
    assert other.status_code == 201
    listed = client.get(base, headers=h["root"]).json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert created["secret"] not in client.get(base, headers=h["lead"]).text
    assert client.get(f"{base}/{other.json()['id']}/deliveries", headers=h["lead"]).status_code == 404
    assert client.delete(f"{base}/{other.json()['id']}", headers=h["root"]).status_code == 404
    assert client.get("/v1/projects/nope/webhooks", headers=h["root"]).status_code == 404
    events = client.get("/v1/projects/toy/events", headers=h["view"]).json()["events"]
    logged = [e for e in events if e["action"] == "webhook.created"]
    assert logged[0]["actor"] == "lead" and logged[0]["data"] == {"host": "127.0.0.1", "events": ["items."]}
    assert client.delete(f"{base}/{created['id']}", headers=h["lead"]).status_code == 204
    assert client.get(base, headers=h["lead"]).json() == {"webhooks": []}
    assert client.delete(f"{base}/{created['id']}", headers=h["lead"]).status_code == 404
    assert client.get(f"{base}/{created['id']}/deliveries", headers=h["lead"]).status_code == 404
    assert "/v1/projects/{name}/webhooks" in client.get("/openapi.json").json()["paths"]


def test_a_deleted_subscription_gets_nothing(
    client: TestClient,
    h: dict[str, dict[str, str]],
    dispatcher: Dispatcher,
    receiver: Receiver,
    store: SqlStore,
    clock: ManualClock,
) -> None:
    sub = subscribe(client, h, receiver.url())
    ingest(client, h, "p0")
    Webhooks(store).unsubscribe(client.app.state.workspace.project("toy").project, sub["id"], "lead")  # type: ignore[attr-defined]
    assert dispatcher.run_once(clock.now).attempted == 0 and receiver.requests == []


def test_cli(tmp_path: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from loopwright.cli.app import app

    monkeypatch.setenv("LOOPWRIGHT_WEBHOOK_ALLOW", "127.0.0.1")
    db = f"sqlite:///{tmp_path / 'w.db'}"
    ws = Workspace(SqlStore(db))
    ws.create_project(CONFIG)
    runner = CliRunner()
    added = runner.invoke(app, ["webhooks", "add", receiver.url(), "--events", "items.", "--db", db])
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    listed = runner.invoke(app, ["webhooks", "list", "--db", db, "--json"])
    (row,) = json.loads(listed.stdout)
    assert row["events"] == ["items."] and row["url"] == receiver.url() and secret not in listed.stdout
    receiver.status = 503
    ws.project("toy").ingest([{"external_id": "p0", "payload": {"x": 1.0, "y": 2.0}}])
    clock = ManualClock()
    dispatcher = Dispatcher(ws.store, clock, schedule=(), jitter=0.0, allow=LOOPBACK)  # one try: dead
    assert dispatcher.run_once(clock.now).dead == 1
    dispatcher.stop()
    shown = runner.invoke(
        app, ["webhooks", "deliveries", str(row["id"]), "--status", "dead", "--db", db, "--json"]
    )
    (dead,) = json.loads(shown.stdout)
    assert dead["status"] == "dead" and dead["last_status_code"] == 503
    retried = runner.invoke(app, ["webhooks", "retry", str(row["id"]), str(dead["id"]), "--db", db])
    assert retried.exit_code == 0 and "pending" in retried.stdout
    assert runner.invoke(app, ["webhooks", "remove", str(row["id"]), "--db", db]).exit_code == 0
    assert json.loads(runner.invoke(app, ["webhooks", "list", "--db", db, "--json"]).stdout) == []
    ws.close()
