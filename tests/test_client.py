"""``loopwright.Client`` against a real uvicorn server on 127.0.0.1 (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import test_loop
from live import live_server
from loopwright import Client, Conflict, Invalid, NotFitted, NotFound, UnknownLabel, Workspace, wire
from loopwright.client import ApiError, ServiceUnreachable
from loopwright.service import Role, create_app
from loopwright.store.sql import SqlStore
from loopwright.store.sql.jobs import JobWorker, SqlJobs
from people import members

CONFIG: dict[str, Any] = {
    **test_loop.CONFIG,
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "uncertain"}],  # one label per item
}
ROLES = {"lead": Role.LEAD, "svc": Role.SERVICE, "ann1": Role.ANNOTATOR, "view": Role.VIEWER}


@dataclass
class Server:
    url: str
    tokens: dict[str, str]

    def client(self, user: str | None) -> Client:
        return Client(self.url, None if user is None else self.tokens[user], timeout=10)


@pytest.fixture
def server(store: SqlStore) -> Iterator[Server]:
    """The REST app on a fresh store, served by uvicorn from a thread on a free port."""
    ws = Workspace(store)
    ws.create_project(CONFIG)
    auth, tokens = members("toy", ROLES, admins=("root",))
    jobs = SqlJobs(store.engine)
    app = create_app(ws, authenticator=auth, jobs=jobs)
    worker = JobWorker(ws, jobs, poll_s=0.05)  # the lifespan is off: background jobs run here
    worker.start()
    try:
        with live_server(app) as url:
            yield Server(url, tokens)
    finally:
        worker.stop()


def truth_of(i: int) -> str:
    return "abc"[i % 3]  # as test_loop.points labels point i


def label_all(lw: Client, truth: dict[str, str]) -> int:
    """Claim and answer truthfully until no task is left; how many were answered. ``truth`` is
    by payload: an annotator's view is blind (no external id, no resolution; service.blind)."""
    done = 0
    while (task := lw.next_task("toy")) is not None:
        assert isinstance(task, wire.Assignment) and task.lease.status == "active"
        result = lw.submit(task.lease.id, truth[json.dumps(task.item.payload, sort_keys=True)])
        assert (result.annotation, result.resolution, result.gold) == (None, None, None)
        done += 1
    return done


