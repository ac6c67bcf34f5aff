"""Events on NATS JetStream, against the real server on 127.0.0.1:4222 (and a second one started
here on a free port for the broker-down test), on SQLite and PostgreSQL.

Each test publishes to a stream and subject prefix of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loopwright import Workspace
from loopwright.integrations.broker import BrokerUnavailable, NatsPublisher, subject
from loopwright.service.signing import event_body
from loopwright.store.sql import SqlStore
from loopwright.store.sql.cursors import SqlEventCursors
from loopwright.store.sql.repositories import SqlEventRepo

nats = pytest.importorskip("nats")

NATS_URL = "nats://127.0.0.1:4222"
NATS_SERVER = "/usr/sbin/nats-server"
CONFIG: dict[str, Any] = {"name": "toy", "labels": ["a", "b"], "features": ["x", "y"]}


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def nats_up() -> None:
    if not _answers(4222):
        message = "NATS is not answering on 127.0.0.1:4222 (start nats-server -js)"
        if os.environ.get("LOOPWRIGHT_REQUIRE_NATS") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """A stream and a subject prefix of this test's own; the stream is deleted after."""
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"LWTEST_{tag}", f"lwtest{tag}"
    yield stream, prefix

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(drop())


@pytest.fixture
def ws(store: SqlStore) -> Workspace:
    workspace = Workspace(store)
    workspace.create_project(CONFIG)
    return workspace


def add_events(store: SqlStore, actions: list[str], project: str = "toy") -> list[int]:
    """Events in the log of ``project`` (one per action); their ids."""
    ids = []
    with store.engine.begin() as conn:
        pid = conn.exec_driver_sql(f"SELECT id FROM projects WHERE name = '{project}'").scalar()
        repo = SqlEventRepo(conn)
        for i, action in enumerate(actions):
            ids.append(repo.add(pid, "svc", action, "project", project, {"n": i}).id)
    return ids


def all_event_ids(store: SqlStore) -> list[int]:
    with store.engine.begin() as conn:
        return SqlEventCursors(conn).event_ids_after(0, 100_000)


def publisher(store: SqlStore, names: tuple[str, str], url: str = NATS_URL, **kw: Any) -> NatsPublisher:
    return NatsPublisher(store, url, stream=names[0], prefix=names[1], **kw)


def drain(pub: NatsPublisher) -> int:
    async def go() -> int:
        total = 0
        try:
            while (done := await pub.publish_once()).published:
                total += done.published
        finally:
            await pub.close()
        return total

    return asyncio.run(go())


