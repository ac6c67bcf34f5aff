"""The certified backlog: review tasks opened for want of a certificate are auto-accepted once
the champion holds a certified threshold, through the loop, the jobs port, automation and REST,
on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from loopwright import Loop, Workspace
from loopwright.domain import Route, TaskStatus
from loopwright.loop import automation, backlog
from loopwright.loop.review import Assignment
from loopwright.service import Role, create_app
from loopwright.store.sql import SqlStore
from loopwright.store.sql.jobs import JobWorker, SqlJobs
from people import bearer, members
from test_loop import ManualClock

CONFIG: dict[str, Any] = {
    "name": "backlog",
    "labels": ["a", "b", "c"],
    "features": ["x"],
    "routing": {
        "audit_rate": 0.5,
        "audit_tier": 2,
        "certify": {"epsilon": 0.1, "delta": 0.1},
        "bands": [{"min_confidence": 0.0, "tier": 1}],
        "high_stakes_labels": ["c"],
        "high_stakes_tier": 3,
    },
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "audit"},
        {"tier": 3, "name": "expert"},
    ],
}
WRONG_BELOW = 0.85  # the audit's truth differs from the model's label below this confidence


def champion_model() -> LogisticRegression:
    """``a`` below 0, ``b`` up to 8, ``c`` above; confidence from about 0.5 to 1."""
    X = np.linspace(-10, 10, 201)[:, None]
    y = np.where(X[:, 0] < 0, "a", np.where(X[:, 0] < 8, "b", "c"))
    return LogisticRegression(C=0.2).fit(X, y)


def records(prefix: str, xs: Any) -> list[dict[str, Any]]:
    return [{"external_id": f"{prefix}{i}", "payload": {"x": float(x)}} for i, x in enumerate(xs)]


def top(model: LogisticRegression, x: float) -> tuple[str, float]:
    """The model's label and confidence at ``x``, straight from predict_proba."""
    p = model.predict_proba(np.array([[x]]))[0]
    return str(model.classes_[int(p.argmax())]), float(p.max())


def truth(model: LogisticRegression, x: float) -> str:
    label, conf = top(model, x)
    return label if conf >= WRONG_BELOW else {"a": "b", "b": "a", "c": "b"}[label]


def lease_item(loop: Loop, who: str, external_id: str, tier: int) -> Assignment:
    """Lease the task of one item: the others offered first are skipped (no live lease left)."""
    while (a := loop.next_task(who, [tier])) is not None:
        if a.item.external_id == external_id:
            return a
        loop.skip(a.lease.id, who)
    raise AssertionError(f"{external_id} never offered to {who}")


@dataclass
class World:
    ws: Workspace
    loop: Loop
    clock: ManualClock
    model: LogisticRegression
    x: dict[str, float]  # external id -> payload x, every item
    reason: dict[str, str]  # external id -> routing reason at ingest, post-drift items
    audited: set[str]  # external ids drawn into the audit
    pre_drift: list[str]
    answered: str  # one annotation of two: open
    leased: str  # a live lease
    unanswered_audits: list[str]  # an audited task with reason audit, one with reason no_model


