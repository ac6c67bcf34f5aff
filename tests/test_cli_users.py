"""``loopwright users …`` and ``loopwright serve --workers N``, run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from live import free_port
from loopwright import Workspace
from loopwright.cli.app import app, main
from loopwright.service import SqlAuthenticator
from loopwright.store.sql import SqlStore
from test_loop import CONFIG

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    store = SqlStore(url)
    Workspace(store).create_project(CONFIG)  # "toy"
    store.close()
    return url


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_add_token_list_revoke(db: str) -> None:
    assert "added user root (admin)" in cli("users", "add", "root", "--admin", "--db", db)
    out = cli("users", "add", "ann", "--project", "toy", "--role", "annotator", "--tiers", "2,1", "--db", db)
    assert "added user ann as annotator in toy (tiers 1,2)" in out
    token = cli("users", "token", "ann", "--db", db).strip()
    assert len(token) >= 40 and "\n" not in token
    cli("users", "token", "ann", "--db", db)
    store = SqlStore(db)
    principal = SqlAuthenticator(store).resolve(token)
    assert principal is not None and principal.name == "ann" and principal.memberships["toy"].tiers == (1, 2)
    listed = json.loads(cli("users", "list", "--json", "--db", db))
    assert listed == [
        {
            "name": "ann",
            "admin": False,
            "tokens": 2,
            "memberships": [{"project": "toy", "role": "annotator", "tiers": [1, 2]}],
        },
        {"name": "root", "admin": True, "tokens": 0, "memberships": []},
    ]
    assert token not in json.dumps(listed)
    table = cli("users", "list", "--db", db)
    assert "toy: annotator (tiers 1,2)" in table and token not in table
    assert "token revoked" in cli("users", "revoke", "--db", db, "--", token)  # a token may start with -
    assert SqlAuthenticator(store).resolve(token) is None
    assert json.loads(cli("users", "list", "--json", "--db", db))[0]["tokens"] == 1
    store.close()


def test_revoke_a_dash_token_by_stdin_by_id_and_by_user(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each way of revoking ends the token over REST (401); tokens are listed by id, never shown."""
    from fastapi.testclient import TestClient

    from loopwright.service import create_app

    cli("users", "add", "ann", "--project", "toy", "--role", "annotator", "--db", db)
    cli("users", "add", "bob", "--project", "toy", "--role", "viewer", "--db", db)
    dashes = iter([f"-dash{i}-" + "x" * 40 for i in range(2)])
    monkeypatch.setattr("loopwright.store.sql.users.secrets.token_urlsafe", lambda n: next(dashes))
    dash1, dash2 = (cli("users", "token", "ann", "--db", db).strip() for _ in range(2))
    monkeypatch.undo()
    by_id, bob1, bob2 = (cli("users", "token", u, "--db", db).strip() for u in ("ann", "bob", "bob"))
    assert dash1.startswith("-dash0-") and dash2.startswith("-dash1-")
    ws = Workspace(SqlStore(db))  # a cache a slow machine cannot outlast (the 5 s default expired once)
    auth = SqlAuthenticator(ws.store, cache_seconds=3600)
    with TestClient(create_app(ws, authenticator=auth)) as client:

        def status(token: str) -> int:
            return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code

        assert {status(t) for t in (dash1, dash2, by_id, bob1, bob2)} == {200}
        deadline = time.monotonic() + 30  # noting a use is best effort: skipped while the app's own
        while time.monotonic() < deadline:  # writer holds SQLite's lock (5 s ran out on a busy machine)
            every = json.loads(cli("users", "tokens", "--json", "--db", db))
            if all(t["last_used_at"] for t in every):
                break
            auth.forget()  # a cached caller is not looked up, so not noted: look them up again
            for t in (dash1, dash2, by_id, bob1, bob2):  # an unnoted token is noted by its next lookup
                status(t)
            time.sleep(0.1)
        listed = json.loads(cli("users", "tokens", "ann", "--json", "--db", db))
        assert [t["id"] for t in listed] == [1, 2, 3] and {t["user"] for t in listed} == {"ann"}
        assert all(t["last_used_at"] and t["revoked_at"] is None for t in listed)
        table = cli("users", "tokens", "--db", db)
        assert all(t not in table + json.dumps(listed) for t in (dash1, dash2, by_id, bob1, bob2))
        assert "bob" in table and "never" not in table  # every token was used just now
        refused = runner.invoke(app, ["users", "revoke", dash1, "--db", db])
        assert refused.exit_code == 2 and "No such option" in refused.output  # typer's trap
        assert "token revoked" in cli("users", "revoke", "--db", db, "--", dash1)
        result = runner.invoke(app, ["users", "revoke", "--token-stdin", "--db", db], input=dash2 + "\n")
        assert result.exit_code == 0 and "token revoked" in result.stdout
        assert "token revoked" in cli("users", "revoke", "--id", str(listed[2]["id"]), "--db", db)
        assert "revoked 2 tokens of bob" in cli("users", "revoke", "--user", "bob", "--db", db)
        assert {status(t) for t in (dash1, dash2, by_id, bob1, bob2)} == {200}  # the server's cache
        client.app.state.authenticator.forget()  # as if its cache_seconds had passed
        assert {status(t) for t in (dash1, dash2, by_id, bob1, bob2)} == {401}
        revoked = json.loads(cli("users", "tokens", "--json", "--db", db))
        assert all(t["revoked_at"] for t in revoked) and len(revoked) == 5
        assert "revoked 0 tokens of ann" in cli("users", "revoke", "--user", "ann", "--db", db)


