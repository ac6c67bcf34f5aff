"""Gold from the audits the champion gets wrong: only unanimous audits of two or more answers,
only where the champion answers otherwise, on the tiers that see its suggestion, once."""

from __future__ import annotations

from typing import Any

import pytest

from loopwright import Loop, Workspace
from loopwright.domain import TaskStatus
from loopwright.errors import Invalid, Paused
from loopwright.learning import default_estimator
from loopwright.store.sql import SqlStore
from people import bearer, members

CONFIG: dict[str, Any] = {
    "name": "audits",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {
        "accept_threshold": 1.0,
        "audit_rate": 0.5,
        "audit_tier": 2,
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": 1},
        {"tier": 2, "name": "expert", "required_annotations": 2},
    ],
    "consensus": {"method": "majority"},
}
SPLIT = {"p7"}  # an audit the two experts answer differently: never gold


def truth(x: float) -> str:
    """The world: "a" below 0.52; the champion draws its line at 0."""
    return "a" if x < 0.52 else "b"


def audited_world(store: SqlStore, **config: Any) -> tuple[Loop, dict[str, float]]:
    """40 items on a line, the audits (by item hash) answered by two experts; the x of each audit."""
    loop = Workspace(store).create_project(CONFIG | config)
    xs = [-1.0, -2.0, 1.0, 2.0]
    loop.use_model(default_estimator(loop.config, 0).fit([[x] for x in xs], ["a", "a", "b", "b"]), force=True)
    x = {f"p{i}": -1.0 + i * 0.05 for i in range(40)}
    report = loop.ingest({"external_id": k, "payload": {"x": v}} for k, v in x.items())
    audited = {o.external_id for o in report.outcomes if o.reason == "audit"}
    for expert in ("e1", "e2"):
        while (a := loop.next_task(expert, [2])) is not None:
            key = a.item.external_id
            flip = key in SPLIT and expert == "e2"
            loop.submit(a.lease.id, expert, {"a": "b", "b": "a"}[truth(x[key])] if flip else truth(x[key]))
    return loop, {k: x[k] for k in sorted(audited, key=lambda k: int(k[1:]))}


def test_the_audits_the_champion_gets_wrong_become_gold_on_the_tiers_below(store: SqlStore) -> None:
    loop, audited = audited_world(store)
    assert "p7" in audited  # the split audit is one of them (item hashes are fixed)
    wrong = [k for k, x in audited.items() if 0.02 < x < 0.52]  # the champion says "b", the experts "a"
    assert len(wrong) >= 3, audited
    listed = loop.gold_from_audits(dry_run=True)
    assert [(c.external_id, c.label, c.predicted) for c in listed.candidates] == [
        (k, "a", "b") for k in wrong
    ]
    assert all(0.5 < c.confidence < 1.0 for c in listed.candidates)
    assert (listed.tiers, listed.added) == ((1,), 0)
    assert loop.dashboard().totals["gold_scored"] == 0  # a dry run adds nothing

    made = loop.gold_from_audits(actor="lead")
    assert made.candidates == listed.candidates and made.added == len(wrong)
    with store.unit_of_work() as uow:
        items = uow.items.by_external_ids(loop.project.id, wrong)
        gold = [t for k in wrong for t in uow.tasks.for_item(items[k].id) if t.status is TaskStatus.GOLD]
        event = uow.events.latest(loop.project.id, "gold.added")
    assert [(t.tier, t.gold_label) for t in gold] == [(1, "a")] * len(wrong)
    assert event is not None and event.actor == "lead" and event.data["source"] == "audits"
    totals = loop.dashboard().totals
    assert (totals["gold_scored"], totals["gold_missed"]) == (len(wrong), len(wrong))
    assert loop.gold_from_audits().candidates == ()  # gold once
    # the audits keep their resolution: still the certificate's evidence
    assert {loop.lineage_of_item(k)["resolutions"][0]["label"] for k in wrong} == {"a"}


def test_they_pause_a_reviewer_who_accepts_every_suggestion_and_not_a_careful_one(store: SqlStore) -> None:
    """Gold checks at every claim while unseen gold lasts (``rate: 1``): the suggestion fails
    each of them, the truth passes each."""
    loop, audited = audited_world(store, gold={"onboarding": 0, "rate": 1.0, "min_answers": 3})
    made = len(loop.gold_from_audits().candidates)
    assert made >= 3
    for who in ("stamp", "care"):
        for _ in range(made):
            a = loop.next_task(who, [1])
            assert a is not None and a.task.status is TaskStatus.GOLD and a.suggestion is not None
            answer = a.suggestion.label if who == "stamp" else truth(audited[a.item.external_id])
            loop.submit(a.lease.id, who, answer)
    stamp, care = loop.annotator_stats("stamp"), loop.annotator_stats("care")
    assert (stamp.gold_answers, stamp.gold_accuracy, stamp.paused_tiers) == (made, 0.0, (1,))
    assert (care.gold_answers, care.gold_accuracy, care.paused_tiers) == (made, 1.0, ())
    with pytest.raises(Paused):
        loop.next_task("stamp", [1])
    # erasing a made item takes its gold task and every answer to it along
    gone = loop.gold_from_audits(dry_run=True)  # nothing left to make
    assert gone.candidates == ()
    first = next(k for k, x in audited.items() if 0.02 < x < 0.52)
    loop.erase(first, "lead", "asked")
    assert loop.annotator_stats("care").gold_answers == made - 1
    assert loop.dashboard().totals["gold_scored"] == made - 1