def test_full_cycle(server: Server) -> None:
    first, more = test_loop.points(30), test_loop.points(6, seed=30, start=30)
    truth = {r["external_id"]: lab for r, lab in first + more}
    by_payload = {json.dumps(r["payload"], sort_keys=True): lab for r, lab in first + more}
    with (
        server.client("svc") as svc,
        server.client("ann1") as ann,
        server.client("lead") as lead,
        server.client("view") as view,
    ):
        report = svc.ingest("toy", [r for r, _ in first])
        assert (report.created, report.duplicates) == (30, 0)
        assert {(o.route, o.tier, o.reason) for o in report.outcomes} == {("review", 1, "no_model")}
        assert svc.ingest("toy", [first[0][0]]).duplicates == 1
        # the lease verbs, then label everything
        task = ann.next_task("toy", tiers=[1], session_id="s1")
        assert task is not None and task.item.external_id is None  # blind review (service.blind)
        assert task.suggestion is None  # the champion's, and there is none yet
        held = (ann.extend(task.lease.id, 120).expires_at - task.lease.created_at).total_seconds()
        assert 120 <= held < 130  # 120 s from now, not the tier's 300 s from the claim
        assert ann.release(task.lease.id).status == "released"
        assert label_all(ann, by_payload) == 30
        annotations = view.annotations("toy", limit=1000).annotations
        assert len(annotations) == 30 and {a.annotator for a in annotations} == {"ann1"}
        page = view.resolutions("toy", limit=20)
        rest = view.resolutions("toy", after=page.next_after, limit=20)
        assert len(page.resolutions) == 20 and len(rest.resolutions) == 10
        assert sorted(r.label for r in page.resolutions + rest.resolutions) == sorted(
            truth[f"p{i}"] for i in range(30)
        )
        # datasets and models
        v1 = lead.snapshot("toy")
        assert (v1.n_items, v1.label_counts) == (30, {"a": 10, "b": 10, "c": 10})
        svc.ingest("toy", [r for r, _ in more])
        assert label_all(ann, by_payload) == 6
        v2 = lead.snapshot("toy")
        diff = view.diff("toy", v1.id, v2.id)
        assert diff.counts == {"added": 6, "relabelled": 0, "removed": 0, "unchanged": 30}
        assert sorted(r.external_id for r in diff.added) == [f"p{i}" for i in range(30, 36)]
        assert [d.id for d in view.datasets("toy")] == [v1.id, v2.id]
        assert len(view.dataset("toy", v2.id[:10]).entries) == 36
        lines = view.export("toy", "latest").decode().splitlines()
        assert sorted(json.loads(line)["external_id"] for line in lines) == sorted(truth)
        queued = lead.retrain("toy")
        assert (queued.kind, queued.status in ("queued", "running", "succeeded")) == ("retrain", True)
        first = lead.wait_job(queued.id, 60).result or {}
        assert (first["promoted"], first["model_version"], first["dataset_version"]) == (True, 1, v2.id)
        second = lead.retrain("toy", wait=60)
        assert second.result is not None
        assert (second.result["promoted"], second.result["model_version"]) == (True, 2)
        assert lead.job(second.id) == second and [j.id for j in lead.jobs("toy")] == [second.id, queued.id]
        assert view.models("toy")[1].dataset_version_id == v2.id
        assert [(m.version, m.status, m.aliases) for m in view.models("toy")] == [
            (1, "retired", ["previous"]),
            (2, "champion", ["champion"]),
        ]
        back = lead.rollback("toy")
        assert back.champion.version == 1 and back.replaced is not None and back.replaced.status == "retired"
        assert view.model("toy").version == 1 and view.model("toy", "v2").status == "retired"
        assert lead.promote("toy", 2).aliases == ["champion"]
        # the champion at work
        batch = svc.predict("toy", [{"x": 0.0, "y": 0.0}, {"x": 0.0, "y": 12.0}])
        assert [p.label for p in batch.predictions] == ["a", "c"] and batch.labels == ["a", "b", "c"]
        status = view.status("toy")
        assert (status.items, status.resolutions, status.dataset_versions) == (36, 36, 2)
        assert status.champion is not None and status.champion.version == 2
        lineage = view.lineage_of_model("toy", 2)
        assert lineage.dataset_version == v2.id and lineage.train_items + lineage.eval_items == 36
        item = view.lineage_of_item("toy", "p31")
        assert [d["id"] for d in item.dataset_versions] == [v2.id]
        used = item.trained_models if item.dataset_versions[0]["split"] == "train" else item.evaluated_models
        assert used == [1, 2]
        # with a champion, confident items are accepted without review
        report = svc.ingest("toy", [r for r, _ in test_loop.points(3, seed=36, start=36)])
        assert [(o.route, o.label) for o in report.outcomes] == [
            ("auto_accept", truth_of(i)) for i in range(36, 39)
        ]
        assert view.thresholds("toy").routing == "fixed threshold 0.900"
        assert lead.certify("toy") is None and view.drift("toy").last_check is None
        nothing = lead.accept_backlog("toy")  # a fixed threshold certifies nothing: no backlog pass
        assert (nothing.scanned, nothing.accepted, nothing.threshold) == (0, 0, None)
        events = view.events("toy", limit=1000).events
        actions = [e.action for e in events]
        assert actions.count("model.promoted") == 3 and actions.count("model.rolled_back") == 1
        assert view.annotator_stats("toy", "ann1").gold_answers == 0
        gold = lead.add_gold("toy", [{"external_id": "g1", "payload": {"x": 0, "y": 0}, "label": "a"}], [2])
        assert [(t.tier, t.status) for t in gold] == [(2, "gold")]
        assert [p.name for p in view.projects()] == ["toy"]
        assert view.config("toy")["labels"] == ["a", "b", "c"]