def build(store: SqlStore) -> World:
    """Items before a drift, items after it with no model, a champion, a stream under it with no
    certificate; the audit tier answers every audit but two; one bulk task answered once, one
    leased. The champion's certificate then covers part of the untouched backlog."""
    clock = ManualClock()
    ws = Workspace(store, clock)
    loop = ws.create_project(CONFIG)
    model = champion_model()
    pre = loop.ingest(records("pre", np.linspace(-9.5, 9.5, 8)))
    nm = loop.ingest(records("nm", [-9.0, -6.0, -3.0, -1.0, 0.2, 2.0, 3.5, 5.0, 7.6, 9.5, 10.0, -8.0]))
    with store.unit_of_work() as uow:  # the drift detector's event: its window starts at nm0
        start = min(o.item_id for o in nm.outcomes)
        window = {"window_start_item_id": start, "window_end_item_id": start + len(nm.outcomes) - 1}
        uow.events.add(loop.project.id, "detector", "drift.detected", "project", "backlog", window)
    loop.use_model(model, force=True)
    stream = loop.ingest(records("s", np.linspace(-10, 10, 201)))
    outcomes = [*nm.outcomes, *stream.outcomes]
    everything = [*pre.outcomes, *outcomes]
    x: dict[str, float] = {}
    with store.unit_of_work() as uow:
        for item in uow.items.get_many([o.item_id for o in everything]):
            x[item.external_id] = float(item.payload["x"])
        audited_ids = set(uow.decisions.audited_items(loop.project.id))
    audited = {o.external_id for o in outcomes if o.item_id in audited_ids}
    confident = [o.external_id for o in outcomes if o.tier == 1 and x[o.external_id] <= -8.0]
    leased = lease_item(loop, "holder", confident[0], 1)  # a post-drift item with no model
    answered = lease_item(loop, "ann1", confident[-1], 1)  # one of two answers
    loop.submit(answered.lease.id, "ann1", "a")
    unanswered = [
        next(o.external_id for o in stream.outcomes if o.reason == "audit"),
        next(o.external_id for o in nm.outcomes if o.external_id in audited),
    ]
    while (a := loop.next_task("auditor", [2])) is not None:
        if a.item.external_id in unanswered:
            loop.skip(a.lease.id, "auditor")
        else:
            at = float(a.item.payload["x"])
            loop.submit(a.lease.id, "auditor", truth(model, at))
    reason = {o.external_id: str(o.reason) for o in outcomes}
    return World(
        ws,
        loop,
        clock,
        model,
        x,
        reason,
        audited,
        [o.external_id for o in pre.outcomes],
        answered.item.external_id,
        leased.item.external_id,
        unanswered,
    )


def untouched(w: World) -> list[str]:
    """Post-drift tasks opened for want of a certificate that nobody touched and that are not
    audited: what a pass scans."""
    left = {w.answered, w.leased}
    return [
        e
        for e, r in w.reason.items()
        if r in ("uncertified", "no_model", "low_confidence") and e not in w.audited and e not in left
    ]


def expected(w: World, threshold: float) -> dict[str, str]:
    """External id -> label of each untouched task the champion passes at ``threshold``."""
    out = {}
    for e in untouched(w):
        label, conf = top(w.model, w.x[e])
        if conf >= threshold and label != "c":
            out[e] = label
    return out


def test_the_certified_backlog_is_accepted_and_only_it(store: SqlStore) -> None:
    w = build(store)
    loop = w.loop
    cert = loop.certify()
    assert cert is not None and cert.threshold is not None and 0.5 < cert.threshold < 1.0
    want = expected(w, cert.threshold)
    scanned = untouched(w)
    assert len(want) >= 50 and len(scanned) > len(want)  # some fail the threshold, some are c
    assert backlog.due(loop._ctx)
    report = loop.accept_backlog("lead")
    assert (report.scanned, report.accepted, report.threshold, report.model_version) == (
        len(scanned),
        len(want),
        cert.threshold,
        1,
    )
    assert dict(report.items) == want
    assert [e for e, _ in report.items] == [e for e in w.reason if e in want]  # item order
    status = loop.status()  # each accepted item has two decisions; the rate counts items once
    auto_at_ingest = sum(r == "confident" for r in w.reason.values())
    assert status.routes["auto_accept"] == auto_at_ingest + len(want)
    assert status.automation_rate == (auto_at_ingest + len(want)) / len(w.x)
    board = loop.dashboard()  # the cumulative line and the total count items, not decisions
    assert sum(board.routed) == board.totals["routed_items"] == len(w.x) < sum(board.decisions)
    assert board.totals["automation_rate"] == status.automation_rate
    champion = loop.model("champion")
    with store.unit_of_work() as uow:
        ids = uow.items.by_external_ids(loop.project.id, list(w.x))
        tasks = {e: uow.tasks.for_item(item.id) for e, item in ids.items()}
        last = {e: uow.decisions.for_item(item.id)[-1] for e, item in ids.items()}
        predictions = {e: uow.predictions.get(last[e].prediction_id) for e in want}
    for ext in want:
        label, conf = top(w.model, w.x[ext])
        [task] = tasks[ext]
        assert (task.status, task.closed_at) == (TaskStatus.ACCEPTED, w.clock.now)
        assert (last[ext].route, last[ext].reason, last[ext].audit, last[ext].threshold) == (
            Route.AUTO_ACCEPT,
            "certified_backlog",
            False,
            cert.threshold,
        )
        assert (predictions[ext].model_version_id, predictions[ext].label) == (champion.id, label)
        assert abs(predictions[ext].confidence - conf) < 1e-9  # type: ignore[operator]
    others = [e for e in w.x if e not in want]
    assert all(t.status is not TaskStatus.ACCEPTED for e in others for t in tasks[e])
    assert all(last[e].reason != "certified_backlog" for e in others)
    # left alone, though the champion passes each at the threshold (the last with label c)
    high = [e for e in untouched(w) if top(w.model, w.x[e])[0] == "c"]
    pre = [e for e in w.pre_drift if tasks[e][0].tier == 1]
    alone = [w.answered, w.leased, *w.unanswered_audits, *high, *pre]
    assert high == ["nm10"] and len(pre) >= 2
    assert all(top(w.model, w.x[e])[1] >= cert.threshold for e in alone)
    assert [(tasks[e][0].status, tasks[e][0].reason) for e in alone] == [
        (TaskStatus.OPEN, "uncertified"),
        (TaskStatus.OPEN, "no_model"),
        (TaskStatus.OPEN, "audit"),
        (TaskStatus.OPEN, "no_model"),  # audited before there was a model
        (TaskStatus.OPEN, "no_model"),
        *[(TaskStatus.OPEN, "no_model")] * len(pre),
    ]
    assert tasks[w.answered][0].required_annotations == 2
    [event] = [e for e in loop.events(limit=1000) if e.action == "backlog.accepted"]
    assert event.actor == "lead" and event.data == {
        "accepted": len(want),
        "scanned": len(scanned),
        "threshold": cert.threshold,
        "model_version_id": champion.id,
        "certification_id": cert.id,
        "scanned_to_item_id": max(ids[e].id for e in scanned),  # no later task qualified
    }


