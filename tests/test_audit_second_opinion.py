"""Second opinions on audited items (``routing.audit_answers``): one audit answer that
contradicts the model's prediction, or answers with no two in agreement, ask one more, so a
single slip of the audit tier does not count as the model's error in the certificate.

Re-checks (:func:`loopwright.loop.audit.recheck`): an item audited before any model existed has
one answer and nothing it was checked against; when a champion later disagrees with that label
where its certificate looks, the audit tier is asked once more."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from conftest import BACKENDS
from loopwright import Loop, Workspace
from loopwright.domain import TaskStatus
from loopwright.loop import audit
from loopwright.loop.review import Assignment, SubmitResult
from loopwright.store.sql import SqlStore
from loopwright.store.sql.review import SqlAnnotationRepo

POSTGRES = next(b for b in BACKENDS if b.values == ("postgres",))

CONFIG: dict[str, Any] = {
    "name": "audited",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {
        "audit_rate": 1.0,  # every item audited
        "audit_tier": 2,
        "audit_answers": 3,
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "audit"}],
}
EXPERTS = ("e1", "e2", "e3")  # the audit tier's annotators
CERTIFY = {"epsilon": 0.5, "delta": 0.5, "min_evidence": 1}  # one audited item can certify


def model(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a`` below 0 (at 0.75 for x = -5), ``b`` above."""
    p_b = np.clip(0.5 + X[:, 0] / 20.0, 0.0, 1.0)
    return np.column_stack([1.0 - p_b, p_b])


def project(store: SqlStore, **routing: Any) -> tuple[Loop, int]:
    """A project with the model as champion and one item (x = -5, predicted ``a``); its task id."""
    loop = Workspace(store).create_project({**CONFIG, "routing": {**CONFIG["routing"], **routing}})
    loop.use_model(model, force=True, persist=False)
    [outcome] = loop.ingest([{"external_id": "i0", "payload": {"x": -5.0}}]).outcomes
    assert (outcome.label, outcome.confidence) == ("a", 0.75)
    with store.unit_of_work() as uow:
        [task] = uow.tasks.for_item(outcome.item_id)
    return loop, task.id


def answer(loop: Loop, who: str, label: str, task_id: int) -> SubmitResult:
    a = loop.next_task(who)
    assert isinstance(a, Assignment) and a.task.id == task_id, (who, a)
    return loop.submit(a.lease.id, who, label)


def task_of(store: SqlStore, task_id: int) -> tuple[TaskStatus, int]:
    with store.unit_of_work() as uow:
        task = uow.tasks.get(task_id)
    return task.status, task.required_annotations


def asked(loop: Loop) -> list[tuple[str, dict[str, Any]]]:
    return [(e.actor, e.data) for e in loop.events(limit=1000) if e.action == "audit.second_opinion"]


def test_an_answer_that_agrees_with_the_prediction_resolves_at_once(store: SqlStore) -> None:
    loop, task_id = project(store)
    result = answer(loop, "e1", "a", task_id)
    assert result.resolution is not None and (result.resolution.label, result.resolution.n_annotations) == (
        "a",
        1,
    )
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 1) and asked(loop) == []


def test_a_contradiction_asks_a_second_expert_and_two_agreeing_resolve(store: SqlStore) -> None:
    loop, task_id = project(store)
    first = answer(loop, "e1", "b", task_id)
    assert (first.resolution, first.escalated_to) == (None, None)
    assert task_of(store, task_id) == (TaskStatus.OPEN, 2)
    assert asked(loop) == [("e1", {"answers": 1})]
    assert loop.next_task("e1") is None  # not offered to the one who answered it
    second = answer(loop, "e2", "b", task_id)  # another expert claims it
    assert second.resolution is not None
    assert (second.resolution.label, second.resolution.n_annotations) == ("b", 2)
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 2) and len(asked(loop)) == 1


def test_disagreeing_answers_ask_a_third(store: SqlStore) -> None:
    loop, task_id = project(store)
    assert answer(loop, "e1", "b", task_id).resolution is None
    assert answer(loop, "e2", "a", task_id).resolution is None  # 1-1: no two agree
    assert task_of(store, task_id) == (TaskStatus.OPEN, 3)
    assert asked(loop) == [("e1", {"answers": 1}), ("e2", {"answers": 2})]
    third = answer(loop, "e3", "b", task_id)
    assert third.resolution is not None
    assert (third.resolution.label, third.resolution.n_annotations) == ("b", 3)
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 3) and len(asked(loop)) == 2


