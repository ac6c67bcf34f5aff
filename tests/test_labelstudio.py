"""Label Studio interop: its JSON export in and out (``loopwright.integrations.labelstudio``), the
import use case (``loopwright.loop.history``), the CLI, and the ML backend routes
(``/label-studio/{project}``) through the real service; and, marked ``labelstudio``, the round
trip and the ML backend against a real Label Studio server in ``.venv-ls``
(``scripts/labelstudio-env.sh``)."""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from loopwright import Loop, Workspace
from loopwright.cli.app import app as cli_app
from loopwright.consensus import agreement_report
from loopwright.errors import Invalid
from loopwright.integrations import labelstudio as ls
from loopwright.learning import default_estimator
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore
from people import members

SMS: dict[str, Any] = {
    "name": "sms",
    "labels": ["ham", "spam"],
    "modality": "text",
    "tiers": [
        {"tier": 1, "name": "crowd", "required_annotations": 2},
        {"tier": 2, "name": "expert", "required_annotations": 1},
    ],
}
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="ham"/><Choice value="spam"/></Choices>'
    "</View>"
)


def choice(*labels: str, from_name: str = "label") -> list[dict[str, Any]]:
    return [
        {"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": list(labels)}}
    ]


def ann(user: Any, *labels: str, at: str = "2026-11-01T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"completed_by": user, "result": choice(*labels), "created_at": at, "updated_at": at, **extra}


def export() -> list[dict[str, Any]]:
    """A hand-written Label Studio JSON export: five tasks, three annotators (ids 1, 2, 3)."""
    return [
        {  # two agree: resolved spam
            "id": 11,
            "data": {"text": "WIN cash now, reply YES"},
            "annotations": [ann(1, "spam"), ann(2, "spam", at="2026-11-01T10:05:00Z")],
            "predictions": [{"model_version": "bert v7", "score": 0.8, "result": choice("spam")}],
        },
        {  # disagree: escalated to tier 2
            "id": 12,
            "data": {"text": "lunch at noon?"},
            "annotations": [ann(1, "ham"), ann(3, "spam")],
            "predictions": [{"model_version": "bert v7", "score": 0.6, "result": choice("ham")}],
        },
        {  # one label and one skip: stays open for a second annotator
            "id": 13,
            "data": {"text": "free entry in a weekly draw"},
            "annotations": [ann(2, "spam"), {**ann(3), "result": [], "was_cancelled": True}],
        },
        {  # the same annotator twice: the newer answer counts
            "id": 14,
            "data": {"text": "ok see you"},
            "annotations": [
                ann(3, "spam", at="2026-11-01T09:00:00Z"),
                ann(3, "ham", at="2026-11-02T09:00:00Z"),
            ],
        },
        {"id": 15, "data": {"text": "no annotation yet"}},
    ]


@pytest.fixture
def ws(store: SqlStore) -> Workspace:
    return Workspace(store)


@pytest.fixture
def sms(ws: Workspace) -> Loop:
    return ws.create_project(SMS)


def imported(loop: Loop, tasks: list[dict[str, Any]], **kw: Any) -> tuple[ls.Parsed, Any]:
    parsed = ls.parse_export(tasks, loop.config.labels, **kw)
    return parsed, loop.import_history(parsed.items, ls.SOURCE, "test")


def votes(loop: Loop) -> set[tuple[str, str, str]]:
    """(external id, annotator, label) of every annotation of the project."""
    with loop._ctx.store.unit_of_work() as uow:
        items = {i.id: i.external_id for i in uow.items.recent(loop.project.id, 1000)}
        return {(items[i], who, label) for i, who, label in uow.annotations.votes(loop.project.id)}


EXPECTED = {
    ("ls-11", "ls:1", "spam"),
    ("ls-11", "ls:2", "spam"),
    ("ls-12", "ls:1", "ham"),
    ("ls-12", "ls:3", "spam"),
    ("ls-13", "ls:2", "spam"),
    ("ls-14", "ls:3", "ham"),
}


# -- import ----------------------------------------------------------------------------------


def test_import_keeps_every_annotation_and_annotator(sms: Loop) -> None:
    parsed, report = imported(sms, export())
    assert (parsed.tasks, parsed.annotations, parsed.cancelled, parsed.replaced) == (5, 8, 1, 1)
    assert parsed.annotators == {"ls:1", "ls:2", "ls:3"}
    assert (report.items_created, report.annotations_added, report.resolved, report.escalated) == (5, 6, 1, 1)
    assert votes(sms) == EXPECTED
    status = sms.status()
    assert (status.items, status.annotations, status.resolutions) == (5, 6, 1)
    resolved = sms.resolutions()
    assert [(r.label, r.method, r.agreement, r.n_annotations) for r in resolved] == [
        ("spam", "majority", 1.0, 2)
    ]
    # the disputed item went one tier up, the half-done ones wait for a second annotator
    assert status.open_tasks_by_tier == {1: 3, 2: 1}
    submitted = [e for e in sms.events(limit=1000) if e.action == "annotation.submitted"]
    assert Counter(e.actor for e in submitted) == {"ls:1": 2, "ls:2": 2, "ls:3": 2}
    assert {e.data["source"] for e in submitted} == {"label-studio"}
    # the scored prediction travelled with its item, from the model Label Studio named
    with sms._ctx.store.unit_of_work() as uow:
        item = uow.items.by_external_ids(sms.project.id, ["ls-11"])["ls-11"]
        (pred,) = uow.predictions.for_item(item.id)
        assert item.payload == {"text": "WIN cash now, reply YES"}
        assert item.metadata["label_studio"] == {"task_id": 11, "from_name": "label", "to_name": "text"}
    assert pred.probabilities == pytest.approx({"spam": 0.8, "ham": 0.2})
    champion = sms.model("champion")  # the model in production: first seen on these records
    assert (champion.ref, champion.id) == ("labelstudio@bert-v7", pred.model_version_id)


def test_import_again_adds_nothing(sms: Loop) -> None:
    imported(sms, export())
    events = len(sms.events(limit=1000))
    _, again = imported(sms, export())
    assert (again.items_created, again.items_existing, again.annotations_added) == (0, 5, 0)
    assert again.annotations_existing == 6
    assert votes(sms) == EXPECTED
    assert len(sms.events(limit=1000)) == events + 1  # only ingest's items.ingested (0 created)


def test_agreement_and_dawid_skene_run_on_the_imported_history(ws: Workspace) -> None:
    loop = ws.create_project({**SMS, "name": "ds", "consensus": {"method": "dawid_skene"}})
    imported(loop, export())
    rows = sorted(votes(loop))
    report = agreement_report(*map(list, zip(*rows, strict=True)))
    assert (report["items"], report["workers"], report["answers"]) == (4, 3, 6)
    assert report["percent_agreement"] == pytest.approx(0.5)  # ls-11 agrees, ls-12 does not
    (resolution,) = loop.resolutions()
    assert (resolution.label, resolution.method) == ("spam", "dawid_skene")


def test_completed_by_email_and_id_field(sms: Loop) -> None:
    tasks = [
        {
            "id": 1,
            "data": {"text": "hi", "msg_id": "m-1"},
            "annotations": [ann({"id": 4, "email": "ana@x.org"}, "ham")],
        }
    ]
    parsed, _ = imported(sms, tasks, id_field="msg_id")
    assert parsed.annotators == {"ls:ana@x.org"}
    assert votes(sms) == {("m-1", "ls:ana@x.org", "ham")}


@pytest.mark.parametrize(
    ("tasks", "field", "message"),
    [
        (
            [{"id": 1, "data": {"text": "x"}, "annotations": [ann(1, "eggs")]}],
            "[0].annotations[0]",
            "unknown label(s) ['eggs']",
        ),
        ([{"id": 1, "data": {}, "annotations": [ann(1, "ham")]}], "[0].data", "the task has no data"),
        ([{"id": 1, "annotations": [ann(1, "ham")]}], "[0].data", "the task has no data"),
        (
            [{"id": 1, "data": {"text": "x"}, "annotations": [ann(1, "ham", "spam")]}],
            "[0].annotations[0]",
            "need a multi-label project",
        ),
        (
            [{"id": 1, "data": {"text": "x"}, "annotations": [{"result": choice("ham")}]}],
            "[0].annotations[0]",
            "completed_by is missing",
        ),
        (
            [
                {
                    "id": 1,
                    "data": {"text": "x"},
                    "annotations": [
                        ann(1, "ham") | {"result": choice("ham") + choice("spam", from_name="other")}
                    ],
                }
            ],
            "[0].annotations[0].result",
            "several controls",
        ),
        ([{"data": {"text": "x"}}], "[0]", "the task has no id"),
        ([{"id": 1, "data": {"text": 5}}], "[0].payload", "must be a string"),
        (
            [{"id": 1, "data": {"text": "x"}, "predictions": [{"score": 0.9, "result": choice("eggs")}]}],
            "[0].predictions[0]",
            "unknown label",
        ),
    ],
)
def test_bad_input_is_refused_with_nothing_written(
    sms: Loop, tasks: list[Any], field: str, message: str
) -> None:
    good = export()[:1]  # a good task beside the bad one is not written either
    with pytest.raises(Invalid) as caught:
        imported(sms, tasks + good)
    assert any(f == field and message in m for f, m in caught.value.errors), caught.value.errors
    assert sms.status().items == 0
    assert sms.status().annotations == 0


def test_malformed_json_is_one_clear_error() -> None:
    with pytest.raises(Invalid, match="not a Label Studio JSON export"):
        ls.load('[{"id": 1, "data": ')
    with pytest.raises(Invalid, match="a list of tasks, not str"):
        ls.load('"tasks"')
    assert ls.load('{"id": 1, "data": {"text": "x"}}') == [{"id": 1, "data": {"text": "x"}}]


def test_several_choice_controls_need_from_name(sms: Loop) -> None:
    task = {
        "id": 1,
        "data": {"text": "x"},
        "annotations": [ann(1) | {"result": choice("ham") + choice("spam", from_name="tone")}],
    }
    parsed, _ = imported(sms, [task], from_name="tone")
    assert votes(sms) == {("ls-1", "ls:1", "spam")}
    assert parsed.items[0].record["metadata"]["label_studio"]["from_name"] == "tone"


def test_multiple_choice_is_one_set_answer_on_a_multilabel_project(ws: Workspace) -> None:
    tags = ws.create_project(
        {**SMS, "name": "tags", "labels": ["sport", "politics", "tech"], "task": "multilabel"}
    )
    tasks = [
        {
            "id": 5,
            "data": {"text": "the minister opens a chip factory"},
            "annotations": [ann(1, "tech", "politics"), ann(2, "politics", "tech", "politics")],
            "predictions": [
                {"score": 0.9, "result": choice("tech")}
            ],  # not carried: sets need per-label scores
        }
    ]
    parsed, report = imported(tags, tasks, multilabel=True)
    assert votes(tags) == {("ls-5", "ls:1", '["politics","tech"]'), ("ls-5", "ls:2", '["politics","tech"]')}
    assert (report.resolved, parsed.predictions, parsed.predictions_skipped) == (1, 0, 1)
    (task,) = ls.to_export(tags.export_history(), ls.Control("label", "text"), multilabel=True)
    assert [a["result"] for a in task["annotations"]] == [choice("politics", "tech")] * 2
    with pytest.raises(Invalid, match="unknown label"):
        ls.parse_export(
            [{"id": 6, "data": {"text": "x"}, "annotations": [ann(1, "tech", "eggs")]}],
            tags.config.labels,
            multilabel=True,
        )


# -- export and the round trip -----------------------------------------------------------------


def test_export_then_import_elsewhere_preserves_every_annotation(ws: Workspace, sms: Loop) -> None:
    imported(sms, export())
    out = ls.to_export(sms.export_history(), ls.Control("label", "text"))
    assert len(out) == 5
    first = next(t for t in out if t["meta"]["loopwright"]["external_id"] == "ls-11")
    assert first["data"] == {"text": "WIN cash now, reply YES"}
    assert [(a["completed_by"], a["result"]) for a in first["annotations"]] == [
        (1, choice("spam")),
        (2, choice("spam")),
    ]
    assert first["meta"]["loopwright"]["resolved"] == {
        "label": "spam", "method": "majority", "agreement": 1.0, "n_annotations": 2,
    }  # fmt: skip
    assert [(p["model_version"], p["score"], p["result"]) for p in first["predictions"]] == [
        ("labelstudio@bert-v7", 0.8, choice("spam")),
        (ls.CONSENSUS_MODEL, 1.0, choice("spam")),
    ]
    text = json.dumps(out)
    copy_of = ws.create_project({**SMS, "name": "copy"})
    parsed, report = imported(copy_of, ls.load(text))
    assert votes(copy_of) == EXPECTED  # same external ids, annotators and labels
    assert parsed.predictions_skipped == 1  # the consensus is not a model's prediction
    assert (report.resolved, report.escalated) == (1, 1)
    again = ls.to_export(copy_of.export_history(), ls.Control("label", "text"))
    strip = lambda tasks: sorted(  # noqa: E731
        (
            t["meta"]["loopwright"]["external_id"],
            json.dumps(t["data"]),
            sorted(json.dumps(a["result"]) + str(a.get("completed_by")) for a in t["annotations"]),
        )
        for t in tasks
    )
    assert strip(again) == strip(out)


def test_annotators_of_other_tools_keep_their_names_through_meta(sms: Loop, ws: Workspace) -> None:
    imported(sms, export()[:1])
    out = ls.to_export(sms.export_history(), ls.Control("label", "text"))
    # a loopwright reviewer has no Label Studio id: named in the annotation's meta instead
    out[0]["annotations"][0].pop("completed_by")
    out[0]["annotations"][0]["meta"]["loopwright"]["annotator"] = "alice"
    other = ws.create_project({**SMS, "name": "other"})
    imported(other, out)
    assert votes(other) == {("ls-11", "alice", "spam"), ("ls-11", "ls:2", "spam")}


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_import_and_export(tmp_path: Path, store_url: str, sms: Loop) -> None:
    src = tmp_path / "ls.json"
    src.write_text(json.dumps(export()), encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(
        cli_app, ["labelstudio", "import", str(src), "--project", "sms", "--db", store_url, "--json"]
    )
    assert done.exit_code == 0, done.output
    row = json.loads(done.stdout)
    assert (row["items_created"], row["annotations_added"], row["annotators"]) == (
        5,
        6,
        ["ls:1", "ls:2", "ls:3"],
    )
    assert row["left_out"] == {"cancelled": 1, "empty": 0, "replaced_by_newer": 1, "predictions": 0}
    again = runner.invoke(
        cli_app, ["labelstudio", "import", str(src), "--project", "sms", "--db", store_url, "--json"]
    )
    assert json.loads(again.stdout)["annotations_added"] == 0
    dest = tmp_path / "back.json"
    done = runner.invoke(
        cli_app, ["labelstudio", "export", "--project", "sms", "--db", store_url, "--out", str(dest)]
    )
    assert done.exit_code == 0, done.output
    assert "wrote 5 tasks (6 annotations, 1 resolved)" in done.stdout
    assert sum(len(t["annotations"]) for t in json.loads(dest.read_text())) == 6


def test_cli_bad_file_is_one_line_and_nothing_written(
    tmp_path: Path,
    store_url: str,
    sms: Loop,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from loopwright.cli.app import main

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"id": 1, "data": {"text": "x"}, "annotations": [ann(1, "eggs")]}]), encoding="utf-8"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": 1, "data": ', encoding="utf-8")
    for path, message in ((bad, "unknown label(s) ['eggs']"), (broken, "not a Label Studio JSON export")):
        monkeypatch.setattr(
            "sys.argv",
            ["loopwright", "labelstudio", "import", str(path), "--project", "sms", "--db", store_url],
        )
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code == 2
        assert message in capsys.readouterr().err
    assert sms.status().items == 0


