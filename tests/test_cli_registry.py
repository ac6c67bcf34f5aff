"""``loopwright datasets …`` and ``loopwright models …`` run as a user runs them: a subprocess on a
SQLite database built here."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopwright import Workspace
from loopwright.domain import ModelStatus
from loopwright.store.sql import SqlStore
from test_registry import CONFIG, seed


@dataclass
class Db:
    url: str
    tmp: Path
    v1: str
    v2: str


def _start(db: Db, args: tuple[str, ...]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loopwright", *args, "--db", db.url],
        cwd=db.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def run_many(db: Db, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands side by side (each start-up costs a second or two)."""
    procs = [(_start(db, args), args) for args in commands]
    done = []
    for proc, args in procs:
        stdout, stderr = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(list(args), proc.returncode, stdout, stderr))
    return done


def run(db: Db, *args: str) -> subprocess.CompletedProcess[str]:
    return run_many(db, args)[0]


def fails(done: subprocess.CompletedProcess[str], code: str, text: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error ({code})" in done.stderr and text in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    tmp = tmp_path_factory.mktemp("cli-registry")
    url = f"sqlite:///{tmp / 'loop.db'}"
    store = SqlStore(url)
    seeded = seed(store)
    loop, v1, v2 = seeded.loop, seeded.v1, seeded.v2
    loop.retrain()  # v1 champion (baseline gate)
    loop.retrain(dataset_id=v2.id)  # v2 champion (not significantly worse)
    with store.unit_of_work() as uow:  # v3: rejected by its gate
        uow.models.add(loop.project.id, ModelStatus.REJECTED, v2.id, "h", 0, {}, b"")
    store.close()
    return Db(url, tmp, v1.id, v2.id)


def test_datasets_list_show_diff_export(db: Db) -> None:
    listed, diff, table, show, exp_a, exp_b, missing = run_many(
        db,
        ("datasets", "list", "--json"),
        ("datasets", "diff", db.v1[:8], db.v2[:8], "--json"),
        ("datasets", "diff", db.v2[:12]),  # to its parent, as tables
        ("datasets", "show", "latest", "--json"),
        ("datasets", "export", db.v2[:10], "--format", "dvc", "--out", str(db.tmp / "a")),
        ("datasets", "export", db.v2, "--format", "dvc", "--out", str(db.tmp / "b")),
        ("datasets", "show", "0badc0de0"),
    )
    for done in (listed, diff, table, show, exp_a, exp_b):
        assert done.returncode == 0, done.stderr
    assert [(d["id"], d["parent"], d["n_items"], d["models"]) for d in json.loads(listed.stdout)] == [
        (db.v1, None, 45, []),
        (db.v2, db.v1, 51, [1, 2, 3]),
    ]
    d = json.loads(diff.stdout)
    assert d["counts"] == {"added": 6, "relabelled": 3, "removed": 0, "unchanged": 42}
    assert sorted((r["external_id"], r["old"], r["new"]) for r in d["relabelled"]) == [
        ("p0", "a", "b"),
        ("p2", "c", "a"),
        ("p3", "a", "b"),
    ]
    assert f"{db.v1[:12]} → {db.v2[:12]}: 6 added, 3 relabelled, 0 removed, 42 unchanged" in table.stdout
    assert "relabelled (3)" in table.stdout and "added (6)" in table.stdout
    shown = json.loads(show.stdout)
    assert shown["id"] == db.v2 and shown["split_counts"]["train"] + shown["split_counts"]["eval"] == 51
    assert shown["source_counts"] == {"review": 51}
    a, b = db.tmp / "a" / db.v2[:12], db.tmp / "b" / db.v2[:12]
    assert f"wrote {a}" in exp_a.stdout
    manifest = json.loads((a / "manifest.json").read_text())
    for name, info in manifest["files"].items():
        assert hashlib.sha256((a / name).read_bytes()).hexdigest() == info["sha256"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in [*manifest["files"], "manifest.json"])
    fails(missing, "not_found", "does not exist")


def test_models_show_promote_rollback(db: Db) -> None:
    deploy = db.tmp / "deploy"
    show, table, rejected, unknown = run_many(
        db,
        ("models", "show", "2", "--json"),
        ("models", "show", "champion"),
        ("models", "promote", "3", "--deploy-dir", str(deploy)),
        ("models", "promote", "9"),
    )
    shown = json.loads(show.stdout)
    gate = shown["gate"]
    assert (shown["status"], shown["aliases"], gate["test"], gate["passed"]) == (
        "champion",
        ["champion"],
        "not_significantly_worse",
        True,
    )
    assert gate["p_value"] == 1.0 and (gate["wins"], gate["losses"]) == (0, 0) and gate["n_eval"] >= 3
    lo, hi = gate["accuracy_interval_95"]
    assert 0 < lo <= gate["challenger_accuracy"] <= hi <= 1
    assert table.returncode == 0 and "gate p_value" in table.stdout and "accuracy_interval_95" in table.stdout
    fails(rejected, "conflict", "was rejected by its gate and cannot be promoted")
    fails(unknown, "not_found", "model version 9 does not exist")
    assert not deploy.exists()

    done = run(db, "models", "promote", "v2", "--env", "prod", "--deploy-dir", str(deploy), "--json")
    assert done.returncode == 0, done.stderr
    promoted = json.loads(done.stdout)
    assert promoted["champion"]["version"] == 2 and promoted["replaced"] is None
    assert sorted(Path(p).relative_to(deploy).as_posix() for p in promoted["manifests"]) == [
        "dev/toy.json",
        "prod/toy.json",
    ]
    assert json.loads((deploy / "prod" / "toy.json").read_text())["model_version"] == 2

    done = run(db, "models", "rollback", "--deploy-dir", str(deploy))
    assert done.returncode == 0, done.stderr
    assert "v1 is the champion (was v2" in done.stdout
    assert json.loads((deploy / "prod" / "toy.json").read_text())["model_version"] == 1
    assert json.loads((deploy / "dev" / "toy.json").read_text())["model_version"] == 1

    store = SqlStore(db.url)  # a second project: the default no longer applies
    Workspace(store).create_project({**CONFIG, "name": "other"})
    store.close()
    listed, again, ambiguous = run_many(
        db,
        ("models", "list", "--project", "toy", "--json"),
        ("models", "rollback", "--project", "toy"),
        ("models", "list"),
    )
    assert [(m["version"], m["status"], m["aliases"]) for m in json.loads(listed.stdout)] == [
        (1, "champion", ["champion"]),
        (2, "retired", []),
        (3, "rejected", []),
    ]
    fails(again, "conflict", "there is no previous version")
    fails(ambiguous, "invalid", "choose one with --project")