def consume(names: tuple[str, str], durable: str, upto: int, url: str = NATS_URL) -> list[Any]:
    """Up to ``upto`` messages from a durable pull consumer, each acked; then the consumer's
    connection closes (a receiver that stops)."""

    async def go() -> list[Any]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{names[1]}.>", durable=durable, stream=names[0])
        got: list[Any] = []
        while len(got) < upto:
            try:
                msgs = await sub.fetch(min(upto - len(got), 50), timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                break
            for m in msgs:
                got.append((m.headers["Nats-Msg-Id"], m.subject, m.data))
                await m.ack()
        await nc.close()
        return got

    return asyncio.run(go())


def stream_count(names: tuple[str, str], url: str = NATS_URL) -> int:
    async def go() -> int:
        nc = await nats.connect(url)
        info = await nc.jetstream().stream_info(names[0])
        await nc.close()
        return int(info.state.messages)

    return asyncio.run(go())


def test_subject_is_prefix_project_action_with_unsafe_characters_replaced() -> None:
    assert subject("loopwright", "toy", "model.retrain_due") == "loopwright.toy.model.retrain_due"
    assert subject("loopwright", "my proj.*>", "item.resolved") == "loopwright.my_proj___.item.resolved"


def test_every_event_arrives_once_per_id_across_a_receiver_restart(ws: Workspace, names: Any) -> None:
    store = ws.store
    assert isinstance(store, SqlStore)
    add_events(store, ["model.retrain_due", "item.resolved", "item.resolved"])
    assert drain(publisher(store, names)) == len(all_event_ids(store))
    first = consume(names, "trainer", upto=2)  # the receiver takes two, acks them, stops
    add_events(store, ["item.resolved", "model.promoted"])
    drain(publisher(store, names))  # a new publisher process goes on from the stored cursor
    rest = consume(names, "trainer", upto=100)  # the receiver comes back under the same name
    got = first + rest
    ids = [f"evt_{i}" for i in all_event_ids(store)]
    assert [g[0] for g in got] == ids  # each id once, in order
    with store.engine.begin() as conn:
        found = SqlEventCursors(conn).events_between(0, 10_000, 10_000)
    by_id = {f"evt_{e.id}": (e, p) for e, p in found}
    for msg_id, subj, data in got:
        event, project = by_id[msg_id]
        assert subj == f"{names[1]}.toy.{event.action}"
        assert data == event_body(event, project)  # the webhooks' body, byte for byte
        assert json.loads(data)["data"]["event_id"] == event.id
    assert stream_count(names) == len(ids)


def test_killed_between_publish_and_advance_publishes_again_deduplicated(
    ws: Workspace, names: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ws.store
    assert isinstance(store, SqlStore)
    add_events(store, ["item.resolved"] * 4)
    n = len(all_event_ids(store))

    class Killed(BaseException):
        pass

    def die(*_: Any, **__: Any) -> bool:
        raise Killed  # the process dies after the acks, before the cursor moves

    first = publisher(store, names, lease=0.2)
    with monkeypatch.context() as m:
        m.setattr(SqlEventCursors, "advance", die)
        with pytest.raises(Killed):
            asyncio.run(first.publish_once())
    with store.engine.begin() as conn:
        assert SqlEventCursors(conn).position(first.sink) == 0  # nothing acknowledged as done
    assert stream_count(names) == n
    time.sleep(0.3)  # the dead publisher's lease runs out

    async def again() -> Any:
        pub = publisher(store, names)
        try:
            return await pub.publish_once()
        finally:
            await pub.close()

    done = asyncio.run(again())
    assert (done.published, done.duplicates, done.cursor) == (n, n, all_event_ids(store)[-1])
    assert stream_count(names) == n  # JetStream kept one message per Nats-Msg-Id
    assert [g[0] for g in consume(names, "c", upto=100)] == [f"evt_{i}" for i in all_event_ids(store)]


def test_a_leased_cursor_is_not_advanced_by_a_second_publisher(ws: Workspace, names: Any) -> None:
    store = ws.store
    assert isinstance(store, SqlStore)
    add_events(store, ["item.resolved"] * 2)
    one, two = publisher(store, names), publisher(store, names)
    now = ws.clock()
    from datetime import timedelta

    with store.engine.begin() as conn:
        assert SqlEventCursors(conn).lease(one.sink, one.owner, now, now + timedelta(seconds=60)) == 0
    assert drain(two) == 0  # the cursor is leased by `one`: `two` publishes nothing
    with store.engine.begin() as conn:
        repo = SqlEventCursors(conn)
        assert not repo.advance(two.sink, two.owner, 99, now)
        repo.release(one.sink, one.owner)
    assert drain(two) == len(all_event_ids(store))


@pytest.fixture
def spare_nats(tmp_path: Path) -> Iterator[Any]:
    """A second NATS server (JetStream) on a free port of 127.0.0.1, started on demand."""
    if not Path(NATS_SERVER).exists():
        pytest.skip(f"{NATS_SERVER} is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs: list[subprocess.Popen[bytes]] = []

    class Spare:
        url = f"nats://127.0.0.1:{port}"

        def start(self) -> None:
            cmd = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(100):
                if _answers(port):
                    return
                time.sleep(0.05)
            raise RuntimeError("the spare nats-server did not start")

    yield Spare()
    for p in procs:
        p.terminate()
        p.wait(10)
    shutil.rmtree(tmp_path / "js", ignore_errors=True)


def test_broker_down_at_start_is_one_clear_error_and_nothing_is_lost(
    ws: Workspace, names: Any, spare_nats: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = ws.store
    assert isinstance(store, SqlStore)
    add_events(store, ["model.retrain_due", "item.resolved"])
    with pytest.raises(BrokerUnavailable, match=r"is not answering .*events wait in the outbox"):
        asyncio.run(publisher(store, names, url=spare_nats.url).publish_once())

    pub = publisher(store, names, url=spare_nats.url, retry=0.2, poll=0.05)
    caplog.set_level(logging.WARNING, logger="loopwright.integrations.broker")
    pub.start()
    try:
        time.sleep(0.8)  # several tries while it is down
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1  # one line per outage, not one per try
        assert "\n" not in errors[0].getMessage() and spare_nats.url in errors[0].getMessage()
        with store.engine.begin() as conn:
            assert SqlEventCursors(conn).position(pub.sink) is None  # all waiting in the outbox
        add_events(store, ["item.resolved"])  # more arrive during the outage
        spare_nats.start()
        last = all_event_ids(store)[-1]
        for _ in range(200):
            with store.engine.begin() as conn:
                if SqlEventCursors(conn).position(pub.sink) == last:
                    break
            time.sleep(0.05)
    finally:
        pub.stop()
    got = consume(names, "late", upto=100, url=spare_nats.url)
    assert [g[0] for g in got] == [f"evt_{i}" for i in all_event_ids(store)]


def test_cli_publish_once_and_a_down_broker(store_url: str, names: Any, spare_nats: Any) -> None:
    from loopwright.cli.app import app

    store = SqlStore(store_url)
    Workspace(store).create_project(CONFIG)
    add_events(store, ["item.resolved"] * 3)
    runner = CliRunner()
    base = ["events", "publish", "--db", store_url, "--stream", names[0], "--prefix", names[1], "--once"]
    down = runner.invoke(app, [*base, "--broker", spare_nats.url])
    assert isinstance(down.exception, BrokerUnavailable)  # main() prints it as one line, exit 2
    assert "\n" not in str(down.exception) and "wait in the outbox" in str(down.exception)
    up = runner.invoke(app, [*base, "--broker", NATS_URL])
    assert up.exit_code == 0, up.output
    assert stream_count(names) == len(all_event_ids(store))
    listed = runner.invoke(app, ["events", "--db", store_url, "--json", "--limit", "2"])
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == 2  # the log, as before
    store.close()


def test_the_server_publishes_in_the_background(ws: Workspace, names: Any) -> None:
    from fastapi.testclient import TestClient

    from loopwright.service import create_app

    store = ws.store
    assert isinstance(store, SqlStore)
    app = create_app(ws, open_access=True, broker_url=f"{NATS_URL}?stream={names[0]}&prefix={names[1]}")
    with TestClient(app):
        pub = app.state.publisher
        assert (pub.url, pub.stream, pub.prefix) == (NATS_URL, *names)
        add_events(store, ["model.retrain_due"])
        last = all_event_ids(store)[-1]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with store.engine.begin() as conn:
                if SqlEventCursors(conn).position(pub.sink) == last:
                    break
            time.sleep(0.05)
    assert stream_count(names) == len(all_event_ids(store))
    assert app.state.publisher._thread is None  # stopped with the app


def test_the_consumer_example_triggers_training_and_acks_after_work(
    ws: Workspace, names: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "broker_consumer.py"
    spec = importlib.util.spec_from_file_location("broker_consumer", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    runs: list[tuple[str, str]] = []
    monkeypatch.setattr(example, "train", lambda project, reason: runs.append((project, reason)))
    store = ws.store
    assert isinstance(store, SqlStore)
    add_events(
        store, ["item.resolved", "model.promoted", "item.resolved", "model.retrain_due", "item.resolved"]
    )
    drain(publisher(store, names))
    resolved = asyncio.run(example.consume(NATS_URL, names[0], names[1], every=2, idle_stop=1.0))
    assert resolved == {"toy": 3}
    assert runs == [("toy", "2 items resolved"), ("toy", "the project says a retrain is due")]
    again = asyncio.run(example.consume(NATS_URL, names[0], names[1], every=2, idle_stop=1.0))
    assert again == {} and len(runs) == 2  # all acked: nothing comes back for the durable consumer


def _cursor(store: SqlStore, sink: str) -> int | None:
    with store.engine.begin() as conn:
        return SqlEventCursors(conn).position(sink)


@pytest.mark.slow
def test_a_publisher_process_killed_mid_batch_loses_nothing(
    store_url: str, names: Any, tmp_path: Path
) -> None:
    """`loopwright events publish` is SIGKILLed while its batch is half acked (the cursor not yet
    moved); a new process takes over once the dead one's lease runs out: every event id arrives,
    the re-published half only as the same ids, which JetStream stores once."""
    import signal
    import sys

    store = SqlStore(store_url)
    Workspace(store).create_project(CONFIG)
    add_events(store, ["item.resolved"] * 3000)
    sink = f"nats:{names[0]}"
    cli = [sys.executable, "-m", "loopwright", "events", "publish", "--broker", NATS_URL, "--db", store_url]
    cli += ["--stream", names[0], "--prefix", names[1], "--batch", "5000", "--lease", "2"]
    log = (tmp_path / "publisher.log").open("wb")
    first = subprocess.Popen(cli, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while True:  # kill it once part of the batch is in the stream
            with contextlib.suppress(Exception):
                if (seen := stream_count(names)) >= 100:
                    break
            assert first.poll() is None and time.monotonic() < deadline, (
                tmp_path / "publisher.log"
            ).read_text()
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = stream_count(names)
    assert _cursor(store, sink) == 0 and 100 <= seen <= at_kill < 3000  # killed mid batch, nothing moved
    add_events(store, ["model.promoted"] * 5)  # more arrive while no publisher runs
    ids = all_event_ids(store)
    time.sleep(2.2)  # the dead publisher's lease runs out
    again = subprocess.run([*cli, "--once"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"published {len(ids)} events" in " ".join(again.stderr.split())  # from the cursor: all of them
    assert _cursor(store, sink) == ids[-1]
    assert stream_count(names) == len(ids)  # the re-published ones stored once (Nats-Msg-Id)
    got = consume(names, "after-kill", upto=len(ids) + 10)
    assert [g[0] for g in got] == [f"evt_{i}" for i in ids]  # every id once, in order
    assert all(json.loads(data)["data"]["event_id"] == int(msg_id[4:]) for msg_id, _, data in got)
    store.close()


def test_the_shared_outbox_reader_waits_for_an_uncommitted_event_id(ws: Workspace) -> None:
    """One reader for both sinks: a later id visible before an earlier, still uncommitted one is
    not passed (PostgreSQL) until the transaction holding it has ended; on SQLite a gap is final."""
    from loopwright.store.sql.outbox import OutboxReader

    store = ws.store
    assert isinstance(store, SqlStore)
    [before] = add_events(store, ["item.resolved"])
    clock = [0.0]
    reader = OutboxReader("test", min_gap_age=1.0, gap_timeout=60.0, monotonic=lambda: clock[0])
    if store.engine.dialect.name == "sqlite":
        later = add_events(store, ["item.resolved"] * 2)
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM events WHERE id = {later[0]}")  # a gap in the ids
            assert reader.settle(conn, 0, 100) == later[1] and reader.waiting_on == []
        return
    held = store.engine.connect()
    tx = held.begin()
    pid = held.exec_driver_sql("SELECT id FROM projects WHERE name = 'toy'").scalar()
    missing = SqlEventRepo(held).add(pid, "svc", "item.resolved", "project", "toy", {}).id  # not committed
    [after] = add_events(store, ["model.promoted"])
    assert after > missing > before
    with store.engine.begin() as conn:
        assert reader.settle(conn, 0, 100) == before and reader.waiting_on == [missing]
    clock[0] = 2.0  # old enough: the transactions running now are the ones that may hold it
    with store.engine.begin() as conn:
        assert reader.settle(conn, 0, 100) == before  # the holder still runs
    tx.rollback()
    held.close()
    deadline = time.monotonic() + 30  # other sessions on a shared server may have been running too
    while True:
        with store.engine.begin() as conn:
            if (horizon := reader.settle(conn, 0, 100)) == after or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert horizon == after and reader.waiting_on == []