# -- the ML backend routes -------------------------------------------------------------------

TOY: dict[str, Any] = {
    "name": "toy",
    "labels": ["a", "b", "c"],
    "modality": "tabular",
    "features": ["x", "y"],
    "routing": {"accept_threshold": 0.99, "audit_rate": 0.0},
}
TOY_CONFIG = (
    '<View><Table name="row" value="$x"/><Choices name="label" toName="row">'
    '<Choice value="a"/><Choice value="b"/><Choice value="c"/></Choices></View>'
)


def basic(token: str, user: str = "labelstudio") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture
def backend(ws: Workspace) -> tuple[TestClient, dict[str, dict[str, str]], Loop]:
    loop = ws.create_project(TOY)
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    y = np.repeat(np.array(["a", "b", "c"]), 20)
    X = centres[np.repeat([0, 1, 2], 20)] + rng.normal(0, 0.7, (60, 2))
    loop.use_model(default_estimator(loop.config, 0).fit(X, y), force=True)
    auth, tokens = members("toy", {"svc": Role.SERVICE, "view": Role.VIEWER})
    headers = {user: basic(token) for user, token in tokens.items()}
    headers["bearer"] = {"Authorization": f"Bearer {auth.issue_token('svc')}"}
    client = TestClient(create_app(ws, authenticator=auth, webhooks=False), raise_server_exceptions=False)
    return client, headers, loop


