"""The model lives elsewhere: predictions in over REST, a pipeline that trains outside, the gate.

A real uvicorn server on 127.0.0.1 (SQLite and PostgreSQL). The production model ``blobs@v1``
is a scikit-learn model fitted here on the first feature only (it cannot tell ``a`` from ``c``);
the inference job sends its predictions with the records; reviewers work the queue; the
pipeline acts on ``model.retrain_due``, exports the dataset version and its eval split, fits
``blobs@v2`` on both features outside loopwright, registers it, uploads its eval predictions and
gates it: v2 is promoted and its manifest names its artifact URI; a worse ``blobs@v3`` is
rejected. Bad input is refused with nothing written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import test_loop
from live import live_server
from loopwright import Client, Conflict, Invalid, NotFound, Workspace, wire
from loopwright.domain import ModelStatus
from loopwright.loop.ingest import IngestReport
from loopwright.loop.ports import Store
from loopwright.service import Role, create_app
from loopwright.store.sql import SqlStore
from people import members

LABELS = ["a", "b", "c"]
CONFIG: dict[str, Any] = {
    "name": "ext",
    "labels": LABELS,
    "modality": "tabular",
    "features": ["x", "y"],
    "model": {"kind": "external"},
    "routing": {"accept_threshold": 0.9, "audit_rate": 0.2},
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "uncertain"}],
    "retrain": {"every_n_labels": 40, "min_labels": 10, "eval_fraction": 0.3},
    "gate": {"min_eval_items": 5},
}
ROLES = {"lead": Role.LEAD, "svc": Role.SERVICE, "ann1": Role.ANNOTATOR}
ARTIFACT = "s3://models/blobs/v2/model.onnx"


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    ws: Workspace

    def client(self, user: str) -> Client:
        return Client(self.url, self.tokens[user], timeout=30)


@pytest.fixture
def server(store: SqlStore) -> Iterator[Server]:
    ws = Workspace(store)
    ws.create_project(CONFIG)
    auth, tokens = members("ext", ROLES)
    app = create_app(ws, authenticator=auth)
    with live_server(app) as url:
        yield Server(url, tokens, ws)


def _fit(X: np.ndarray, y: list[str]) -> LogisticRegression:
    return LogisticRegression(C=100.0, max_iter=1000).fit(X, y)


def _rows(model: LogisticRegression, X: np.ndarray) -> list[dict[str, float]]:
    """Probabilities keyed by label, renormalised in float64 so they sum to 1 exactly enough."""
    proba = model.predict_proba(X)
    out = []
    for row in proba:
        p = {str(c): float(v) for c, v in zip(model.classes_, row, strict=True)}
        out.append({label: p.get(label, 0.0) for label in LABELS})
    return out


def _records(
    model: LogisticRegression, columns: list[int], n: int, start: int, ref: str
) -> list[dict[str, Any]]:
    data = test_loop.points(n, seed=start, start=start)
    X = np.asarray([[r["payload"]["x"], r["payload"]["y"]] for r, _ in data])
    return [
        {
            **r,
            "prediction": {"model": ref, "probabilities": p},
            "embedding": [r["payload"]["x"], r["payload"]["y"], 1.0],
        }
        for (r, _), p in zip(data, _rows(model, X[:, columns]), strict=True)
    ]


def _truth(n: int) -> dict[str, str]:
    return {r["external_id"]: label for r, label in test_loop.points(n)}


def _work_queue(client: Client, truth: dict[int, str]) -> int:
    """Answer every task truthfully (annotators see items blind: by item id)."""
    done = 0
    while (task := client.next_task("ext")) is not None:
        assert isinstance(task, wire.Assignment)
        client.submit(task.lease.id, truth[task.item.id])
        done += 1
    return done


def _counts(store: Store, project: str) -> tuple[int, int, int]:
    """Items, model versions and uploaded predictions of a project."""
    with store.unit_of_work() as uow:
        pid = uow.projects.get(project).id
        models = uow.models.list(pid)
        uploaded = sum(len(uow.model_predictions.for_model(m.id)) for m in models)
        return uow.items.count(pid), len(models), uploaded


def test_inference_job_reviewers_pipeline_and_gate(server: Server, tmp_path: Path) -> None:
    svc, lead, ann = server.client("svc"), server.client("lead"), server.client("ann1")
    seed = test_loop.points(30, seed=99, start=1000)
    X_seed = np.asarray([[r["payload"]["x"], r["payload"]["y"]] for r, _ in seed])
    v1 = _fit(X_seed[:, [0]], [label for _, label in seed])  # x only: a and c look alike

    # The inference job: 150 records with v1's predictions (and embeddings) over REST.
    records = _records(v1, [0], 150, 0, "blobs@v1")
    report = svc.ingest("ext", records)
    assert report.created == 150
    models = lead.models("ext")
    assert [(m.version, m.kind, m.name, m.tag, m.status) for m in models] == [
        (1, "external", "blobs", "v1", "champion")
    ]
    first = [e for e in lead.events("ext").events if e.action == "model.registered"]
    assert [(e.data["model"], e.data["source"]) for e in first] == [("blobs@v1", "first_sight")]
    loop = server.ws.project("ext")
    with server.ws.store.unit_of_work() as uow:
        item = uow.items.by_external_ids(loop.project.id, ["p1"])["p1"]
        stored = uow.predictions.for_item(item.id)[-1]
        assert stored.model_version_id == models[0].id
        assert stored.probabilities == records[1]["prediction"]["probabilities"]  # stored, not re-scored
        assert uow.embeddings.get_many([item.id]) == {item.id: records[1]["embedding"]}
    routed = {o.external_id: o for o in report.outcomes}
    accepted = [o for o in report.outcomes if o.route == "auto_accept"]
    assert accepted and all(o.label == "b" for o in accepted)  # only b is told apart by x
    assert routed["p1"].confidence == pytest.approx(max(records[1]["prediction"]["probabilities"].values()))

    # Reviewers work the queue; the scheduler asks whether a retrain is due: an event, no training.
    truth = _truth(150)
    answered = _work_queue(ann, {o.item_id: truth[o.external_id] for o in report.outcomes})
    assert answered == sum(o.route == "review" for o in report.outcomes)
    with pytest.raises(Conflict, match="lives elsewhere"):
        lead.retrain("ext")
    assert loop.maybe_retrain() is None
    assert loop.maybe_retrain() is None  # once per trigger
    due = [e for e in svc.events("ext", limit=1000).events if e.action == "model.retrain_due"]
    assert len(due) == 1 and due[0].data["trigger"] == "labels"
    assert due[0].data["champion"] == "blobs@v1" and due[0].data["resolutions_seen"] == answered
    dataset = due[0].data["dataset_version"]

    # The pipeline: export the dataset version and its eval split, train v2 outside.
    rows = [json.loads(line) for line in svc.export("ext", dataset, "jsonl").splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    evals = svc.eval_split("ext", dataset)
    assert evals.labels is False and all(i.label is None for i in evals.items)
    assert {r["external_id"] for r in rows if r["split"] == "eval"} == {i.external_id for i in evals.items}
    audited = {o.external_id for o in report.outcomes if o.reason == "audit"} & {
        r["external_id"] for r in rows
    }
    assert audited and not audited & {r["external_id"] for r in train}  # audit labels never train
    assert all(i.embedding is not None and len(i.embedding) == 3 for i in evals.items)
    # Its own earlier training data plus the new labels (b items are auto-accepted, so the
    # resolved labels alone hold few of them), on both features this time.
    X_train = np.vstack([X_seed, [[r["payload"]["x"], r["payload"]["y"]] for r in train]])
    y_train = [label for _, label in seed] + [r["label"] for r in train]
    v2 = _fit(X_train, y_train)
    X_eval = np.asarray([[i.payload["x"], i.payload["y"]] for i in evals.items])
    v2_eval = dict(zip([i.external_id for i in evals.items], _rows(v2, X_eval), strict=True))

    registered = svc.register_model(
        "ext",
        "blobs",
        "v2",
        artifact_uri=ARTIFACT,
        dataset_version=dataset[:12],
        metadata={"framework": "sklearn"},
    )
    assert (registered.version, registered.status, registered.dataset_version_id) == (2, "candidate", dataset)

    # A set that misses eval items: a 422 that counts them, nothing stored.
    before = _counts(server.ws.store, "ext")
    short = dict(list(v2_eval.items())[:-3])
    with pytest.raises(Invalid, match=rf"misses 3 of the {len(v2_eval)} evaluation items") as exc:
        svc.upload_predictions("ext", "blobs@v2", short)
    assert all(e in str(exc.value) for e in list(v2_eval)[-3:])
    assert _counts(server.ws.store, "ext") == before
    with pytest.raises(NotFound, match="blobs@v9 is not registered"):
        svc.upload_predictions("ext", "blobs@v9", v2_eval)
    with pytest.raises(NotFound):
        svc.gate("ext", "blobs@v9")

    up = svc.upload_predictions("ext", "blobs@v2", v2_eval)
    assert (up.model, up.stored, up.eval_items) == ("blobs@v2", len(v2_eval), len(v2_eval))
    gated = svc.gate("ext", "blobs@v2")
    assert gated.promoted and gated.model.status == "champion" and gated.model.aliases == ["champion"]
    assert gated.gate["champion_version"] == 1 and gated.gate["n_eval"] == len(v2_eval)
    assert gated.gate["challenger_accuracy"] > gated.gate["champion_accuracy"]
    assert gated.gate["wins"] > 0 and gated.gate["slices"]
    done = loop.deploy(tmp_path / "deploy", ["prod"])
    manifest = json.loads((tmp_path / "deploy" / "prod" / "ext.json").read_text())
    assert [p.name for p in done.manifests] == ["ext.json", "ext.json"]
    assert (manifest["artifact_uri"], manifest["model"], manifest["model_version"]) == (
        ARTIFACT,
        "blobs@v2",
        2,
    )
    assert manifest["dataset_version"] == dataset

    # A worse challenger (x only again, trained on the same data): rejected, champion stays.
    v3 = _fit(X_train[:, [0]], y_train)
    svc.register_model("ext", "blobs", "v3", artifact_uri="s3://models/blobs/v3", dataset_version=dataset)
    svc.upload_predictions("ext", "blobs@v3", dict(zip(v2_eval, _rows(v3, X_eval[:, [0]]), strict=True)))
    rejected = svc.gate("ext", "blobs@v3")
    assert not rejected.promoted and rejected.model.status == "rejected"
    assert rejected.gate["champion_version"] == 2 and "failed" in rejected.gate["reason"]
    assert lead.model("ext", "champion").name == "blobs" and lead.model("ext", "champion").tag == "v2"
    with pytest.raises(Conflict, match="only a candidate is gated"):
        svc.gate("ext", "blobs@v3")

    # The job now sends v2's predictions: routed from them, lineage names v2.
    later = svc.ingest("ext", _records(v2, [0, 1], 30, 500, "blobs@v2"))
    assert later.created == 30
    lineage = lead.lineage_of_item("ext", "p500")
    assert [(p["model_version"], p["model"]) for p in lineage.predictions] == [(2, "blobs@v2")]


def _bad(records: list[dict[str, Any]], field: str, value: Any) -> list[dict[str, Any]]:
    out = [dict(r) for r in records]
    out[1] = {**out[1], field: value}
    return out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "prediction",
            {"model": "blobs@v1", "probabilities": {"a": 0.5, "b": 0.5, "z": 0.0}},
            "unknown label",
        ),
        (
            "prediction",
            {"model": "blobs@v1", "probabilities": {"a": 0.5, "b": 0.5}},
            "missing label(s) ['c']",
        ),
        ("prediction", {"model": "blobs@v1", "probabilities": {"a": 0.5, "b": 0.6, "c": -0.1}}, "≥ 0"),
        ("prediction", {"model": "blobs@v1", "probabilities": {"a": 0.5, "b": 0.4, "c": 0.0}}, "sum to 0.9"),
        (
            "prediction",
            {"model": "blobs@v1", "probabilities": {"a": "x", "b": 0.5, "c": 0.5}},
            "finite number",
        ),
        (
            "prediction",
            {"model": "blobs", "probabilities": {"a": 1.0, "b": 0.0, "c": 0.0}},
            "<name>@<version>",
        ),
        (
            "prediction",
            {"model": "bl obs@1", "probabilities": {"a": 1.0, "b": 0.0, "c": 0.0}},
            "<name>@<version>",
        ),
        ("embedding", [1.0, 2.0], "length 2; this project's embeddings have length 3"),
        ("embedding", [1.0, "x", 2.0], "finite numbers only"),
    ],
)
def test_malformed_predictions_are_refused_over_rest(
    server: Server, field: str, value: Any, message: str
) -> None:
    svc = server.client("svc")
    v1 = _fit(np.asarray([[0.0], [12.0], [0.1]]), ["a", "b", "c"])
    svc.ingest("ext", _records(v1, [0], 3, 0, "blobs@v1"))  # fixes the embedding length at 3
    before = _counts(server.ws.store, "ext")
    with pytest.raises(Invalid) as exc:
        svc.ingest("ext", _bad(_records(v1, [0], 5, 100, "blobs@v1"), field, value))
    assert message in str(exc.value) and f"[1].{field}" in str(exc.value)
    assert "nothing was ingested" in str(exc.value)
    assert _counts(server.ws.store, "ext") == before


def test_sum_tolerance_scales_with_the_labels(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    ok = {"a": 0.5, "b": 0.5 - 2.9e-6, "c": 0.0}  # off by 2.9e-6 < 3 · 1e-6
    off = {"a": 0.5, "b": 0.5 - 3.2e-6, "c": 0.0}
    record = {"external_id": "t", "payload": {"x": 0.0, "y": 0.0}}
    with pytest.raises(Invalid, match=r"tolerance 3e-06"):
        loop.ingest([{**record, "prediction": {"model": "m@1", "probabilities": off}}])
    report = loop.ingest([{**record, "prediction": {"model": "m@1", "probabilities": ok}}])
    assert report.created == 1 and loop.models()[0].ref == "m@1"


CERTIFIED: dict[str, Any] = {
    **CONFIG,
    "name": "cert",
    "routing": {"audit_rate": 0.5, "certify": {"epsilon": 0.2, "delta": 0.2}},
}


def _confident(label: str) -> dict[str, float]:
    return {x: (0.96 if x == label else 0.02) for x in LABELS}


def test_certificate_is_for_the_model_that_made_the_predictions(store: SqlStore) -> None:
    """The audit evidence of an external champion is its stored predictions vs the audit labels;
    a batch carrying another version's predictions is not covered by its certificate."""
    loop = Workspace(store).create_project(CERTIFIED)
    data = test_loop.points(120)
    batch = [{**r, "prediction": {"model": "m@1", "probabilities": _confident(y)}} for r, y in data]
    first: IngestReport = loop.ingest(batch)
    assert first.count(reason="uncertified") + first.count(reason="audit") == 120  # no evidence yet
    test_loop.label_all(loop, dict((r["external_id"], y) for r, y in data))
    cert = loop.certify()
    assert cert is not None and cert.model_version_id == loop.model("m@1").id
    assert cert.n_audited == first.count(reason="audit") and cert.n_errors == 0 and cert.threshold is not None
    more = test_loop.points(20, start=200)
    own = loop.ingest(
        [{**r, "prediction": {"model": "m@1", "probabilities": _confident(y)}} for r, y in more]
    )
    assert own.count(route="auto_accept") > 0  # type: ignore[arg-type]
    other = test_loop.points(20, start=300)
    foreign = loop.ingest(
        [{**r, "prediction": {"model": "m@2", "probabilities": _confident(y)}} for r, y in other]
    )
    assert foreign.count(route="auto_accept") == 0  # type: ignore[arg-type]
    assert loop.model("m@2").status is ModelStatus.CANDIDATE