def test_at_most_audit_answers_are_asked(store: SqlStore) -> None:
    """With two at most, a 1-1 split is not asked about again: consensus takes it as it is."""
    loop, task_id = project(store, audit_answers=2)
    assert answer(loop, "e1", "b", task_id).resolution is None
    r = answer(loop, "e2", "a", task_id).resolution  # the audit tier is the top: a tie is final
    assert r is not None and (r.label, r.method, r.agreement, r.n_annotations) == (
        "b",  # a tie goes to the label voted first
        "majority_top_tier",
        0.5,
        2,
    )
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 2) and asked(loop) == [("e1", {"answers": 1})]


def test_one_audit_answer_changes_nothing(store: SqlStore) -> None:
    loop, task_id = project(store, audit_answers=1)
    result = answer(loop, "e1", "b", task_id)  # contradicts the model: taken at once
    assert result.resolution is not None and result.resolution.label == "b"
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 1) and asked(loop) == []


def test_an_audit_waiting_for_more_answers_counts_its_first(store: SqlStore) -> None:
    """A contradicted audit waits for a second answer; until people settle it the first answer
    stands in the certificate's evidence, so the model's error is not left out while it waits
    (or for ever, where nobody else at the audit tier answers)."""
    loop, task_id = project(store, certify=CERTIFY)
    first = loop.certify()
    assert first is not None and (first.n_audited, first.n_errors) == (0, 0)  # nobody answered yet
    assert answer(loop, "e1", "b", task_id).resolution is None  # contradicts "a": asks a second
    waiting = loop.certify()  # an answer, no resolution: the certificate is stale all the same
    assert waiting is not None and waiting.id != first.id
    assert (waiting.n_audited, waiting.n_errors) == (1, 1)
    assert answer(loop, "e2", "a", task_id).resolution is None  # 1-1: a third is asked
    tied = loop.certify()
    assert tied is not None and (tied.n_audited, tied.n_errors) == (1, 1)  # the first still stands
    settled = answer(loop, "e3", "a", task_id).resolution
    assert settled is not None and settled.label == "a"
    cert = loop.certify()
    assert cert is not None and (cert.n_audited, cert.n_errors) == (1, 0)


def test_an_unsure_first_answer_does_not_stand(store: SqlStore) -> None:
    loop, task_id = project(store, certify=CERTIFY)
    a = loop.next_task("e1")
    assert isinstance(a, Assignment) and a.task.id == task_id
    assert loop.submit(a.lease.id, "e1", "b", unsure=True).resolution is None
    cert = loop.certify()
    assert cert is not None and (cert.n_audited, cert.n_errors) == (0, 0)


def test_tasks_that_are_not_audits_never_ask(store: SqlStore) -> None:
    loop, task_id = project(store, audit_rate=0.0, accept_threshold=0.9)  # 0.75: low confidence
    with store.unit_of_work() as uow:
        assert uow.tasks.get(task_id).reason == "low_confidence"
    a = loop.next_task("e1")
    assert a is not None and a.task.id == task_id
    result = loop.submit(a.lease.id, "e1", "b")
    assert result.resolution is not None and result.resolution.label == "b"
    assert task_of(store, task_id) == (TaskStatus.RESOLVED, 1) and asked(loop) == []


# Re-checks of lone audit answers a later champion contradicts


def audited_without_model(store: SqlStore, first: str, **routing: Any) -> tuple[Loop, int]:
    """A project whose first item (x = -5) was audited before any model and answered ``first`` by
    e1; then the model becomes champion. The item's id."""
    routing = {"certify": CERTIFY, **routing}
    loop = Workspace(store).create_project({**CONFIG, "routing": {**CONFIG["routing"], **routing}})
    [outcome] = loop.ingest([{"external_id": "i0", "payload": {"x": -5.0}}]).outcomes
    assert outcome.reason == "no_model"
    a = loop.next_task("e1")
    assert isinstance(a, Assignment) and a.task.item_id == outcome.item_id
    resolution = loop.submit(a.lease.id, "e1", first).resolution
    assert resolution is not None and resolution.label == first  # nothing to contradict: taken
    loop.use_model(model, force=True, persist=False)
    return loop, outcome.item_id


def tasks_of(store: SqlStore, item_id: int) -> list[tuple[str, TaskStatus, int]]:
    with store.unit_of_work() as uow:
        return [(t.reason, t.status, t.tier) for t in uow.tasks.for_item(item_id)]


def rechecks(loop: Loop) -> list[dict[str, Any]]:
    return [e.data for e in loop.events(limit=1000) if e.action == "audit.recheck"]


def answer_item(loop: Loop, who: str, label: str, item_id: int) -> Any:
    a = loop.next_task(who)
    assert isinstance(a, Assignment) and a.task.item_id == item_id, (who, a)
    return loop.submit(a.lease.id, who, label)