def test_a_second_pass_scans_only_what_came_since(store: SqlStore) -> None:
    w = build(store)
    loop = w.loop
    first = loop.accept_backlog()
    assert first.accepted > 0
    second = loop.accept_backlog()
    assert (second.scanned, second.accepted, second.items) == (0, 0, ())
    assert (second.threshold, second.model_version) == (first.threshold, first.model_version)
    assert not backlog.due(loop._ctx)
    late = loop.ingest(records("late", [-0.4, 0.1, 0.6, -9.9, -9.8]))  # under the certificate now
    assert [o.reason for o in late.outcomes] == ["low_confidence"] * 2 + ["audit"] * 2 + ["confident"]
    assert not backlog.due(loop._ctx)  # routed below this champion's certified threshold: nothing to do
    third = loop.accept_backlog()
    assert (third.scanned, third.accepted) == (0, 0)
    loop.use_model(champion_model(), force=True)  # a new champion (the same model): scan it all again
    assert backlog.due(loop._ctx)
    fourth = loop.accept_backlog()
    left = len(untouched(w)) - first.accepted + 2  # what the first pass left, and the late two
    assert (fourth.scanned, fourth.accepted, fourth.model_version) == (left, 0, 2)
    assert fourth.threshold == first.threshold


def test_nothing_certified_nothing_scanned(store: SqlStore) -> None:
    ws = Workspace(store, ManualClock())
    loop = ws.create_project(CONFIG)
    loop.ingest(records("n", np.linspace(-9, 9, 10)))
    assert loop.accept_backlog() == backlog.BacklogReport(0, 0, None, None)  # no champion
    loop.use_model(champion_model(), force=True)
    loop.ingest(records("m", np.linspace(-9, 9, 10)))
    cert = loop.certify()
    assert cert is not None and cert.threshold is None  # no audit evidence yet
    assert loop.accept_backlog() == backlog.BacklogReport(0, 0, None, None)
    assert not backlog.due(loop._ctx)
    plain = ws.create_project({**CONFIG, "name": "plain", "routing": {"accept_threshold": 0.9}})
    plain.use_model(champion_model(), force=True)
    plain.ingest(records("p", [0.1, 0.2]))
    assert plain.accept_backlog() == backlog.BacklogReport(0, 0, None, None)  # nothing certifies
    assert [e for e in loop.events(limit=1000) if e.action == "backlog.accepted"] == []


