"""The lead dashboard use case and its REST route, on a seeded digits run read back from the DB.

The run: gold digits, a tiered simulated team with one sloppy annotator (paused by gold checks),
five rounds with retraining and certification, a pixel shift in the last round (drift on
ingest), an on-demand drift check, an underfitting challenger the gate rejects, and a last batch
nobody works on (so queues are not empty). Every figure is checked against the database.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import create_engine, text

from loopwright.api import connect
from loopwright.cli.demo import demo_config, shifted, underfit
from loopwright.domain import ModelStatus, Route, TaskStatus
from loopwright.loop import Loop
from loopwright.loop.dashboard import NICE_SECONDS, bucket_seconds
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.simulate import SimulatedAnnotator, team, work
from loopwright.store.sql import SqlStore

ROUNDS, ROUND_SIZE, UNWORKED = 5, 80, 40


@functools.cache
def seeded_db() -> Path:
    """A SQLite file with the seeded run (built once per test process; copy it before use)."""
    db = Path(tempfile.mkdtemp(prefix="lw-dashboard-")) / "seed.db"
    digits = load_digits()
    X, y = digits.data, digits.target.astype(str)
    order = np.random.default_rng(0).permutation(len(y))
    gold_ids, stream = order[:15], order[15 : 15 + ROUNDS * ROUND_SIZE + UNWORKED]
    config = demo_config().model_dump(mode="json")
    config["drift"].update(window=ROUND_SIZE, review_sample=20)
    config["routing"].update(  # the old demo's review shape: overlap and disputes to chart
        audit_rate=0.3, audit_target=None, audit_tier=2,
        bands=[{"min_confidence": 0.5, "tier": 1}, {"min_confidence": 0.0, "tier": 2}],
    )  # fmt: skip
    config["tiers"][1]["required_annotations"] = 2
    config["routing"]["certify"].update(epsilon=0.15, delta=0.1, min_evidence=26)
    config["gold"].update(onboarding=5, rate=0.1)
    config["consensus"]["method"] = "majority"  # fast; the dashboard fits Dawid-Skene itself
    ws = connect(f"sqlite:///{db}")
    loop = ws.create_project(config)
    loop.add_gold(
        {"external_id": f"d{i}", "payload": {"pixels": X[i].tolist()}, "label": y[i]} for i in gold_ids
    )
    people = team(loop.config.labels, {1: 3, 2: 2, 3: 1}, {1: 0.95, 2: 0.97, 3: 0.995})
    people.append(SimulatedAnnotator("t1-sloppy", (1,), 0.5, loop.config.labels, 99))
    truth = {f"d{i}": y[i] for i in range(len(y))}

    def ingest(ids: Any, world: Any) -> None:
        loop.ingest([{"external_id": f"d{i}", "payload": {"pixels": world(X[i]).tolist()}} for i in ids])

    for r in range(ROUNDS):
        ingest(stream[r * ROUND_SIZE : (r + 1) * ROUND_SIZE], shifted if r == ROUNDS - 1 else (lambda p: p))
        work(loop, people, truth.__getitem__)
        loop.maybe_retrain()
    loop.check_drift(actor="lead")
    loop.retrain(actor="underfit-trainer", trainer=underfit)
    ingest(stream[ROUNDS * ROUND_SIZE :], shifted)
    ws.close()
    return db


def seeded_copy(tmp_path: Path) -> str:
    """A private copy of the seeded DB; its URL."""
    target = tmp_path / "loopwright.db"
    shutil.copy(seeded_db(), target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = seeded_copy(tmp_path_factory.mktemp("dashboard"))
    ws = connect(url)
    loop = ws.project("digits")
    yield loop, loop.dashboard(), create_engine(url)
    ws.close()


def rows(engine: Any, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def epoch(value: Any) -> float:
    """A timestamp read back by raw SQL (SQLite gives text) as epoch seconds."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def test_buckets_adapt_to_the_span() -> None:
    assert bucket_seconds(0.0) == 0.1
    assert bucket_seconds(10.0) == 0.5  # 20 buckets; 0.2 s would make 50
    assert bucket_seconds(3600.0) == 120  # 30 buckets of 2 minutes
    assert bucket_seconds(7 * 86400.0) == 6 * 3600  # 28 buckets of 6 hours
    assert bucket_seconds(1e12) == NICE_SECONDS[-1]
    rng = np.random.default_rng(0)
    for lo, span in zip(rng.uniform(1.7e9, 1.8e9, 200), 10 ** rng.uniform(-1, 7, 200), strict=True):
        w = bucket_seconds(span)  # buckets start at multiples of w: count them once aligned
        assert int((lo + span - (lo // w) * w) // w) + 1 <= 48


def test_time_axis_covers_all_activity(seeded: Any) -> None:
    _, d, _ = seeded
    b = d.buckets
    n = len(b.starts)
    assert 1 <= n <= 48 and b.seconds in NICE_SECONDS
    assert len(b.ends) == n and all(len(v) == n for v in (d.throughput, d.decisions, d.auto_accepted))
    assert all(
        (e - s).total_seconds() == pytest.approx(b.seconds) for s, e in zip(b.starts, b.ends, strict=True)
    )
    assert b.starts[0] <= d.start <= d.end < b.ends[-1]
    assert (d.end - d.start).total_seconds() / b.seconds < 48


def test_queue_depth_is_reconstructed_from_task_history(seeded: Any) -> None:
    loop, d, engine = seeded
    open_now = loop.status().open_tasks_by_tier
    assert sum(open_now.values()) > 0  # the last batch waits for review
    assert {t: q[-1] for t, q in d.queue_depth.items()} == {
        t.tier: open_now.get(t.tier, 0) for t in loop.config.tiers
    }
    tasks = rows(engine, "SELECT tier, created_at, closed_at FROM tasks WHERE status != 'gold'")
    for k, end in enumerate(d.buckets.ends):
        edge = end.timestamp()
        expected = Counter(
            tier
            for tier, made, closed in tasks
            if epoch(made) <= edge and (closed is None or epoch(closed) > edge)
        )
        assert {t: q[k] for t, q in d.queue_depth.items()} == {t: expected.get(t, 0) for t in d.queue_depth}


def test_throughput_counts_every_annotation_once(seeded: Any) -> None:
    loop, d, engine = seeded
    assert sum(d.throughput) == loop.status().annotations == d.totals["annotations"] > 0
    by_person = dict(rows(engine, "SELECT annotator, count(*) FROM annotations GROUP BY annotator"))
    assert {n: sum(c) for n, c in d.throughput_by_annotator.items()} == by_person
    assert [sum(c) for c in zip(*d.throughput_by_annotator.values(), strict=True)] == d.throughput
    starts = [s.timestamp() for s in d.buckets.starts]
    first = [epoch(at) for (at,) in rows(engine, "SELECT created_at FROM annotations")]
    assert d.throughput[0] == sum(starts[0] <= t < (starts[1] if len(starts) > 1 else np.inf) for t in first)


def test_automation_rate_from_routing_decisions(seeded: Any) -> None:
    loop, d, _ = seeded
    routes = loop.status().routes
    assert sum(d.decisions) == sum(routes.values()) == d.totals["decisions"]
    assert sum(d.auto_accepted) == routes.get("auto_accept", 0) == d.totals["auto_accepted"] > 0
    for n, a, rate in zip(d.decisions, d.auto_accepted, d.automation_rate, strict=True):
        assert rate == (a / n if n else None)
    assert d.totals["automation_rate"] == pytest.approx(loop.status().automation_rate)


def test_certified_thresholds_over_time(seeded: Any) -> None:
    loop, d, engine = seeded
    stored = rows(engine, "SELECT threshold, epsilon, delta, n_evidence FROM certifications ORDER BY id")
    assert [(c["threshold"], c["epsilon"], c["delta"], c["n_evidence"]) for c in d.certifications] == [
        tuple(r) for r in stored
    ]
    events = [e for e in loop.events(limit=100_000) if e.action == "routing.certified"]
    assert [c["threshold"] for c in d.certifications] == [e.data["threshold"] for e in events]
    assert any(c["threshold"] is not None for c in d.certifications)
    assert d.certify == {"epsilon": 0.15, "delta": 0.1}
    assert d.totals["threshold"] == loop.status().certification.threshold


def test_agreement_per_label_and_pair(seeded: Any) -> None:
    _, d, engine = seeded
    votes = rows(engine, "SELECT item_id, annotator, label FROM annotations")
    a = d.agreement
    assert a["answers"] == len(votes) and set(a["per_label"]) <= set(d.labels)
    assert a["items_with_2_or_more"] == sum(n >= 2 for n in Counter(i for i, _, _ in votes).values()) > 0
    assert a["pairs"]["count"] == len(a["pairs"]["cohen_kappa"]) > 0
    said = {(i, who): label for i, who, label in votes}
    for pair in a["pairs"]["cohen_kappa"]:
        shared = sorted({i for i, w in said if w == pair["a"]} & {i for i, w in said if w == pair["b"]})
        assert pair["shared_items"] == len(shared)
        first, second = [said[i, pair["a"]] for i in shared], [said[i, pair["b"]] for i in shared]
        if pair["kappa"] is not None and len(set(first) | set(second)) > 1:
            assert pair["kappa"] == pytest.approx(cohen_kappa_score(first, second), abs=1e-5)


def test_annotator_skill_table(seeded: Any) -> None:
    loop, d, engine = seeded
    names = {
        n
        for (n,) in rows(engine, "SELECT annotator FROM annotations UNION SELECT annotator FROM gold_answers")
    }
    assert [r.name for r in d.annotators] == sorted(names)
    gold = {n: (total, right) for n, total, right in rows(
        engine, "SELECT annotator, count(*), sum(correct) FROM gold_answers GROUP BY annotator"
    )}  # fmt: skip
    for r in d.annotators:
        stats = loop.annotator_stats(r.name)
        assert (r.gold_answers, r.gold_correct) == gold.get(r.name, (0, 0))
        assert r.gold_accuracy == stats.gold_accuracy
        assert r.paused_tiers == list(stats.paused_tiers)
        assert r.skill is None or 0.0 <= r.skill <= 1.0
    by_name = {r.name: r for r in d.annotators}
    assert by_name["t1-sloppy"].paused_tiers == [1]
    assert by_name["t1-sloppy"].skill < min(by_name[f"t2-{i}"].skill for i in range(2))


def test_model_versions_with_gate_evidence(seeded: Any) -> None:
    loop, d, _ = seeded
    models = loop.models()
    assert [(m.version, m.status) for m in d.models] == [(m.version, m.status.value) for m in models]
    assert [m.gate for m in d.models] == [m.gate for m in models]
    weak = d.models[-1]
    assert weak.status == "rejected" and not weak.promoted
    assert weak.gate["p_value"] < 0.05  # rejected overall; slices listed as the gate found them
    assert weak.regressed_slices == [
        f"{s['slicing']}={s['slice']}" for s in models[-1].gate["slices"] if s["regressed"]
    ]
    assert d.totals["champion"] == loop.status().champion.version
    assert sum(m.promoted for m in d.models) == sum(m.promoted_at is not None for m in models) >= 2


def test_drift_timeline(seeded: Any) -> None:
    loop, d, engine = seeded
    drift = "SELECT action, actor FROM events WHERE action IN ({}) ORDER BY id"
    stored = rows(engine, drift.format("'drift.checked', 'drift.detected'"))
    assert [(p.detected, p.actor) for p in d.drift] == [(a == "drift.detected", who) for a, who in stored]
    settled = [
        a.removeprefix("drift.")
        for a, _ in rows(engine, drift.format("'drift.confirmed', 'drift.retracted'"))
    ]
    assert [p.settled for p in d.drift if p.settled] == settled
    by_lead = [p for p in d.drift if p.actor == "lead"]  # the on-demand check after the shift
    assert len(by_lead) == 1 and by_lead[0].detected
    assert sum(p.detected for p in d.drift) == d.totals["drift_detected"] >= 2
    shifted_in = [p for p in d.drift if p.detected and p.actor == "system"]
    assert (
        shifted_in
        and shifted_in[0].domain_classifier_auc > d.auc_threshold > d.drift[0].domain_classifier_auc
    )
    last = loop.last_drift_check()
    assert d.drift[-1].window == (last.data["window_start_item_id"], last.data["window_end_item_id"])


def test_empty_project_has_empty_series(tmp_path: Path) -> None:
    ws = connect(f"sqlite:///{tmp_path / 'empty.db'}")
    d = ws.create_project(demo_config()).dashboard()
    assert d.start is None and d.buckets.starts == [] and d.throughput == []
    assert d.queue_depth == {1: [], 2: [], 3: []} and d.agreement is None
    assert d.annotators == [] and d.models == [] and d.drift == [] and d.certifications == []
    ws.close()


def test_route_needs_monitor(tmp_path: Path) -> None:
    app = create_app(seeded_copy(tmp_path))
    auth = app.state.authenticator
    assert isinstance(auth, SqlAuthenticator)
    tokens = {}
    for name, role in [("lea", Role.LEAD), ("vic", Role.VIEWER), ("ann", Role.ANNOTATOR)]:
        auth.add_user(name)
        auth.add_membership(name, "digits", role)
        tokens[name] = auth.issue_token(name)
    auth.add_user("out")
    tokens["out"] = auth.issue_token("out")
    with TestClient(app) as client:

        def get(who: str) -> Any:
            return client.get(
                "/v1/projects/digits/dashboard", headers={"Authorization": f"Bearer {tokens[who]}"}
            )

        lead, viewer = get("lea"), get("vic")
        assert lead.status_code == viewer.status_code == 200
        assert (get("ann").status_code, get("out").status_code) == (403, 404)
        body = lead.json()
        loop: Loop = app.state.workspace.project("digits")
        assert body["totals"]["annotations"] == loop.status().annotations
        assert set(body["queue_depth"]) == {"1", "2", "3"}
        assert len(body["buckets"]["starts"]) == len(body["throughput"])
        assert body["models"][-1]["status"] == "rejected"


def test_history_queries_on_each_backend(store: SqlStore) -> None:
    """The store queries the dashboard reads, on SQLite and PostgreSQL."""
    with store.unit_of_work() as uow:
        project = uow.projects.add("p", {"labels": ["a", "b"]})
        other = uow.projects.add("q", {"labels": ["a", "b"]})
        items = [uow.items.add(project.id, f"i{k}", f"h{k}", {"x": k}, {}) for k in range(3)]
        foreign = uow.items.add(other.id, "j", "h", {"x": 0}, {})
        for item, route in zip([*items, foreign], ["auto_accept", "review", "review", "review"], strict=True):
            prediction = uow.predictions.add(item.id, None, {"a": 0.9, "b": 0.1}, "a", 0.9, None)
            uow.decisions.add(item.id, prediction.id, Route(route), None, "r", False, None)
        first = uow.tasks.add(project.id, items[1].id, None, 1, 0.5, "r", 1)
        uow.tasks.add(project.id, items[2].id, None, 2, 0.5, "r", 1)
        uow.tasks.add_gold(project.id, items[0].id, 1, "a")
        closed = uow.tasks.set_status(first.id, TaskStatus.RESOLVED, first.created_at).closed_at
        model = uow.models.add(project.id, ModelStatus.CHAMPION, None, "c", 0, {}, b"")
        values: dict[str, Any] = {"epsilon": 0.1, "delta": 0.1, "n_evidence": 0, "n_errors": 0}
        values |= {"upper_bound": 1.0, "n_audited": 0, "reason": "none"}
        certs = [uow.certifications.add(project.id, model.id, values | {"threshold": t}) for t in (None, 0.8)]
        for action in ("drift.checked", "model.promoted", "drift.detected"):
            uow.events.add(project.id, "me", action, "project", "p", {"n": action})
        uow.events.add(other.id, "me", "drift.detected", "project", "q")
    with store.unit_of_work() as uow:
        assert [r for _, r, _ in uow.decisions.timeline(project.id)] == ["auto_accept", "review", "review"]
        assert all(at.tzinfo is not None for at, _, _ in uow.decisions.timeline(project.id))
        tasks = uow.tasks.timeline(project.id)
        assert [(tier, done) for tier, _, done in tasks] == [(1, closed), (2, None)]  # no gold task
        assert uow.certifications.list(project.id) == certs and uow.certifications.list(other.id) == []
        found = uow.events.of_actions(project.id, ["drift.checked", "drift.detected"])
        assert [e.action for e in found] == ["drift.checked", "drift.detected"]