def test_backend_health_and_setup(backend: Any) -> None:
    client, headers, _ = backend
    assert client.get("/label-studio/toy/health", headers=headers["view"]).json() == {
        "status": "UP", "model_class": "loopwright",
    }  # fmt: skip
    done = client.post(
        "/label-studio/toy/setup",
        json={"project": "3.1700000000", "schema": TOY_CONFIG},
        headers=headers["svc"],
    )
    assert done.status_code == 200 and done.json() == {"model_version": "toy@v1"}
    bad = client.post(
        "/label-studio/toy/setup", json={"project": "3.1", "schema": "<View><Text/>"}, headers=headers["svc"]
    )
    assert bad.status_code == 422 and "not valid XML" in bad.json()["message"]


def test_backend_auth(backend: Any) -> None:
    client, headers, _ = backend
    assert client.get("/label-studio/toy/health").status_code == 401
    assert client.get("/label-studio/toy/health", headers=basic("wrong")).status_code == 401
    assert client.get("/label-studio/toy/health", headers={"Authorization": "Basic %%%"}).status_code == 401
    body = {"tasks": [], "label_config": TOY_CONFIG}
    assert client.post("/label-studio/toy/predict", json=body, headers=headers["view"]).status_code == 403
    assert client.post("/label-studio/nope/predict", json=body, headers=headers["svc"]).status_code == 404


