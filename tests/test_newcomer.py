"""A newcomer's first hour (issue 20, items 1-10): what the README's next steps hit, each
reproduced on a real database and the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from loopwright import Workspace
from loopwright.cli.app import app
from loopwright.cli.demo import shifted
from loopwright.config import ProjectConfig
from loopwright.errors import Invalid
from loopwright.learning import default_estimator
from loopwright.service import create_app
from loopwright.store.sql import SqlStore

runner = CliRunner()

BLOCKED_RUN = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["loopwright", *sys.argv[2:]]
from loopwright.cli.app import main
main()
"""


def run_without(blocked: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a process where the ``blocked`` packages cannot be imported (not installed)."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, blocked, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli(*args: str, catch: bool = False) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=catch)


# -- 1. a command needing an extra says which, in one line, exit 2 ------------------------------


def test_users_add_without_the_service_extra_names_it(tmp_path: Path) -> None:
    done = run_without(
        "fastapi,uvicorn", "users", "add", "alice", "--db", f"sqlite:///{tmp_path}/l.db", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'loopwright[service]'" in lines[0] and "fastapi" in lines[0]


def test_serve_without_the_service_extra_names_it(tmp_path: Path) -> None:
    done = run_without("fastapi,uvicorn", "serve", "--db", f"sqlite:///{tmp_path}/l.db", cwd=tmp_path)
    assert done.returncode == 2 and "loopwright[service]" in done.stderr and "Traceback" not in done.stderr


def test_a_postgresql_url_without_psycopg_names_the_postgres_extra(tmp_path: Path) -> None:
    done = run_without("psycopg", "status", "--db", "postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "pip install 'loopwright[postgres]'" in done.stderr and "Traceback" not in done.stderr


# -- 2. one person can run the loop with the defaults -------------------------------------------


def test_one_annotator_resolves_items_with_the_default_tiers(tmp_path: Path) -> None:
    ws = Workspace(SqlStore(f"sqlite:///{tmp_path}/one.db"))
    loop = ws.create_project({"name": "fruit", "labels": ["apple", "pear"], "features": ["weight", "ratio"]})
    assert [t.required_annotations for t in loop.config.tiers] == [1, 1, 1]
    loop.ingest([{"external_id": f"f{i}", "payload": {"weight": 100.0 + i, "ratio": 1.0}} for i in range(4)])
    while (task := loop.next_task("alice")) is not None:
        loop.submit(task.lease.id, "alice", "apple")
    assert loop.status().resolutions == 4


def test_status_says_why_nothing_resolves(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/two.db"
    ws = Workspace(SqlStore(db))
    loop = ws.create_project(
        {
            "name": "pairs",
            "labels": ["a", "b"],
            "features": ["x"],
            "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 2}, {"tier": 2, "name": "x"}],
        }
    )
    loop.ingest([{"external_id": "p1", "payload": {"x": 1.0}}])
    task = loop.next_task("alice")
    assert task is not None
    loop.submit(task.lease.id, "alice", "a")
    done = cli("status", "--db", db)
    assert done.exit_code == 0
    text = " ".join(done.output.split())
    assert "no resolutions yet: tier 1 needs 2 different people per item" in text
    assert "no retrain until 20 resolved labels (retrain.min_labels); 0 so far" in text


# -- 3. nothing is promoted that other processes cannot load ------------------------------------


def test_a_custom_trainer_whose_model_no_process_can_load_is_refused(tmp_path: Path) -> None:
    """``use_model`` already refused untrusted classes (tests/test_custom_models.py); a retrain
    with a custom ``trainer`` stored whatever it built and promoted it: every other process then
    found no champion it could load. Now it is refused like ``use_model``, and nothing is written."""
    import test_loop
    from custom_classifier import NearestCentre

    store = SqlStore(f"sqlite:///{tmp_path}/custom.db")
    loop = Workspace(store).create_project(test_loop.CONFIG)
    data = test_loop.points(60)
    loop.ingest([r for r, _ in data])
    test_loop.label_all(loop, {r["external_id"]: y for r, y in data})
    dataset = loop.snapshot()
    with pytest.raises(Invalid) as caught:
        loop.retrain(dataset_id=dataset.id, trainer=lambda cfg, seed: NearestCentre())
    message = str(caught.value)
    assert "['custom_classifier.NearestCentre']" in message and "model.trusted_types" in message
    assert loop.models() == []  # nothing stored, nothing promoted
    trusted = {"trusted_types": ["custom_classifier.NearestCentre"]}
    trusting = Workspace(store).create_project({**test_loop.CONFIG, "name": "trusting", "model": trusted})
    trusting.ingest([r for r, _ in data])
    test_loop.label_all(trusting, {r["external_id"]: y for r, y in data})
    outcome = trusting.retrain(trainer=lambda cfg, seed: NearestCentre())
    assert outcome.promoted
    fresh = Workspace(SqlStore(f"sqlite:///{tmp_path}/custom.db")).project("trusting")  # another process
    served = fresh.ingest([r for r, _ in test_loop.points(3, start=60)]).outcomes[0]
    assert served.reason != "model_unavailable"


# -- 4. read-only commands refuse a database that does not exist ---------------------------------


@pytest.mark.parametrize(
    "args",
    [("status",), ("lineage", "item", "x"), ("events",), ("models", "list"), ("retrain",)],
    ids=["status", "lineage", "events", "models", "retrain"],
)
def test_a_missing_database_is_refused_by_name(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "nowhere" / "does-not-exist.db"
    done = cli(*args, "--db", f"sqlite:///{missing}", catch=True)
    assert done.exit_code != 0
    assert isinstance(done.exception, Exception) and str(missing) in str(done.exception)
    assert not missing.exists() and not missing.parent.exists()


def test_a_missing_database_is_one_line_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopwright", "status", "--db", "sqlite:///does-not-exist.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"no database at {tmp_path / 'does-not-exist.db'}" in " ".join(done.stderr.split())
    assert not (tmp_path / "does-not-exist.db").exists()


# -- 5. payloads are validated against the project's schema at ingest ----------------------------


def digits_loop(tmp_path: Path) -> Any:
    ws = Workspace(SqlStore(f"sqlite:///{tmp_path}/digits.db"))
    return ws.create_project(
        {
            "name": "digits",
            "labels": [str(d) for d in range(10)],
            "modality": "image",
            "input_field": "pixels",
        }
    )


def test_a_digit_with_3_pixels_is_refused_with_a_per_record_error(tmp_path: Path) -> None:
    loop = digits_loop(tmp_path)
    X = load_digits().data
    loop.ingest([{"external_id": "d0", "payload": {"pixels": X[0].tolist()}}])
    with pytest.raises(Invalid) as caught:
        loop.ingest(
            [
                {"external_id": "d1", "payload": {"pixels": X[1].tolist()}},
                {"external_id": "d2", "payload": {"pixels": [0.0, 1.0, 2.0]}},
                {"external_id": "d3", "payload": {"pixels": [[1.0, 2.0], [3.0]]}},
                {"external_id": "d4", "payload": {"image": X[4].tolist()}},
            ]
        )
    assert caught.value.errors == [
        ("[1].payload", "field 'pixels' has 3 values; this project's images have 64"),
        ("[2].payload", "field 'pixels' must be numbers"),
        ("[3].payload", "payload lacks the field 'pixels'"),
    ]
    assert loop.status().items == 1  # nothing of the bad batch was written


def test_the_first_batch_fixes_the_image_size_within_itself(tmp_path: Path) -> None:
    loop = digits_loop(tmp_path)
    with pytest.raises(Invalid) as caught:
        loop.ingest(
            [
                {"external_id": "a", "payload": {"pixels": [[0.0] * 8] * 8}},
                {"external_id": "b", "payload": {"pixels": [0.0] * 63}},
            ]
        )
    assert caught.value.errors == [
        ("[1].payload", "field 'pixels' has 63 values; this project's images have 64")
    ]


def test_text_and_tabular_payloads_are_checked_too(tmp_path: Path) -> None:
    ws = Workspace(SqlStore(f"sqlite:///{tmp_path}/t.db"))
    text = ws.create_project({"name": "sms", "labels": ["ham", "spam"], "modality": "text"})
    with pytest.raises(Invalid) as caught:
        text.ingest(
            [{"external_id": "1", "payload": {"text": "   "}}, {"external_id": "2", "payload": {"text": 5}}]
        )
    assert caught.value.errors == [
        ("[0].payload", "field 'text' is empty"),
        ("[1].payload", "field 'text' must be a string"),
    ]
    tab = ws.create_project({"name": "fruit", "labels": ["a", "b"], "features": ["w", "r"]})
    with pytest.raises(Invalid) as caught:
        tab.ingest(
            [{"external_id": "1", "payload": {"w": 1.0}}, {"external_id": "2", "payload": {"w": "1", "r": 2}}]
        )
    assert caught.value.errors == [
        ("[0].payload", "payload lacks feature field(s) ['r']"),
        ("[1].payload", "feature field(s) ['w'] are not numbers"),
    ]


# -- 6. unknown keys and enum values get a "did you mean" --------------------------------------


def test_misspelt_keys_and_values_get_a_suggestion() -> None:
    with pytest.raises(Invalid) as caught:
        ProjectConfig.from_dict(
            {
                "name": "x",
                "labels": ["a", "b"],
                "modality": "txt",
                "model": {"kind": "tfidf_logreg"},
                "routing": {"acept_threshold": 0.5},
                "tiers": [{"tier": 1, "name": "bulk", "requried_annotations": 1}],
                "preprocess": [{"step": "normalize_txt"}],
                "retrian": {},
            }
        )
    assert caught.value.errors == [
        ("modality", "'txt' is not one of ['tabular', 'image', 'text']; did you mean 'text'?"),
        ("model.kind", "'tfidf_logreg' is not one of ['default', 'external', 'http']"),
        ("routing.acept_threshold", "unknown key 'acept_threshold'; did you mean 'accept_threshold'?"),
        (
            "tiers.0.requried_annotations",
            "unknown key 'requried_annotations'; did you mean 'required_annotations'?",
        ),
        (
            "preprocess.0",
            "'normalize_txt' is not one of ['normalize_text', 'drop_empty', 'resize_image', "
            "'normalize_image']; did you mean 'normalize_text'?",
        ),
        ("retrian", "unknown key 'retrian'; did you mean 'retrain'?"),
    ]


def test_an_unknown_key_with_no_near_match_lists_the_keys_there() -> None:
    with pytest.raises(Invalid) as caught:
        ProjectConfig.from_dict({"name": "x", "labels": ["a", "b"], "gate": {"zzz": 1}})
    assert caught.value.errors == [
        ("gate.zzz", "unknown key 'zzz'; keys here: alpha, max_ece_increase, min_eval_items, rule")
    ]


# -- 9. retrain and gold from the command line ---------------------------------------------------


def fruit_db(tmp_path: Path, n: int = 40) -> str:
    db = f"sqlite:///{tmp_path}/fruit.db"
    loop = Workspace(SqlStore(db)).create_project(
        {
            "name": "fruit",
            "labels": ["apple", "pear"],
            "features": ["weight", "ratio"],
            "retrain": {"every_n_labels": 10, "min_labels": 10},
            "gate": {"min_eval_items": 2},
        }
    )
    loop.ingest(
        [
            {"external_id": f"f{i}", "payload": {"weight": 100.0 + 10 * i, "ratio": 1.0 + (i % 2)}}
            for i in range(n)
        ]
    )
    while (task := loop.next_task("alice")) is not None:
        loop.submit(task.lease.id, "alice", "apple" if task.item.payload["ratio"] < 1.5 else "pear")
    return db


def test_retrain_from_the_command_line(tmp_path: Path) -> None:
    db = fruit_db(tmp_path)
    done = cli("retrain", "--db", db, "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["retrained"] is True and result["version"] == 1 and result["promoted"] is True
    again = cli("retrain", "--db", db, "--if-due", "--json")
    assert json.loads(again.output) == {
        "retrained": False,
        "reason": "not due yet (retrain.every_n_labels 10)",
    }


def test_gold_from_a_csv(tmp_path: Path) -> None:
    db = fruit_db(tmp_path, n=2)
    path = tmp_path / "gold.csv"
    path.write_text("external_id,weight,ratio,label\ng1,120,1.0,apple\ng2,130,2.0,pear\n", encoding="utf-8")
    done = cli("gold", str(path), "--db", db, "--tiers", "1")
    assert done.exit_code == 0, done.output
    assert "added 2 gold item(s) as 2 gold task(s)" in done.output
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,weight,ratio,label\ng3,120,1.0,\n", encoding="utf-8")
    with pytest.raises(Invalid, match="1 gold row"):
        cli("gold", str(bad), "--db", db)


# -- 10. no raw dicts in status cells; ingest responses summarise drift --------------------------


def test_status_prints_no_raw_dicts(tmp_path: Path) -> None:
    db = fruit_db(tmp_path)
    assert cli("retrain", "--db", db).exit_code == 0
    done = cli("status", "--db", db)
    assert done.exit_code == 0
    assert "{" not in done.output and "'" not in done.output
    assert "auto_accept: " in done.output or "review: " in done.output


def test_an_ingest_response_summarises_drift_and_links_the_details(tmp_path: Path) -> None:
    ws = Workspace(SqlStore(f"sqlite:///{tmp_path}/d.db"))
    loop = ws.create_project(
        {
            "name": "digits",
            "labels": [str(d) for d in range(10)],
            "modality": "image",
            "drift": {"check_on_ingest": True},
        }
    )
    digits = load_digits()
    X = digits.data
    loop.use_model(
        default_estimator(loop.config, 0).fit(X[200:], digits.target[200:].astype(str)), force=True
    )
    loop.ingest([{"external_id": f"a{i}", "payload": {"pixels": X[i].tolist()}} for i in range(60)])
    client = TestClient(create_app(ws, open_access=True, webhooks=False))
    items = [{"external_id": f"b{i}", "payload": {"pixels": X[100 + i].tolist()}} for i in range(40)]
    body = client.post("/v1/projects/digits/items", json={"items": items}).json()
    drift = body["drift"]
    assert "features" not in drift and drift["n_features"] == 64
    assert drift["details"] == "/v1/projects/digits/drift"
    assert len(json.dumps(body["drift"])) < 2000 and body["drift_alarm"] is None
    moved = [{"external_id": f"c{i}", "payload": {"pixels": shifted(X[200 + i]).tolist()}} for i in range(40)]
    alarm = client.post("/v1/projects/digits/items", json={"items": moved}).json()
    assert alarm["drift"]["drift"] and alarm["drift_alarm"] is None
    back = [{"external_id": f"d{i}", "payload": {"pixels": X[60 + i].tolist()}} for i in range(40)]
    body = client.post("/v1/projects/digits/items", json={"items": back}).json()
    assert body["drift_alarm"] == "retracted"  # one odd batch: the world is as before it


def test_the_readme_walkthrough_snippet_is_not_stale() -> None:
    """The README's serving walk-through names commands that exist (checked by help text)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for command in ("retrain", "gold", "ingest", "users"):
        assert f"loopwright {command}" in readme
        assert cli(command, "--help").exit_code == 0