def test_a_champion_that_contradicts_a_lone_audit_answer_asks_once_more(store: SqlStore) -> None:
    loop, item = audited_without_model(store, "b")
    cert = loop.certify()
    assert cert is not None and (cert.n_audited, cert.n_errors) == (1, 1)  # an error until re-checked
    assert tasks_of(store, item) == [
        ("no_model", TaskStatus.RESOLVED, 2),
        ("audit_recheck", TaskStatus.OPEN, 2),
    ]
    assert rechecks(loop) == [{"item_id": item, "answer": "b"}]
    assert loop.next_task("e1") is None  # the one who answered is not asked again
    assert answer_item(loop, "e2", "a", item).resolution is None  # 1-1: no two agree, a third is asked
    third = answer_item(loop, "e3", "a", item).resolution
    assert third is not None and (third.label, third.n_annotations) == ("a", 3)  # the first counts too
    cert = loop.certify()  # the label changed, the count did not: certified anew
    assert cert is not None and (cert.n_audited, cert.n_errors) == (1, 0)
    assert len(rechecks(loop)) == 1 and tasks_of(store, item)[-1] == ("audit_recheck", TaskStatus.RESOLVED, 2)


def test_a_confirmed_label_stays_the_champions_error_and_is_not_asked_again(store: SqlStore) -> None:
    loop, item = audited_without_model(store, "b")
    loop.certify()
    resolution = answer_item(loop, "e2", "b", item).resolution  # two agree: the model was wrong
    assert resolution is not None and (resolution.label, resolution.n_annotations) == ("b", 2)
    loop.ingest([{"external_id": "i1", "payload": {"x": 5.0}}])  # more evidence: certified anew
    cert = loop.certify()
    assert cert is not None and (cert.n_audited, cert.n_errors) == (1, 1)
    assert len(rechecks(loop)) == 1
    assert [reason for reason, _, _ in tasks_of(store, item)] == ["no_model", "audit_recheck"]


def test_a_label_the_champion_agrees_with_is_not_asked_again(store: SqlStore) -> None:
    loop, item = audited_without_model(store, "a")
    cert = loop.certify()
    assert cert is not None and cert.n_errors == 0
    assert rechecks(loop) == [] and len(tasks_of(store, item)) == 1


def test_one_audit_answer_never_rechecks(store: SqlStore) -> None:
    loop, item = audited_without_model(store, "b", audit_answers=1)
    cert = loop.certify()
    assert cert is not None and cert.n_errors == 1
    assert rechecks(loop) == [] and len(tasks_of(store, item)) == 1


def test_only_the_audits_the_certificate_looked_at_are_rechecked(store: SqlStore) -> None:
    """Audits at x = -9, -8, -7 (right), -6 and -1 (wrong), all answered before any model: the scan
    starts at the third most confident (0 of 3 errors) and stops at the fourth (1 of 4 > ε), so only
    x = -6's lone answer is asked about again; x = -1, below where the scan stopped, is not."""
    routing = {**CONFIG["routing"], "certify": {"epsilon": 0.3, "delta": 0.5, "min_evidence": 3}}
    loop = Workspace(store).create_project({**CONFIG, "routing": routing})
    xs = {f"i{k}": x for k, x in enumerate((-9.0, -8.0, -7.0, -6.0, -1.0))}
    report = loop.ingest([{"external_id": e, "payload": {"x": x}} for e, x in xs.items()])
    ids = {o.external_id: o.item_id for o in report.outcomes}
    while (a := loop.next_task("e1")) is not None:
        x = next(xs[e] for e, i in ids.items() if i == a.task.item_id)
        loop.submit(a.lease.id, "e1", "a" if x <= -7 else "b")
    loop.use_model(model, force=True, persist=False)
    cert = loop.certify()
    assert cert is not None and cert.threshold == pytest.approx(0.85)
    assert (cert.n_evidence, cert.n_errors) == (3, 0)
    assert rechecks(loop) == [{"item_id": ids["i3"], "answer": "b"}]


def test_with_two_answers_at_most_a_split_keeps_the_first(store: SqlStore) -> None:
    """``audit_answers: 2``: the re-check's answer and the one it re-checks are voted together; a
    1-1 tie at the top tier goes to the label voted first, as on any audit."""
    loop, item = audited_without_model(store, "b", audit_answers=2)
    loop.certify()
    resolution = answer_item(loop, "e2", "a", item).resolution
    assert resolution is not None
    assert (resolution.label, resolution.method, resolution.agreement, resolution.n_annotations) == (
        "b",
        "majority_top_tier",
        0.5,
        2,
    )