def test_backend_predicts_the_champions_choice_per_task(backend: Any) -> None:
    client, headers, loop = backend
    tasks = [
        {"id": 1, "data": {"x": 0.2, "y": -0.1}},
        {"id": 2, "data": {"x": 11.5, "y": 0.4}},
        {"id": 3, "data": {"text": "no features"}},
    ]
    body = {
        "tasks": tasks,
        "label_config": TOY_CONFIG,
        "project": "3.1700000000",
        "params": {"context": None},
    }
    for who in ("svc", "bearer"):
        done = client.post("/label-studio/toy/predict", json=body, headers=headers[who])
        assert done.status_code == 200, done.text
    results = done.json()["results"]
    proba = loop.predict([t["data"] for t in tasks[:2]])
    assert [r["result"] for r in results] == [
        [{"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": ["a"]}}],
        [{"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": ["b"]}}],
        [],
    ]
    assert [r["score"] for r in results] == [
        round(float(proba[0].max()), 6),
        round(float(proba[1].max()), 6),
        0.0,
    ]
    assert {r["model_version"] for r in results} == {"toy@v1"}
    assert loop.status().items == 0  # predicting stores nothing
    no_choices = client.post(
        "/label-studio/toy/predict", json={**body, "label_config": "<View/>"}, headers=headers["svc"]
    )
    assert no_choices.status_code == 422
    for junk in ({**body, "label_config": 5}, {**body, "tasks": "all"}, {**body, "label_config": "<View"}):
        assert client.post("/label-studio/toy/predict", json=junk, headers=headers["svc"]).status_code == 422