def test_existing_user_gets_a_membership(db: str) -> None:
    cli("users", "add", "bob", "--db", db)
    out = cli("users", "add", "bob", "--project", "toy", "--role", "viewer", "--db", db)
    assert "updated user bob as viewer in toy" in out


ERRORS = {  # arguments -> the one line on stderr
    ("add", "x", "--project", "nope", "--role", "viewer"): "error (not_found): project 'nope' does not exist",
    ("add", "x", "--project", "toy", "--role", "boss"): "error (invalid): unknown role 'boss'; roles: lead, "
    "service, annotator, expert, viewer",
    ("add", "x", "--project", "toy"): "error (invalid): --project and --role go together",
    ("add", "x", "--tiers", "1"): "error (invalid): --tiers needs --project and --role",
    (
        "add",
        "x",
        "--project",
        "toy",
        "--role",
        "annotator",
        "--tiers",
        "one",
    ): "error (invalid): --tiers must be tier numbers separated by commas, not 'one'",
    ("add", "bob", "--project", "toy", "--role", "lead"): "error (conflict): user 'bob' is already a member "
    "of 'toy'",
    ("add", "bob"): "error (invalid): user 'bob' already exists (add a membership with --project and --role)",
    ("token", "ghost"): "error (not_found): user 'ghost' does not exist",
    ("revoke", "not-a-token"): "error (not_found): no live token matches",
    ("revoke",): "error (invalid): name one of: TOKEN, --token-stdin, --user NAME, --id N",
    ("revoke", "--user", "bob", "--id", "1"): "error (invalid): name one of: TOKEN, --token-stdin, --user "
    "NAME, --id N",
    ("revoke", "--id", "999"): "error (not_found): no live token matches id 999",
    ("revoke", "--user", "ghost"): "error (not_found): user 'ghost' does not exist",
    ("tokens", "ghost"): "error (not_found): user 'ghost' does not exist",
}


@pytest.mark.parametrize("args", list(ERRORS), ids=lambda a: " ".join(a))
def test_clear_errors(
    db: str, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each mistake: exit code 2 and one line naming it, no traceback (``main`` as the script runs it)."""
    cli("users", "add", "bob", "--project", "toy", "--role", "viewer", "--db", db)
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["loopwright", "users", *args, "--db", db])
    with pytest.raises(SystemExit) as info:
        main()
    assert (info.value.code, capsys.readouterr().err.strip()) == (2, ERRORS[args])


def _workers(pid: int) -> set[int]:
    """The uvicorn worker processes (multiprocessing spawn children) of ``pid``."""
    out = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text():
                out.add(int(child))
        except OSError:  # ended meanwhile
            pass
    return out


@pytest.mark.slow
def test_serve_with_4_workers_starts_on_a_loaded_machine(db: str, tmp_path: Path) -> None:
    """The console script (each worker re-imports the CLI module) with 4 workers while busy loops
    hog every core: all 4 answer and none is killed and respawned (issue 15: with SciPy and
    scikit-learn imported by the CLI, workers missed uvicorn's 5 s health check forever)."""
    cli("users", "add", "root", "--admin", "--db", db)
    token = cli("users", "token", "root", "--db", db).strip()
    port = free_port()
    busy = "import time\nend = time.monotonic() + 150\nwhile time.monotonic() < end: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(2 * (os.cpu_count() or 1))]
    script = str(Path(sys.executable).parent / "loopwright")
    cmd = [script, "serve", "--db", db, "--port", str(port), "--workers", "4", "--public-metrics"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 150  # about 10 s on an idle 2-core machine
        while True:
            seen |= _workers(proc.pid)
            try:
                up = httpx.get(f"{base}/metrics", timeout=2).status_code == 200
                if up and len(_workers(proc.pid)) == 4:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, f"not started; workers seen {seen}"
            time.sleep(0.2)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            statuses = {client.get("/v1/projects/toy", headers=auth).status_code for _ in range(20)}
            assert statuses == {200}
            assert client.get("/v1/projects/toy").status_code == 401
        time.sleep(3)  # a worker killed by the health check would be replaced by a new pid
        seen |= _workers(proc.pid)
        assert len(_workers(proc.pid)) == 4 and len(seen) == 4, seen
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_app_from_env_reads_the_serve_flags(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What each worker of ``serve --workers N`` builds: database and flags from the environment."""
    from fastapi.testclient import TestClient

    from loopwright.service.app import app_from_env

    monkeypatch.setenv("LOOPWRIGHT_DB_URL", db)
    monkeypatch.setenv("LOOPWRIGHT_SERVE_OPEN", "1")
    monkeypatch.setenv("LOOPWRIGHT_PUBLIC_METRICS", "0")
    with TestClient(app_from_env()) as client:
        assert client.get("/v1/projects").json()["projects"][0]["name"] == "toy"  # open: no token
    monkeypatch.setenv("LOOPWRIGHT_SERVE_OPEN", "0")
    monkeypatch.setenv("LOOPWRIGHT_PUBLIC_METRICS", "1")
    with TestClient(app_from_env()) as client:
        assert client.get("/v1/projects").status_code == 401
        assert client.get("/metrics").status_code == 200
