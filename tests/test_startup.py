"""Start-up stays light: ``import loopwright``, the CLI and the server app factory import no SciPy,
scikit-learn, matplotlib, pandas or pyarrow (checked in a fresh interpreter), a database at head
skips Alembic, and a workspace caches loaded models by model version id for all its Loops."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwright import Workspace
from loopwright.loop.context import ModelCache
from loopwright.store.sql import SqlStore
from loopwright.store.sql.engine import at_head, head_revision, make_engine, migrate
from test_loop import CONFIG, points

HEAVY = ("krippendorff", "sklearn", "scipy", "matplotlib", "pandas", "pyarrow", "skops")


def heavy_after(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; the heavy packages (and Alembic) it left imported."""
    probe = (
        "import sys, json\n"
        f"{code}\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        f"print(json.dumps({{'heavy': sorted(tops & set({HEAVY!r})), 'alembic': 'alembic' in tops}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_loopwright_is_light() -> None:
    assert heavy_after("import loopwright") == {"heavy": [], "alembic": False}


def test_cli_import_is_light() -> None:
    assert heavy_after("import loopwright.cli.app") == {"heavy": [], "alembic": False}
    code = "import sys, loopwright.cli.app\nassert 'numpy' not in sys.modules, 'numpy on CLI start-up'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_status_on_a_database_at_head_is_light(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'status.db'}"
    Workspace(SqlStore(url)).create_project(CONFIG)
    code = (
        "import sys\n"
        f"sys.argv = ['loopwright', 'status', '--db', {url!r}, '--json']\n"
        "from loopwright.cli.app import app\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    assert heavy_after(code) == {"heavy": [], "alembic": False}
    others = "registry", "users", "jobs", "crowd", "simulate_cmd", "labelstudio", "ingest_cmd"
    probe = code + f"print(sorted(m for m in {others!r} if 'loopwright.cli.' + m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr  # other commands load when run


def test_every_command_is_listed_and_runs_from_the_lazy_group() -> None:
    from typer.testing import CliRunner

    from loopwright.cli.app import app

    runner = CliRunner()
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0
    for name in ("aggregate", "drift", "worker", "demo", "status", "serve", "datasets", "users", "events"):
        assert name in listed.stdout, name
    users = runner.invoke(app, ["users", "--help"])  # a lazy sub-app, built on first use
    assert users.exit_code == 0 and "add" in users.stdout
    wrong = runner.invoke(app, ["statsu"])
    assert wrong.exit_code != 0 and "status" in wrong.output  # Typer's suggestion still works


def test_server_app_factory_is_light(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    SqlStore(url).close()  # migrated, as `serve --workers N` does before the workers start
    code = (
        "import os\n"
        f"os.environ['LOOPWRIGHT_DB_URL'] = {url!r}\n"
        "from loopwright.service.app import app_from_env\n"
        "app_from_env()\n"
    )
    assert heavy_after(code) == {"heavy": [], "alembic": False}


def test_head_revision_is_alembics_head_and_the_chain_is_linear() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from loopwright.store.sql import engine

    config = Config()
    config.set_main_option("script_location", str(engine._MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [head_revision()]
    for rev in script.walk_revisions():  # the file prefix is the revision id, one parent each
        assert Path(rev.path).name[:4] == rev.revision
        assert rev.down_revision is None or isinstance(rev.down_revision, str)


def test_migrate_skips_alembic_only_at_head(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from loopwright.store.sql import engine as sql_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert not at_head(engine)  # no version table yet
    config = Config()
    config.set_main_option("script_location", str(sql_engine._MIGRATIONS))
    with engine.begin() as conn:  # an older database: stopped at 0010
        config.attributes["connection"] = conn
        command.upgrade(config, "0010")
    assert not at_head(engine)
    migrate(engine)  # upgraded, not skipped
    assert at_head(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
    engine.dispose()


def test_cli_constants_match_the_use_cases() -> None:
    from loopwright.active.strategies import STRATEGIES
    from loopwright.cli.registry import DEPLOY_ENVIRONMENTS
    from loopwright.cli.simulate_cmd import Choice
    from loopwright.loop.registry import ENVIRONMENTS

    assert {c.value for c in Choice} == set(STRATEGIES)
    assert ENVIRONMENTS[1:] == DEPLOY_ENVIRONMENTS


# --- the model cache -----------------------------------------------------------------------------


def _trained(ws: Workspace, seed: int = 0) -> None:
    """A champion for the toy project, handed in (and stored as an artifact)."""
    from sklearn.linear_model import LogisticRegression

    data = points(60, seed=seed)
    X = np.asarray([[r["payload"]["x"], r["payload"]["y"]] for r, _ in data])
    ws.project("toy").use_model(LogisticRegression().fit(X, [label for _, label in data]), force=True)


def _records(n: int, start: int) -> list[dict[str, Any]]:
    return [record for record, _ in points(n, seed=1, start=start)]


def test_champion_loads_once_per_process_across_request_scoped_loops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopwright.learning import artifact

    url = f"sqlite:///{tmp_path / 'cache.db'}"
    ws = Workspace(SqlStore(url))
    ws.create_project(CONFIG)
    _trained(ws)
    ws.models._models.clear()  # as in a fresh worker: nothing loaded yet
    loads: list[int] = []
    real = artifact.load_model

    def counting(blob: bytes, trusted: Any = ()) -> Any:
        loads.append(len(blob))
        return real(blob, trusted)

    monkeypatch.setattr(artifact, "load_model", counting)
    for k in range(3):  # each request builds its own Loop, as the REST routes do
        report = ws.project("toy").ingest(_records(10, start=10 * k))
        assert len(report.outcomes) == 10
    assert len(loads) == 1

    # a promotion in another process: a new champion id, loaded once on the next ingest
    other = Workspace(SqlStore(url))
    _trained(other, seed=1)  # (use_model round-trips the artifact once: not this process's cache)
    loads.clear()
    first = ws.project("toy").ingest(_records(10, start=100))
    ws.project("toy").ingest(_records(10, start=200))
    assert len(loads) == 1
    new_champion = other.project("toy").model_aliases().champion
    assert new_champion is not None and new_champion.id in ws.models
    assert len(first.outcomes) == 10
    other.close()
    ws.close()


def test_model_cache_is_an_lru_that_loads_each_version_once_across_threads() -> None:
    cache = ModelCache(size=2)
    m1, m2, m3, other = (object() for _ in range(4))  # stand-ins for estimators
    calls: list[int] = []
    started = threading.Barrier(8)

    def slow_load() -> Any:
        calls.append(1)
        time.sleep(0.05)
        return m1

    def worker() -> None:
        started.wait()
        assert cache.get_or_load(1, slow_load) is m1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    cache[2] = m2  # type: ignore[assignment]
    assert cache.get_or_load(1, lambda: other) is m1  # type: ignore[arg-type,return-value]
    cache[3] = m3  # type: ignore[assignment]  # evicts 2, the least recently used
    assert 2 not in cache and 1 in cache and 3 in cache and len(cache) == 2


def test_the_service_builds_one_loop_per_project_with_the_workspace_models(tmp_path: Path) -> None:
    """REST requests reuse the project's Loop: its config is validated once and a champion's
    artifact is loaded once per process (before, each request's Loop had a model cache of its own)."""
    from loopwright.service.deps import open_project

    ws = Workspace(SqlStore(f"sqlite:///{tmp_path / 'loops.db'}"))
    ws.create_project(CONFIG)
    by_name = open_project(ws, "toy")
    assert open_project(ws, by_name.project.id) is by_name
    assert by_name._ctx.models is ws.models
    ws.close()