def test_bad_requests_are_refused(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    with pytest.raises(Invalid, match="needs a champion"):
        loop.gold_from_audits()
    with pytest.raises(Invalid, match=r"unknown tier\(s\) \[3\]"):
        loop.gold_from_audits([3])


def test_a_lead_makes_them_over_rest_as_a_background_job(store: SqlStore) -> None:
    from fastapi.testclient import TestClient

    from loopwright.service import Role, create_app
    from loopwright.store.sql.jobs import JobWorker, SqlJobs

    loop, audited = audited_world(store)
    wrong = [k for k, x in audited.items() if 0.02 < x < 0.52]
    tokens, issued = members("audits", {"lead": Role.LEAD, "ann": Role.ANNOTATOR})
    h = bearer(issued)
    ws = Workspace(store)
    client = TestClient(create_app(ws, authenticator=tokens, jobs=SqlJobs(store.engine), job_threads=0))
    url = "/v1/projects/audits/gold/from-audits"
    assert client.post(url, json={}, headers=h["ann"]).status_code == 403
    assert client.post(url, json={"tiers": [0]}, headers=h["lead"]).status_code == 422
    results = []
    for body in ({"dry_run": True}, {}):
        r = client.post(url, json=body, headers=h["lead"])
        assert r.status_code == 202 and r.json()["kind"] == "gold_from_audits", r.text
        JobWorker(ws, client.app.state.jobs).run_once()
        done = client.get(r.headers["location"], headers=h["lead"]).json()
        assert done["status"] == "succeeded", done
        results.append(done["result"])
    listed, made = results
    assert [(i["external_id"], i["label"], i["predicted"]) for i in listed["items"]] == [
        (k, "a", "b") for k in wrong
    ]
    assert (listed["dry_run"], listed["tiers"], listed["added"]) == (True, [1], 0)
    assert (made["dry_run"], made["items"], made["added"]) == (False, listed["items"], len(wrong))
    assert loop.dashboard().totals["gold_missed"] == len(wrong)


def test_with_gold_from_audits_the_loop_makes_it_by_itself(store: SqlStore) -> None:
    """The automation starts the job after new audit answers or a new champion, and not again
    while neither changes."""
    from loopwright.loop import audit_gold, automation
    from loopwright.store.sql.jobs import JobWorker, SqlJobs

    loop, audited = audited_world(store, gold={"from_audits": True})
    wrong = [k for k, x in audited.items() if 0.02 < x < 0.52]
    ws, jobs = Workspace(store), SqlJobs(store.engine)
    assert automation.triggers(loop) == [("gold_from_audits", "audit_answers")]
    [decision] = automation.evaluate(ws, jobs)
    assert (decision.kind, decision.trigger) == ("gold_from_audits", "audit_answers")
    JobWorker(ws, jobs).run_once()
    assert jobs.get(decision.job_id).status == "succeeded"
    assert loop.dashboard().totals["gold_missed"] == len(wrong)
    with store.unit_of_work() as uow:
        checked = uow.events.latest(loop.project.id, audit_gold.CHECKED)
    assert checked is not None and (checked.actor, checked.data["items"]) == ("automation", len(wrong))
    with store.unit_of_work() as uow:  # answers after the read are news: it kept the version it read
        assert checked.data["evidence_version"] == uow.certifications.evidence_version(loop.project.id)
    assert automation.triggers(loop) == []  # nothing changed since

    # a new champion asks again; what is gold already is not made twice
    loop.use_model(default_estimator(loop.config, 1).fit([[-1.0], [1.0]], ["a", "b"]), force=True)
    assert automation.triggers(loop) == [("gold_from_audits", "audit_answers")]
    assert loop.gold_from_audits(actor="lead").candidates == ()
    assert automation.triggers(loop) == []

    # so do new audit answers
    report = loop.ingest({"external_id": f"q{i}", "payload": {"x": 0.3 + i * 0.01}} for i in range(20))
    assert any(o.reason == "audit" for o in report.outcomes)
    assert automation.triggers(loop) == []  # asked, not yet answered
    for expert in ("e1", "e2"):
        while (a := loop.next_task(expert, [2])) is not None:
            loop.submit(a.lease.id, expert, "a")
    assert automation.triggers(loop) == [("gold_from_audits", "audit_answers")]
    assert loop.gold_from_audits().added > 0  # the champion says "b" at x ≥ 0.3


def test_gold_from_audits_off_is_never_due(store: SqlStore) -> None:
    from loopwright.loop import audit_gold

    loop, _ = audited_world(store)
    assert audit_gold.due(loop._ctx) is False and loop.dashboard().totals["gold_from_audits"] is False


BOTH_TIERS = [{"min_confidence": 0.0, "tier": 1}, {"min_confidence": 0.5, "tier": 2}]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"model": {"kind": "external"}}, "needs a model loopwright runs, not model.kind external"),
        ({"routing": {**CONFIG["routing"], "audit_rate": 0.0}}, "set routing.audit_rate above 0"),
        (
            {"tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "expert"}]},
            "when two or more answers agree: set routing.audit_answers to 2 or more",
        ),
        (
            {"routing": {**CONFIG["routing"], "audit_tier": None, "bands": BOTH_TIERS}},
            "needs a tier that takes no audits",
        ),
    ],
)
def test_gold_from_audits_is_refused_where_it_cannot_work(
    store: SqlStore, change: dict[str, Any], error: str
) -> None:
    with pytest.raises(Invalid, match=error):
        Workspace(store).create_project(CONFIG | {"gold": {"from_audits": True}} | change)
