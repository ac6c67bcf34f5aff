"""Webhooks cannot reach the server's own network, leak a receiver's answer, or stall each other.

Real HTTP receivers on 127.0.0.1 (allowed explicitly where a test needs to reach them, as an
operator would with ``LOOPWRIGHT_WEBHOOK_ALLOW``); names other than ``localhost`` resolve
through a resolver the test passes to the dispatcher, so no test needs DNS.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwright import Workspace
from loopwright.errors import Invalid
from loopwright.service import create_app
from loopwright.service.egress import resolve
from loopwright.service.webhooks import Delivery, Dispatcher, Webhooks
from loopwright.store.sql import SqlStore
from loopwright.store.sql.webhooks import SqlWebhookRepo

CONFIG: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b"],
    "features": ["x", "y"],
    "routing": {"audit_rate": 0.0},
}
LOOPBACK = ("127.0.0.1",)
SECRET = "TOP-SECRET-7f3a9c"  # what a receiver answers; must never show up in a delivery


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and answers with ``respond(handler)``."""

    def __init__(self, respond: Callable[[BaseHTTPRequestHandler], None] | None = None) -> None:
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.closed_at: float | None = None  # when a dripping answer found the client gone
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((time.monotonic(), headers, body))
                (respond or ok)(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def ok(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(204)
    handler.end_headers()


def failing_with_secret(handler: BaseHTTPRequestHandler) -> None:
    body = f"internal error: {SECRET}".encode()
    handler.send_response(500)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def garbage_with_secret(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(f"{SECRET} \x00 not http\r\n\r\n".encode())


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(respond: Callable[[BaseHTTPRequestHandler], None] | None = None) -> Receiver:
        started.append(Receiver(respond))
        return started[-1]

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def ws(store: SqlStore) -> Workspace:
    workspace = Workspace(store)
    workspace.create_project(CONFIG)
    workspace.create_project({**CONFIG, "name": "other"})
    return workspace


def ingest(ws: Workspace, project: str, external_id: str) -> None:
    ws.project(project).ingest([{"external_id": external_id, "payload": {"x": 1.0, "y": 2.0}}])


def fake_dns(
    answers: dict[str, list[str]], calls: list[str] | None = None
) -> Callable[[str, int], list[str]]:
    """A resolver answering ``answers`` for the names in it, like the system for the rest."""

    def resolve_fake(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return answers[host] if host in answers else resolve(host, port)  # else: the system's

    return resolve_fake


def deliver(ws: Workspace, dispatcher: Dispatcher, rounds: int = 5) -> None:
    """Run rounds until every delivery was attempted (the first may only settle the event log)."""
    for _ in range(rounds):
        if dispatcher.run_once().attempted:
            return
        time.sleep(0.05)


def only_delivery(ws: Workspace, sub_id: int, project: str = "toy") -> Delivery:
    (found,) = Webhooks(ws.store).deliveries(ws.project(project).project, sub_id)
    return found


def dispatcher_for(store: SqlStore, **options: Any) -> Dispatcher:
    return Dispatcher(store, schedule=(60.0,), jitter=0.0, timeout=2.0, min_gap_age=0.0, **options)


# --- subscribe time -------------------------------------------------------------------------------

REFUSED = [  # (host in the URL, what it is)
    ("127.0.0.1:5432", "a loopback address"),
    ("[::1]", "a loopback address"),
    ("0x7f000001", "a loopback address"),
    ("2130706433", "a loopback address"),
    ("0177.0.0.1", "a loopback address"),
    ("127.1", "a loopback address"),
    ("[::ffff:127.0.0.1]", "a loopback address"),
    ("[::127.0.0.1]", "a reserved address"),
    ("localhost:8000", "a loopback address"),
    ("api.LOCALHOST.", "a loopback address"),
    ("169.254.169.254", "a link-local address"),
    ("[::ffff:169.254.169.254]", "a link-local address"),
    ("[64:ff9b::a9fe:a9fe]", "a link-local address"),
    ("[fe80::1]", "a link-local address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("[fd12:3456::1]", "a private address"),
    ("[2002:c0a8:101::1]", "a private address"),  # 6to4 of 192.168.1.1
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("224.0.0.251", "a multicast address"),
    ("[ff02::1]", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("0.0.0.0", "an unspecified address"),
    ("[::]", "an unspecified address"),
    ("192.0.2.10", "a non-public address"),  # documentation
]


def test_subscribe_refuses_internal_targets(ws: Workspace) -> None:
    client = TestClient(create_app(ws, open_access=True), raise_server_exceptions=False)
    base = "/v1/projects/toy/webhooks"
    for host, what in REFUSED:
        r = client.post(base, json={"url": f"http://{host}/x", "events": ["items."]})
        assert r.status_code == 422, (host, r.text)
        body = r.json()
        assert body["code"] == "invalid" and [e["field"] for e in body["errors"]] == ["url"], host
        message = body["errors"][0]["message"]
        assert f" is {what}; an operator can allow it with LOOPWRIGHT_WEBHOOK_ALLOW=" in message, message
    r = client.post(base, json={"url": "http://127.0.0.1:5432/"})
    assert r.json()["errors"][0]["message"] == (
        "webhook target 127.0.0.1 is a loopback address;"
        " an operator can allow it with LOOPWRIGHT_WEBHOOK_ALLOW=127.0.0.1"
    )
    r = client.post(base, json={"url": "http://0x7f000001/"})
    assert r.json()["errors"][0]["message"].startswith("webhook target 0x7f000001 (127.0.0.1) is a loopback")
    r = client.post(base, json={"url": "http://0x08080808/"})  # public, but spelled to dodge filters
    assert r.status_code == 422
    assert (
        r.json()["errors"][0]["message"]
        == "webhook target 0x08080808 is an unusual spelling of 8.8.8.8; write 8.8.8.8"
    )
    # nothing was written by any of them
    assert client.get(base).json() == {"webhooks": []}
    assert not [e for e in ws.project("toy").events(0, 1000) if e.action.startswith("webhook.")]
    for url in ["https://hooks.example.org/x", "http://8.8.8.8:8080/", "https://[2606:4700:4700::1111]/"]:
        assert client.post(base, json={"url": url}).status_code == 201, url


def test_allow_list_lets_named_hosts_and_ranges_through(ws: Workspace) -> None:
    app = create_app(ws, open_access=True, webhook_allow=("10.0.0.0/8", "Hooks.Internal", "::1"))
    client = TestClient(app, raise_server_exceptions=False)
    base = "/v1/projects/toy/webhooks"
    for url in ["http://10.1.2.3/x", "http://hooks.internal:8443/x", "http://[::1]/x"]:
        assert client.post(base, json={"url": url}).status_code == 201, url
    for url in ["http://127.0.0.1/x", "http://11.0.0.1.nip.io.localhost/", "http://012.1.2.3/"]:
        assert client.post(base, json={"url": url}).status_code == 422, url
    with pytest.raises(Invalid, match="'not a host' is neither a host name nor"):
        create_app(ws, open_access=True, webhook_allow=("not a host",))


def test_cli_refuses_internal_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from loopwright.cli.app import app

    db = f"sqlite:///{tmp_path / 'w.db'}"
    Workspace(SqlStore(db)).create_project(CONFIG)
    runner = CliRunner()
    monkeypatch.delenv("LOOPWRIGHT_WEBHOOK_ALLOW", raising=False)
    for host, what in REFUSED[:12]:
        result = runner.invoke(app, ["webhooks", "add", f"http://{host}/x", "--db", db])
        assert result.exit_code != 0 and isinstance(result.exception, Invalid), host
        assert f"is {what}; an operator can allow it" in str(result.exception), host
    assert json.loads(runner.invoke(app, ["webhooks", "list", "--db", db, "--json"]).stdout) == []
    monkeypatch.setenv("LOOPWRIGHT_WEBHOOK_ALLOW", "127.0.0.0/8")
    added = runner.invoke(app, ["webhooks", "add", "http://127.0.0.1:9/x", "--db", db])
    assert added.exit_code == 0, added.output


# --- send time ------------------------------------------------------------------------------------


def test_a_name_resolving_to_loopback_is_refused_when_sending(
    ws: Workspace, store: SqlStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    toy = ws.project("toy").project
    hooks = Webhooks(store, allow=("localhost",))  # an allow-list since narrowed, or a DNS change
    names = {
        "localhost": hooks.subscribe(toy, receiver.url("localhost"), ["items."], "lead").id,  # real DNS
        "rebind.test": hooks.subscribe(toy, receiver.url("rebind.test"), ["items."], "lead").id,
        "mixed.test": hooks.subscribe(toy, receiver.url("mixed.test"), ["items."], "lead").id,
    }
    with store.engine.begin() as conn:  # rows from before the fix: odd spellings, never checked
        repo = SqlWebhookRepo(conn)
        for host in ("0x7f000001", "127.1", "[::ffff:127.0.0.1]"):
            names[host] = repo.add(
                toy.id, receiver.url(host), "whsec_AAAA", ["items."], "old", toy.created_at
            ).id
    ingest(ws, "toy", "p0")
    dns = {"rebind.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "10.0.0.7"]}
    deliver(ws, dispatcher_for(store, resolver=fake_dns(dns)))
    errors = {host: only_delivery(ws, sub_id).last_error for host, sub_id in names.items()}
    assert errors == {
        "localhost": "refused: localhost resolves to 127.0.0.1, a loopback address",
        "rebind.test": "refused: rebind.test resolves to 127.0.0.1, a loopback address",
        "mixed.test": "refused: mixed.test resolves to 10.0.0.7, a private address",
        "0x7f000001": "refused: 0x7f000001 is a loopback address",
        "127.1": "refused: 127.1 is a loopback address",
        "[::ffff:127.0.0.1]": "refused: ::ffff:127.0.0.1 is a loopback address",
    }
    assert receiver.requests == []


def test_allowed_names_and_ranges_are_delivered_to_the_checked_address(
    ws: Workspace, store: SqlStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    toy = ws.project("toy").project
    hooks = Webhooks(store)
    by_name = hooks.subscribe(toy, receiver.url("ann:p%40ss@hooks.internal", "/name"), ["items."], "lead")
    by_range = hooks.subscribe(toy, receiver.url("rebind.test", "/range"), ["items."], "lead")
    ingest(ws, "toy", "p0")
    calls: list[str] = []
    # rebind.test answers 127.0.0.1 once, then an address that is not allowed: the connection
    # goes to the address that was checked, as the name is resolved only once per attempt
    answers = {"hooks.internal": ["127.0.0.1"], "rebind.test": ["127.0.0.1"]}

    def rebinding(host: str, port: int) -> list[str]:
        found = fake_dns(answers, calls)(host, port)
        if host == "rebind.test":
            answers["rebind.test"] = ["10.9.9.9"]
        return found

    deliver(ws, dispatcher_for(store, allow=("hooks.internal", "127.0.0.0/8"), resolver=rebinding))
    assert only_delivery(ws, by_name.id).status == only_delivery(ws, by_range.id).status == "delivered"
    assert sorted(calls) == ["hooks.internal", "rebind.test"]
    hosts = sorted((headers["host"], headers.get("authorization")) for _, headers, _ in receiver.requests)
    basic = "Basic " + base64.b64encode(b"ann:p@ss").decode()  # the URL's user and password
    assert hosts == [(f"hooks.internal:{receiver.port}", basic), (f"rebind.test:{receiver.port}", None)]


def test_last_error_names_the_failure_never_the_receivers_bytes(
    ws: Workspace, store: SqlStore, receivers: Callable[..., Receiver]
) -> None:
    failing, garbage, gone = receivers(failing_with_secret), receivers(garbage_with_secret), receivers()
    gone.stop()  # nothing listens on its port any more
    toy = ws.project("toy").project
    hooks = Webhooks(store, allow=LOOPBACK)
    subs = [hooks.subscribe(toy, r.url(), ["items."], "lead").id for r in (failing, garbage, gone)]
    ingest(ws, "toy", "p0")
    deliver(ws, dispatcher_for(store, allow=LOOPBACK))
    rows = [only_delivery(ws, s) for s in subs]
    assert [(d.last_status_code, d.last_error) for d in rows] == [
        (500, "HTTP 500"),
        (None, "invalid HTTP response"),
        (None, "connection refused"),
    ]
    assert len(failing.requests) == len(garbage.requests) == 1
    client = TestClient(create_app(ws, open_access=True))
    for s in subs:
        assert SECRET not in client.get(f"/v1/projects/toy/webhooks/{s}/deliveries").text


# --- one slow receiver, many projects -------------------------------------------------------------


def test_a_dripping_receiver_delays_only_its_own_subscription(
    ws: Workspace, store: SqlStore, receivers: Callable[..., Receiver]
) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:  # a valid answer, one byte a second
        try:
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n":
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if slow.stopping.wait(1.0):
                    return
        except OSError:
            slow.closed_at = time.monotonic()

    slow, healthy = receivers(drip), receivers()
    hooks = Webhooks(store, allow=LOOPBACK)
    slow_sub = hooks.subscribe(ws.project("toy").project, slow.url(), ["items."], "lead")  # claimed first
    healthy_sub = hooks.subscribe(ws.project("other").project, healthy.url(), ["items."], "lead")
    dispatcher = Dispatcher(store, timeout=2.0, poll=0.05, min_gap_age=0.0, allow=LOOPBACK)
    dispatcher.start()
    try:
        ingest(ws, "toy", "p0")
        started = time.monotonic()
        while not slow.requests and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert slow.requests, "the slow receiver got nothing"  # now dripping, for 2 s
        ingest(ws, "other", "q0")
        sent = time.monotonic()
        while not healthy.requests and time.monotonic() - sent < 10:
            time.sleep(0.02)
        assert healthy.requests, "the healthy receiver got nothing"
        healthy_after = healthy.requests[0][0] - sent
        assert healthy_after < 1.5, healthy_after  # not behind the slow one, still in flight
        while only_delivery(ws, slow_sub.id).attempts == 0 and time.monotonic() - started < 10:
            time.sleep(0.02)
        cut_after = time.monotonic() - slow.requests[0][0]
    finally:
        dispatcher.stop()
    dripped = only_delivery(ws, slow_sub.id)
    assert (dripped.status, dripped.attempts, dripped.last_error) == ("pending", 1, "timeout after 2 s")
    assert 1.9 <= cut_after < 3.0, cut_after  # the deadline, though a byte came every second
    assert only_delivery(ws, healthy_sub.id, "other").status == "delivered"


# --- HTTPS: the connection is pinned, the certificate is still checked against the host name -----


OPENSSL_SELF_SIGNED = (
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    " -subj /CN=hooks.test -addext subjectAltName=DNS:hooks.test"
)


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, ssl.SSLContext]]:
    """A receiver serving HTTPS with a self-signed certificate for ``hooks.test`` only, and a
    client context that trusts that certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [*OPENSSL_SELF_SIGNED.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    receiver = Receiver()
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    receiver.server.socket = server_side.wrap_socket(receiver.server.socket, server_side=True)
    client_side = ssl.create_default_context(cafile=str(cert))
    yield receiver, client_side
    receiver.stop()


def test_https_checks_the_certificate_against_the_host_name(
    ws: Workspace, store: SqlStore, tls_receiver: tuple[Receiver, ssl.SSLContext]
) -> None:
    receiver, context = tls_receiver
    toy = ws.project("toy").project
    hooks = Webhooks(store)
    good = hooks.subscribe(toy, f"https://hooks.test:{receiver.port}/hook", ["items."], "lead")
    wrong = hooks.subscribe(toy, f"https://other.test:{receiver.port}/hook", ["items."], "lead")
    ingest(ws, "toy", "p0")
    dns = {"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    deliver(ws, dispatcher_for(store, allow=LOOPBACK, resolver=fake_dns(dns), ssl_context=context))
    assert only_delivery(ws, good.id).status == "delivered"
    assert only_delivery(ws, wrong.id).last_error == (
        "TLS certificate not accepted (Hostname mismatch, certificate is not valid for 'other.test'.)"
    )
    assert [headers["host"] for _, headers, _ in receiver.requests] == [f"hooks.test:{receiver.port}"]


def test_two_background_dispatchers_send_each_event_once_in_order(
    ws: Workspace, store: SqlStore, receivers: Callable[..., Receiver]
) -> None:
    """As two server processes would: both run their pools; the lease keeps one sender per
    subscription, so nothing is sent twice and each subscription's events arrive in order."""

    def slow_ok(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.3)
        ok(handler)

    slow, fast = receivers(slow_ok), receivers()
    hooks = Webhooks(store, allow=LOOPBACK)
    hooks.subscribe(ws.project("toy").project, slow.url(), ["items."], "lead")
    hooks.subscribe(ws.project("other").project, fast.url(), ["items."], "lead")
    for i in range(4):
        ingest(ws, "toy", f"p{i}")
        ingest(ws, "other", f"q{i}")
    dispatchers = [
        Dispatcher(store, timeout=2.0, poll=0.02, min_gap_age=0.0, workers=2, allow=LOOPBACK)
        for _ in range(2)
    ]
    for d in dispatchers:
        d.start()
    try:
        deadline = time.monotonic() + 15
        while (len(slow.requests) < 4 or len(fast.requests) < 4) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a duplicate would come now
    finally:
        for d in dispatchers:
            d.stop()
    for receiver, project in ((slow, "toy"), (fast, "other")):
        sent = [json.loads(body)["data"]["event_id"] for _, _, body in receiver.requests]
        expected = [e.id for e in ws.project(project).events(0, 1000) if e.action == "items.ingested"]
        assert sent == expected and len(sent) == 4


# --- the operator's setting reaches the server ---------------------------------------------------


def test_serve_passes_the_allow_list_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from loopwright.cli.app import app as cli
    from loopwright.service.app import app_from_env

    db = f"sqlite:///{tmp_path / 'w.db'}"
    Workspace(SqlStore(db)).create_project(CONFIG)
    monkeypatch.setenv("LOOPWRIGHT_DB_URL", db)
    monkeypatch.setenv("LOOPWRIGHT_SERVE_OPEN", "1")
    monkeypatch.setenv("LOOPWRIGHT_WEBHOOK_ALLOW", " hooks.internal , 10.0.0.0/8,")
    monkeypatch.setenv("LOOPWRIGHT_WEBHOOK_TIMEOUT", "3.5")
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    assert CliRunner().invoke(cli, ["serve", "--db", db, "--open"]).exit_code == 0  # one worker: here
    for app in (served[0], app_from_env()):  # --workers N: each worker builds it from the env
        assert app.state.webhook_allow == ("hooks.internal", "10.0.0.0/8")
        with TestClient(app) as client:
            assert client.app.state.dispatcher.timeout == 3.5  # type: ignore[attr-defined]
            r = client.post("/v1/projects/toy/webhooks", json={"url": "http://10.1.2.3/x"})
            assert r.status_code == 201, r.text
            assert (
                client.post("/v1/projects/toy/webhooks", json={"url": "http://127.0.0.1/x"}).status_code
                == 422
            )
    monkeypatch.setenv("LOOPWRIGHT_WEBHOOK_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="LOOPWRIGHT_WEBHOOK_TIMEOUT='soon' is not a number of seconds"):
        app_from_env()