def test_errors_map_to_exceptions(server: Server) -> None:
    with server.client("svc") as svc, server.client("ann1") as ann, server.client("root") as root:
        with pytest.raises(NotFound, match=r"^project 'nope' does not exist$"):
            svc.status("nope")
        with pytest.raises(NotFitted, match="no champion model yet"):
            svc.predict("toy", [{"x": 0.0, "y": 0.0}])
        with pytest.raises(Invalid) as bad:
            svc.ingest("toy", [{"external_id": "q", "payload": {"x": "one", "y": 2}}])
        assert bad.value.errors == [("[0].payload", "feature field(s) ['x'] are not numbers")]
        assert bad.value.message.startswith("1 item(s) rejected; nothing was ingested\n  - [0].payload")
        with pytest.raises(Invalid) as empty:
            svc.ingest("toy", [])
        assert [f for f, _ in empty.value.errors] == ["body.items"]
        svc.ingest("toy", [r for r, _ in test_loop.points(2)])
        task = ann.next_task("toy")
        assert task is not None
        with pytest.raises(UnknownLabel) as unknown:
            ann.submit(task.lease.id, "zebra")
        assert unknown.value.code == "unknown_label"
        ann.submit(task.lease.id, "a")
        with pytest.raises(Conflict, match="submitted, not active"):
            ann.submit(task.lease.id, "a")
        with pytest.raises(ApiError) as forbidden:
            ann.retrain("toy")
        assert (forbidden.value.status_code, forbidden.value.code) == (403, "forbidden")
        with pytest.raises(Conflict, match="no champion"):
            root.rollback("toy")
        with pytest.raises(Invalid):
            root.create_project({"name": "x"})
    with server.client(None) as anonymous, pytest.raises(ApiError) as unauth:
        anonymous.projects()
    assert (unauth.value.status_code, unauth.value.code) == (401, "unauthenticated")
    assert "Authorization: Bearer" in unauth.value.message


def test_server_down_is_a_clear_error() -> None:
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with Client(url, "t", timeout=2) as lw, pytest.raises(ServiceUnreachable) as down:
        lw.projects()
    assert down.value.url == url and str(down.value).startswith(
        f"cannot reach the loopwright service at {url}: "
    )


def test_import_loopwright_does_not_import_httpx() -> None:
    code = (
        "import sys, loopwright; assert 'httpx' not in sys.modules;"
        "loopwright.Client; assert 'httpx' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_webhooks_and_dashboard(server: Server) -> None:
    with server.client("lead") as lw:
        created = lw.add_webhook("toy", "https://hooks.example.org/hook", ["items."])  # not sent: no lifespan
        assert created.secret.startswith("whsec_") and created.events == ["items."]
        listed = lw.webhooks("toy")
        hook = "https://hooks.example.org/hook"
        assert [(w.id, w.url, w.active) for w in listed] == [(created.id, hook, True)]
        assert not hasattr(listed[0], "secret")
        page = lw.deliveries("toy", created.id, status="dead")
        assert page.deliveries == [] and page.next_before is None
        with pytest.raises(NotFound):
            lw.retry_delivery("toy", created.id, 12345)
        with pytest.raises(Invalid):
            lw.add_webhook("toy", "ftp://example.org/x")
        with pytest.raises(Invalid, match="loopback"):  # the server's own ports are not for leads
            lw.add_webhook("toy", "http://127.0.0.1:9/hook")
        lw.remove_webhook("toy", created.id)
        assert lw.webhooks("toy") == []
        with pytest.raises(NotFound):
            lw.remove_webhook("toy", created.id)
        board = lw.dashboard("toy")
        assert board["project"] == "toy"
    with server.client("ann1") as lw, pytest.raises(ApiError) as refused:
        lw.webhooks("toy")
    assert (refused.value.status_code, refused.value.code) == (403, "forbidden")