def test_backend_webhook_records_annotations(backend: Any) -> None:
    client, headers, loop = backend
    event: dict[str, Any] = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 3, "label_config": TOY_CONFIG},
        "task": {"id": 41, "data": {"x": 0.1, "y": 0.3}},
        "annotation": {"id": 900, "completed_by": 7, "result": [
            {"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": ["a"]}}
        ]},
    }  # fmt: skip
    done = client.post("/label-studio/toy/webhook", json=event, headers=headers["svc"])
    assert done.status_code == 201, done.text
    assert done.json()["annotations_added"] == 1
    again = client.post(
        "/label-studio/toy/webhook", json={**event, "action": "ANNOTATION_UPDATED"}, headers=headers["svc"]
    )
    assert again.status_code == 201 and again.json()["annotations_added"] == 0
    assert again.json()["annotations_existing"] == 1
    assert votes(loop) == {("ls-41", "ls:7", "a")}

    def row(label: str) -> list[dict[str, Any]]:
        return [{"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": [label]}}]

    bulk = {  # after an import in Label Studio: lists of tasks and annotations
        "action": "ANNOTATIONS_CREATED",
        "project": {"id": 3, "label_config": TOY_CONFIG},
        "task": [{"id": 42, "data": {"x": 12.0, "y": 0.0}}, {"id": 43, "data": {"x": 0.0, "y": 12.0}}],
        "annotation": [
            {"id": 901, "task": 42, "completed_by": 7, "result": row("b")},
            {"id": 902, "task": 42, "completed_by": 8, "result": row("b")},
            {"id": 903, "task": 43, "completed_by": 8, "result": row("c")},
        ],
    }
    done = client.post("/label-studio/toy/webhook", json=bulk, headers=headers["svc"])
    assert done.status_code == 201 and done.json()["annotations_added"] == 3, done.text
    assert votes(loop) == {
        ("ls-41", "ls:7", "a"), ("ls-42", "ls:7", "b"), ("ls-42", "ls:8", "b"), ("ls-43", "ls:8", "c"),
    }  # fmt: skip
    stray = {**bulk, "annotation": [{"id": 904, "task": 99, "completed_by": 7, "result": row("a")}]}
    refused = client.post("/label-studio/toy/webhook", json=stray, headers=headers["svc"])
    assert refused.status_code == 422 and "names task 99" in refused.text
    other = client.post(
        "/label-studio/toy/webhook", json={"action": "PROJECT_UPDATED"}, headers=headers["svc"]
    )
    assert other.status_code == 200 and other.json() == {"status": "Unknown event"}
    bad = copy.deepcopy(event)
    bad["annotation"]["result"][0]["value"]["choices"] = ["zebra"]
    refused = client.post("/label-studio/toy/webhook", json=bad, headers=headers["svc"])
    assert refused.status_code == 422 and "unknown label(s) ['zebra']" in refused.text
    assert loop.status().annotations == 4