def test_registered_ahead_and_unknown_dataset(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    with pytest.raises(NotFound, match="dataset version"):
        loop.register_model("m", "2", dataset_version="deadbeef00")
    m = loop.register_model("m", "2", artifact_uri="file:///m2", metadata={"epochs": 3})
    assert (m.ref, m.kind, m.artifact_uri, m.status) == (
        "m@2",
        "external",
        "file:///m2",
        ModelStatus.CANDIDATE,
    )
    with pytest.raises(Conflict, match="registered already"):
        loop.register_model("m", "2")
    # Its predictions arriving later are stored under the same version; no second registration.
    loop.ingest(
        [
            {
                "external_id": "q",
                "payload": {"x": 0, "y": 0},
                "prediction": {"model": "m@2", "probabilities": _confident("a")},
            }
        ]
    )
    assert [v.ref for v in loop.models()] == ["m@2"]
    registered = [e for e in loop.events(limit=100) if e.action == "model.registered"]
    assert [e.data["source"] for e in registered] == ["registered"]


def _labelled_external_project(loop: Any, n: int = 90) -> str:
    """Ingest ``n`` records carrying ``m@1`` (x only) predictions, label them; the dataset id."""
    data = test_loop.points(n)
    seed = test_loop.points(30, seed=99, start=1000)
    v1 = _fit(np.asarray([[r["payload"]["x"]] for r, _ in seed]), [y for _, y in seed])
    X = np.asarray([[r["payload"]["x"]] for r, _ in data])
    rows = _rows(v1, X)
    loop.ingest(
        [
            {**r, "prediction": {"model": "m@1", "probabilities": p}}
            for (r, _), p in zip(data, rows, strict=True)
        ]
    )
    test_loop.label_all(loop, {r["external_id"]: y for r, y in data})
    return str(loop.snapshot().id)


def test_cli_register_upload_gate_writes_the_manifest(store_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    ws = Workspace(SqlStore(store_url))
    loop = ws.create_project(CONFIG)
    dataset = _labelled_external_project(loop)
    evals = loop.eval_split(dataset, with_labels=True)["items"]
    good = tmp_path / "v2.jsonl"
    good.write_text(
        "".join(
            json.dumps({"external_id": i["external_id"], "probabilities": _confident(i["label"])}) + "\n"
            for i in evals
        )
    )
    ws.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loopwright", "models", *args, "--db", store_url, "--project", "ext"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        )  # fmt: skip

    done = cli(
        "register", "m@2", "--artifact-uri", "gs://b/m2", "--dataset", dataset[:10], "--metadata", '{"a": 1}'
    )
    assert done.returncode == 0 and "registered m@2 as v2 (candidate)" in done.stdout, done.stderr
    short = tmp_path / "short.jsonl"
    short.write_text("".join(good.read_text().splitlines(keepends=True)[1:]))
    done = cli("upload", "m@2", str(short))
    assert done.returncode == 2 and f"misses 1 of the {len(evals)} evaluation items" in " ".join(
        done.stderr.split()
    )
    assert "Traceback" not in done.stderr
    done = cli("upload", "m@2", str(good))
    assert done.returncode == 0 and f"stored {len(evals)} predictions of m@2" in done.stdout, done.stderr
    done = cli("gate", "m@2", "--deploy-dir", str(tmp_path / "deploy"), "--env", "staging")
    assert done.returncode == 0 and "m@2: promoted to champion" in done.stdout, done.stdout + done.stderr
    manifest = json.loads((tmp_path / "deploy" / "staging" / "ext.json").read_text())
    assert (manifest["model"], manifest["artifact_uri"], manifest["dataset_version"]) == (
        "m@2",
        "gs://b/m2",
        dataset,
    )


def test_embeddings_drive_duplicates_drift_and_diversity(store: SqlStore) -> None:
    """Near-duplicates by cosine link to the original; the drift domain classifier and the
    k-center queue order read the embeddings, not the payloads."""
    config = {
        **CONFIG,
        "name": "emb",
        "embedding": {"dim": 4, "duplicate_threshold": 0.999},
        "drift": {"window": 30, "check_on_ingest": True},
        "active": {"strategy": "kcenter"},
        "routing": {"accept_threshold": 0.99, "audit_rate": 0.0},
    }
    loop = Workspace(store).create_project(config)
    rng = np.random.default_rng(0)
    flat = {"a": 0.4, "b": 0.3, "c": 0.3}  # unsure: everything goes to review, ranked

    def batch(start: int, n: int, shift: float) -> list[dict[str, Any]]:
        vectors = rng.normal(0, 1, (n, 4)) + np.asarray([shift, 0, 0, 0])
        return [
            {
                "external_id": f"e{start + i}",
                "payload": {"x": 1.0, "y": 1.0},  # the same payload: only the embeddings differ
                "prediction": {"model": "m@1", "probabilities": flat},
                "embedding": v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]

    first = batch(0, 40, 0.0)
    report = loop.ingest(first)
    assert report.drift is None  # nothing before it
    priorities = {o.external_id: o for o in report.outcomes}
    assert len(priorities) == 40
    with store.unit_of_work() as uow:
        tasks = [uow.tasks.for_item(o.item_id)[0] for o in report.outcomes]
    assert len({round(t.priority, 6) for t in tasks}) == 40  # k-center ranked all 40 by embedding

    copy = {**first[3], "external_id": "dup", "embedding": [x * 2.0 for x in first[3]["embedding"]]}
    same = loop.ingest([copy])
    assert same.created == 1
    assert loop.lineage_of_item("dup")["item"]["id"] == same.outcomes[0].item_id
    with store.unit_of_work() as uow:
        item = uow.items.get(same.outcomes[0].item_id)
    assert item.metadata["duplicate_of"] == "e3"

    shifted = loop.ingest(batch(100, 40, 6.0))
    assert shifted.drift is not None and shifted.drift["drift"] is True
    assert shifted.drift["domain_classifier_auc"] > 0.9
    assert all(f.startswith("embedding[") for f in shifted.drift["drifted"])
    assert shifted.count(reason="uncertified") == 40  # a changed world: the whole batch to review
    with pytest.raises(Invalid, match="length 3; this project's embeddings have length 4"):
        loop.ingest([{**first[0], "external_id": "bad", "embedding": [1.0, 2.0, 3.0]}])


def test_external_project_retrain_due_once_per_trigger(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    with pytest.raises(Conflict, match="never trains"):
        loop.retrain()
    assert loop.maybe_retrain() is None and loop.events(limit=500)[-1].action != "model.retrain_due"
    _labelled_external_project(loop, 90)
    assert loop.retrain_due()
    loop.maybe_retrain()
    loop.maybe_retrain()
    due = [e for e in loop.events(limit=1000) if e.action == "model.retrain_due"]
    assert len(due) == 1 and due[0].data["trigger"] == "labels"
    assert not loop.retrain_due()
    assert [m.ref for m in loop.models()] == ["m@1"]  # nothing was trained


def test_builtin_retrain_is_gated_against_stored_predictions_then_mixed_batches(store: SqlStore) -> None:
    """A default project whose first model arrived with the records: loopwright's challenger is
    judged against that champion's stored predictions (not the baseline); afterwards a batch may
    mix carried predictions with items the in-process champion scores."""
    routing = {"accept_threshold": 1.0, "audit_rate": 0.2}  # every item reviewed: b is labelled too
    config = {**CONFIG, "name": "mixed", "model": {"kind": "default"}, "routing": routing}
    loop = Workspace(store).create_project(config)
    _labelled_external_project(loop, 90)
    out = loop.retrain()
    assert out.gate.test == "not_significantly_worse" and out.gate.champion_accuracy is not None
    assert out.model.gate is not None and out.model.gate["champion_version"] == 1
    assert out.promoted and loop.model("champion").version == 2 and loop.model("champion").kind == "builtin"
    data = test_loop.points(6, start=700)
    batch = [
        {**r, "prediction": {"model": "m@1", "probabilities": _confident(y)}} if i % 2 else r
        for i, (r, y) in enumerate(data)
    ]
    report = loop.ingest(batch)
    with store.unit_of_work() as uow:
        made = [uow.predictions.for_item(o.item_id)[-1].model_version_id for o in report.outcomes]
    m1, v2 = loop.model("m@1").id, loop.model(2).id
    assert made == [v2, m1, v2, m1, v2, m1]
    assert [o.label for o in report.outcomes] == [y for _, y in data]