def test_the_job_kind_and_the_automation_trigger(store: SqlStore) -> None:
    w = build(store)
    want = expected(w, w.loop.certify().threshold)  # type: ignore[union-attr, arg-type]
    assert ("accept_backlog", "certified_backlog") in automation.triggers(w.loop)
    jobs = SqlJobs(store.engine)
    job = jobs.enqueue("backlog", "accept_backlog", actor="lead")
    done = JobWorker(w.ws, jobs).run_once()
    assert done is not None and (done.id, done.status, done.error) == (job.id, "succeeded", None)
    assert done.result == {
        "scanned": len(untouched(w)),
        "accepted": len(want),
        "threshold": w.loop.certify().threshold,  # type: ignore[union-attr]
        "model_version": 1,
    }
    assert ("accept_backlog", "certified_backlog") not in automation.triggers(w.loop)
    [event] = [e for e in w.loop.events(limit=1000) if e.action == "backlog.accepted"]
    assert event.actor == "lead"


def test_the_rest_endpoint_is_for_leads(store: SqlStore) -> None:
    w = build(store)
    cert = w.loop.certify()
    assert cert is not None and cert.threshold is not None
    tokens, issued = members("backlog", {"lead": Role.LEAD, "ann": Role.ANNOTATOR})
    h = bearer(issued)
    client = TestClient(create_app(w.ws, authenticator=tokens), raise_server_exceptions=False)
    r = client.post("/v1/projects/backlog/backlog/accept", headers=h["ann"])
    assert r.status_code == 403, r.text
    r = client.post("/v1/projects/backlog/backlog/accept", headers=h["lead"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "scanned": len(untouched(w)),
        "accepted": len(expected(w, cert.threshold)),
        "threshold": cert.threshold,
        "model_version": 1,
    }
    again = client.post("/v1/projects/backlog/backlog/accept", headers=h["lead"]).json()
    assert (again["scanned"], again["accepted"]) == (0, 0)


def test_the_store_reads_and_closes_only_untouched_tasks(store: SqlStore) -> None:
    """``backlog`` in item order from ``since``, ``limit`` at most; ``accept`` closes only those
    still untouched when it runs; a lease that ran out no longer counts."""
    clock = ManualClock()
    loop = Workspace(store, clock).create_project(CONFIG)
    report = loop.ingest(records("t", [-9.0, -8.0, -7.0, -6.0, -5.0, -4.0]))
    ids = [o.item_id for o in report.outcomes if o.tier == 1]  # no model: reason no_model
    pid, now = loop.project.id, clock.now
    with store.unit_of_work() as uow:
        tasks = uow.tasks.backlog(pid, ["no_model"], 0, now, 100)
        assert [t.item_id for t in tasks] == ids and len(ids) >= 4
        assert [t.item_id for t in uow.tasks.backlog(pid, ["no_model"], ids[1], now, 2)] == ids[1:3]
        assert uow.tasks.backlog(pid, ["uncertified"], 0, now, 100) == []
    exts = [o.external_id for o in report.outcomes if o.tier == 1]
    leased = lease_item(loop, "holder", exts[0], 1)
    answered = lease_item(loop, "ann1", exts[1], 1)  # skips the first: overlap would offer it
    loop.submit(answered.lease.id, "ann1", "a")  # one of two answers: still open
    touched = {leased.task.id, answered.task.id}
    with store.unit_of_work() as uow:
        assert [t.id for t in uow.tasks.backlog(pid, ["no_model"], 0, now, 100)] == [
            t.id for t in tasks if t.id not in touched
        ]
        closed = uow.tasks.accept([t.id for t in tasks], now)  # read before the lease and answer
        assert closed == sorted(t.id for t in tasks if t.id not in touched)
        assert {t.id: t.status for t in uow.tasks.for_item(leased.item.id)} == {
            leased.task.id: TaskStatus.OPEN
        }
        assert uow.tasks.accept(closed, now) == []  # closed already
    clock.advance(301)  # the holder's lease (300 s) ran out
    with store.unit_of_work() as uow:
        assert [t.id for t in uow.tasks.backlog(pid, ["no_model"], 0, clock.now, 100)] == [leased.task.id]