# -- against a real Label Studio (pytest -m labelstudio; scripts/labelstudio-env.sh) -----------

LS_VENV = Path(os.environ.get("LOOPWRIGHT_LS_VENV", Path(__file__).resolve().parents[1] / ".venv-ls"))
LS_TOKEN = "loopwright-ls-test-token-0001"  # Label Studio's admin token (a legacy API token)
LS_START_S = 900  # a first start migrates a fresh database: minutes on a busy machine
LS_TEXTS = {  # text → the three annotators' answers (None: not annotated by them)
    "WIN a FREE cruise, reply YES now": ("spam", "spam", "spam"),
    "are we still on for lunch?": ("ham", "ham", None),
    "URGENT: your account is locked, click here": ("spam", "ham", "spam"),
    "see you at the station at six": ("ham", None, "ham"),
    "claim your prize money today": ("spam", "spam", None),
    "can you send me the slides": ("ham", "ham", "ham"),
}


def _ls_binary() -> Path:
    binary = Path(os.environ.get("LOOPWRIGHT_TEST_LABEL_STUDIO") or LS_VENV / "bin" / "label-studio")
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    reason = (
        f"no Label Studio at {binary}: run scripts/labelstudio-env.sh (or set LOOPWRIGHT_TEST_LABEL_STUDIO)"
    )
    if os.environ.get("LOOPWRIGHT_REQUIRE_LABELSTUDIO") == "1":
        pytest.fail(reason + " — LOOPWRIGHT_REQUIRE_LABELSTUDIO=1 makes this a failure", pytrace=False)
    pytest.skip(reason)