def test_two_hosts_certifying_at_once_ask_one_recheck(store_url: str) -> None:
    """Two API hosts certify the same champion at the same moment: the second waits on the
    item's lock while the first holds it, then finds the first's re-check open and asks none."""
    loop, item = audited_without_model(first_store := SqlStore(store_url), "b")
    other = Workspace(other_store := SqlStore(store_url)).project("audited")
    holding, waiting = threading.Event(), threading.Event()
    asked: dict[str, list[int]] = {}

    def first_host() -> None:
        with first_store.unit_of_work() as uow:
            asked["first"] = audit.recheck(loop._ctx, uow, [item], "host-1")
            holding.set()
            assert waiting.wait(10)
            threading.Event().wait(0.3)  # the other host is blocked now: commit under it

    host = threading.Thread(target=first_host)
    host.start()
    assert holding.wait(10)
    waiting.set()
    with other_store.unit_of_work() as uow:
        asked["second"] = audit.recheck(other._ctx, uow, [item], "host-2")
    host.join()
    assert asked == {"first": [item], "second": []}
    assert [reason for reason, _, _ in tasks_of(other_store, item)] == ["no_model", "audit_recheck"]
    other_store.close()
    first_store.close()


def test_an_audit_waiting_for_another_answer_is_counted_and_explained(store: SqlStore) -> None:
    """A contradicted audit counts as the model's error until another expert answers: the
    project's status says how many wait, and ``loopwright status`` says what they need."""
    from loopwright.cli.app import waiting_notes

    loop, task_id = project(store)
    assert loop.status().audits_waiting == 0  # open, but nobody has answered it yet
    answer(loop, "e1", "b", task_id)
    waiting = loop.status()
    assert waiting.audits_waiting == 1
    assert (
        "1 audited item(s) wait for another answer, and the certificate counts each by its first answer "
        "until then: the audit tier needs up to 3 different people (routing.audit_answers, "
        "tiers.required_annotations)"
    ) in waiting_notes(waiting, loop.config)
    assert loop.dashboard().totals["audits_waiting"] == 1  # the lead's dashboard shows it too
    answer(loop, "e2", "b", task_id)
    settled = loop.status()
    assert settled.audits_waiting == 0
    assert not any("audit" in note for note in waiting_notes(settled, loop.config))


@pytest.mark.parametrize("store_url", [POSTGRES], indirect=True)  # SQLite: one writer at a time
def test_an_answer_committed_after_the_certificate_read_its_evidence_is_counted(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two experts answer two audits at the same moment: e2's answer commits and a certificate is
    counted while e1's is written but not yet committed. e1's answer is stamped before that
    certificate, so no look-up of what is newer finds it; the evidence version does, and the next
    certificate counts both."""
    loop, task_id = project(store, certify=CERTIFY)
    [other] = loop.ingest([{"external_id": "i1", "payload": {"x": -6.0}}]).outcomes
    before = loop.certify()
    assert before is not None and before.n_audited == 0
    written, certified = threading.Event(), threading.Event()
    real_add = SqlAnnotationRepo.add

    def slow_add(self: SqlAnnotationRepo, *args: Any, **kwargs: Any) -> Any:
        row = real_add(self, *args, **kwargs)
        if args[2:3] == (first.lease.id,):  # e1's answer waits, uncommitted, while the rest happens
            written.set()
            certified.wait(timeout=1.0)
        return row

    monkeypatch.setattr(SqlAnnotationRepo, "add", slow_add)
    first = loop.next_task("e1")
    assert isinstance(first, Assignment) and first.task.id == task_id
    host = threading.Thread(target=loop.submit, args=(first.lease.id, "e1", "b"))  # contradicts "a"
    host.start()
    assert written.wait(timeout=10)
    answer_item(loop, "e2", "a", other.item_id)  # agrees: resolved and committed at once
    during = loop.certify()
    certified.set()
    host.join()
    assert task_of(store, task_id) == (TaskStatus.OPEN, 2)  # e1's answer asks a second opinion
    assert during is not None and during.n_audited == 1  # e2's answer, without e1's
    after = loop.certify()
    assert after is not None and after.n_audited == 2


def test_a_resolution_written_without_an_answer_moves_the_evidence_version(store: SqlStore) -> None:
    """A label that reaches an audited item by another road than an answer (an import, a
    correction) is checked at the end of its transaction: audited, the version moves."""
    loop = Workspace(store).create_project({**CONFIG, "routing": {**CONFIG["routing"], "audit_rate": 0.5}})
    report = loop.ingest([{"external_id": f"i{k}", "payload": {"x": -6.0 - k}} for k in range(10)])
    pid = loop.project.id
    with store.unit_of_work() as uow:
        audited = set(uow.decisions.audited_items(pid))
        before = uow.certifications.evidence_version(pid)
    ids = [o.item_id for o in report.outcomes]
    plain, sampled = next(i for i in ids if i not in audited), next(i for i in ids if i in audited)
    for item_id, moves in ((plain, 0), (sampled, 1)):
        with store.unit_of_work() as uow:
            [task] = uow.tasks.for_item(item_id)
            uow.resolutions.add(item_id, task.id, "a", "import", 1.0, 0)
        with store.unit_of_work() as uow:
            assert uow.certifications.evidence_version(pid) == before + moves