class _LabelStudio:
    """One ``label-studio start`` on 127.0.0.1 (its output in ``log``), stopped by ``stop``."""

    def __init__(self, binary: Path, data: Path, log: Path) -> None:
        from live import free_port

        port = free_port()
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            "LABEL_STUDIO_USERNAME": "admin@example.com",
            "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(12),
            "LABEL_STUDIO_USER_TOKEN": LS_TOKEN,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "SSRF_PROTECTION_ENABLED": "false",  # loopwright listens on loopback here: allow it
            "ML_BLOCK_LOCAL_IP": "false",
            # its defaults (1 s to connect and for /health, 3 s for /setup) are short for a busy box
            "ML_CONNECTION_TIMEOUT": "10",
            "ML_TIMEOUT_HEALTH": "15",
            "ML_TIMEOUT_SETUP": "30",
        }
        self.log = log
        self._out = log.open("a")
        cmd = [str(binary), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        headers = {"Authorization": f"Token {LS_TOKEN}"}
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120)

    def wait(self) -> None:
        deadline = time.monotonic() + LS_START_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"label-studio exited with {self.proc.returncode}; see {self.log}")
            try:
                if self.client.get("/api/current-user/whoami").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"label-studio did not answer within {LS_START_S} s; see {self.log}")
            time.sleep(2)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._out.close()


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A Label Studio server on 127.0.0.1 with a fresh data directory and a known admin token
    (or the running one at ``LOOPWRIGHT_TEST_LABEL_STUDIO_URL`` with ``…_TOKEN``).

    A fresh data directory costs minutes of database migrations, so the first run keeps a
    migrated, empty one beside the binary (``<venv>/loopwright-test-data``) and later runs start
    from a copy of it."""
    if running := os.environ.get("LOOPWRIGHT_TEST_LABEL_STUDIO_URL"):
        token = os.environ["LOOPWRIGHT_TEST_LABEL_STUDIO_TOKEN"]
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=running, headers=headers, timeout=120) as client:
            yield client
        return
    binary = _ls_binary()
    tmp = tmp_path_factory.mktemp("label-studio")
    data, log = tmp / "data", tmp / "server.log"
    template = binary.parent.parent / "loopwright-test-data"
    if template.is_dir():
        shutil.copytree(template, data)
    else:
        data.mkdir()
        first = _LabelStudio(binary, data, log)
        try:
            first.wait()  # migrated, with the admin and its token, and nothing else
        finally:
            first.stop()
        partial = template.with_name(template.name + f".{os.getpid()}")
        shutil.copytree(data, partial)
        try:
            partial.rename(template)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(partial, ignore_errors=True)
    server = _LabelStudio(binary, data, log)
    try:
        server.wait()
        yield server.client
    finally:
        server.stop()


def _ls(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code in (status, 200, 201), f"{response.status_code}: {response.text[:2000]}"
    return response.json()


def _ls_project(client: httpx.Client, title: str) -> int:
    return int(
        _ls(client.post("/api/projects", json={"title": title, "label_config": LABEL_CONFIG}), 201)["id"]
    )


def _ls_export(client: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    """A JSON export snapshot with the predictions in full (the quick export lists their ids)."""
    options = {"title": "loopwright test", "serialization_options": {"predictions": {"only_id": False}}}
    snapshot = _ls(client.post(f"/api/projects/{project_id}/exports", json=options), 201)
    assert snapshot["status"] == "completed", snapshot  # no job queue: made in the request
    url = f"/api/projects/{project_id}/exports/{snapshot['id']}/download"
    return list(_ls(client.get(url, params={"exportType": "JSON"})))


def _answers(tasks: list[dict[str, Any]]) -> dict[str, list[tuple[Any, list[str]]]]:
    """text → sorted (completed_by, choices) of its annotations."""
    return {
        t["data"]["text"]: sorted(
            (a["completed_by"], a["result"][0]["value"]["choices"]) for a in t["annotations"]
        )
        for t in tasks
    }


@pytest.mark.labelstudio
@pytest.mark.slow
@pytest.mark.timeout(LS_START_S + 600)
def test_round_trip_and_ml_backend_against_label_studio(label_studio: httpx.Client, ws: Workspace) -> None:
    from browser import live_server

    client = label_studio
    me = _ls(client.get("/api/current-user/whoami"))["id"]
    users = [me] + [
        _ls(client.post("/api/users", json={"email": f"{name}@example.com", "username": name}), 201)["id"]
        for name in (f"ann-{secrets.token_hex(4)}", f"ann-{secrets.token_hex(4)}")
    ]
    source = _ls_project(client, "sms")
    tasks = [
        {
            "data": {"text": text},
            "annotations": [
                {"completed_by": uid, "result": choice(label), "ground_truth": False}
                for uid, label in zip(users, answers, strict=True)
                if label is not None
            ],
            "predictions": [
                {
                    "model_version": "keywords v1",
                    "score": 0.75,
                    "result": choice("spam" if "!" in text or "WIN" in text else "ham"),
                }
            ],
        }
        for text, answers in LS_TEXTS.items()
    ]
    _ls(client.post(f"/api/projects/{source}/import", json=tasks), 201)
    exported = _ls_export(client, source)
    n_annotations = sum(len(t["annotations"]) for t in exported)
    assert (len(exported), n_annotations) == (6, 15)

    # Label Studio → loopwright: every annotation, by its Label Studio user
    loop = ws.create_project(SMS)
    parsed, report = imported(loop, exported)
    assert (report.items_created, report.annotations_added) == (6, 15)
    assert parsed.annotators == {f"ls:{u}" for u in users}
    assert parsed.predictions == 6
    by_text = {t["data"]["text"]: f"ls-{t['id']}" for t in exported}
    assert votes(loop) == {
        (by_text[text], f"ls:{uid}", label)
        for text, answers in LS_TEXTS.items()
        for uid, label in zip(users, answers, strict=True)
        if label is not None
    }

    # loopwright → Label Studio: a new project from loopwright's export, exported again
    back = ls.to_export(loop.export_history(), ls.Control("label", "text"))
    target = _ls_project(client, "sms-from-loopwright")
    _ls(client.post(f"/api/projects/{target}/import", json=back), 201)
    again = _ls_export(client, target)
    assert _answers(again) == _answers(exported)  # same texts, annotators and choices
    assert all(t["meta"]["loopwright"]["external_id"] == by_text[t["data"]["text"]] for t in again)
    consensus = {
        t["data"]["text"]: [p for p in t["predictions"] if p["model_version"] == ls.CONSENSUS_MODEL]
        for t in again
    }
    assert {
        text: [p["result"][0]["value"]["choices"] for p in preds] for text, preds in consensus.items()
    } == {
        text: [[r.label]]
        for text, r in ((h.item.payload["text"], h.resolution) for h in loop.export_history())
        if r is not None
    } | {text: [] for text, preds in consensus.items() if not preds}
    # and that export into loopwright once more adds nothing: the same items, by external id
    _, twice = imported(loop, again)
    assert (twice.items_created, twice.annotations_added) == (0, 0)

    # loopwright as Label Studio's ML backend: predictions appear in its tasks
    texts = list(LS_TEXTS)
    labels = [Counter(a for a in LS_TEXTS[t] if a).most_common(1)[0][0] for t in texts]
    loop.use_model(default_estimator(loop.config, 0).fit(texts, labels), force=True)
    assert isinstance(ws.store, SqlStore)
    auth = SqlAuthenticator(ws.store)
    auth.add_user("ls-backend")
    auth.add_membership("ls-backend", "sms", Role.SERVICE)
    token = auth.issue_token("ls-backend")
    app = create_app(ws, authenticator=auth, webhooks=False)
    with live_server(app) as url:
        check = httpx.get(f"{url}/label-studio/sms/health", auth=("labelstudio", token), timeout=30)
        assert check.json() == {"status": "UP", "model_class": "loopwright"}
        backend = {
            "url": f"{url}/label-studio/sms", "project": target, "title": "loopwright",
            "auth_method": "BASIC_AUTH", "basic_auth_user": "labelstudio", "basic_auth_pass": token,
        }  # fmt: skip
        ml = _ls(client.post("/api/ml", json=backend), 201)
        assert ml["state"] in ("CO", "CONNECTED", "connected"), ml
        _ls(client.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": target},
                        json={"selectedItems": {"all": True, "excluded": []}}))  # fmt: skip
        predicted = _ls_export(client, target)
        mine = [p for t in predicted for p in t["predictions"] if p["model_version"] == "sms@v2"]
        assert len(mine) == 6, [p["model_version"] for t in predicted for p in t["predictions"]]
        proba = loop.predict([{"text": t["data"]["text"]} for t in predicted])
        for t, row in zip(predicted, proba, strict=True):
            (p,) = [p for p in t["predictions"] if p["model_version"] == "sms@v2"]
            assert p["result"][0]["value"]["choices"] == [loop.config.labels[int(row.argmax())]]
            assert p["score"] == pytest.approx(float(row.max()), abs=1e-6)
        # annotations made in Label Studio reach loopwright through the webhook it created
        (hook,) = [
            h
            for h in _ls(client.get("/api/webhooks", params={"project": target}))
            if h["url"].endswith("/webhook")
        ]
        _ls(
            client.patch(
                f"/api/webhooks/{hook['id']}", json={"headers": {"Authorization": f"Bearer {token}"}}
            )
        )
        new = _ls(
            client.post(
                f"/api/projects/{target}/import", json=[{"data": {"text": "free tickets, reply now"}}]
            ),
            201,
        )
        (fresh,) = [t for t in _ls_export(client, target) if t["data"]["text"] == "free tickets, reply now"]
        _ls(client.post(f"/api/tasks/{fresh['id']}/annotations", json={"result": choice("spam")}), 201)
        assert new is not None
        deadline = time.monotonic() + 30
        while ("ls-" + str(fresh["id"]), f"ls:{me}", "spam") not in votes(
            loop
        ) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ("ls-" + str(fresh["id"]), f"ls:{me}", "spam") in votes(loop)
