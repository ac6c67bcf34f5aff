"""Erasure (GDPR Art. 17) on SQLite and PostgreSQL: the content leaves the disk, a tombstone stays.

One seeded story per test: 45 blob points labelled and trained on (champion v1), then a
patient record ``EXT`` with unique strings in its payload and metadata is ingested, gets an
end user's complaint with a comment, is labelled by two annotators (one with a comment),
snapshotted and trained on (v2). Then it is erased.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from live import live_server
from loopwright import Client, Invalid, Loop, NotFound, Workspace
from loopwright.client import ApiError
from loopwright.domain import Split, content_hash
from loopwright.learning import split_for
from loopwright.service import Role, create_app
from loopwright.store.sql import SqlStore
from people import members
from test_loop import CONFIG, ManualClock, label_all, points

EXT = "patient-7f3a9c"
NOTE = "PAYLOADSECRET-1b2c3d"
META = "METASECRET-4e5f6a"
COMMENT = "ANNOTCOMMENT-7a8b9c"
FEEDBACK = "FEEDBACKSECRET-0d1e2f"
NICK = "Zoë-Ünïcode"  # stored JSON-escaped (Zo\u00eb…): found in events all the same
SECRETS = (EXT, NOTE, META, COMMENT, FEEDBACK)


def _record() -> dict[str, Any]:
    """The patient record; its note is chosen so that the item lands in the train split."""
    for i in range(100):
        payload = {"x": 12.2, "y": 0.1, "note": f"{NOTE}-{i}"}
        if split_for(content_hash(payload), CONFIG["retrain"]["eval_fraction"]) is Split.TRAIN:
            return {"external_id": EXT, "payload": payload, "metadata": {"name": META, "nick": NICK}}
    raise AssertionError("no note puts the item in the train split")  # pragma: no cover


@dataclass
class Story:
    loop: Loop
    store: SqlStore
    v_with: str  # the dataset version that holds EXT
    truth: dict[str, str]


def tell(store: SqlStore) -> Story:
    loop = Workspace(store, ManualClock()).create_project(CONFIG)
    data = points(45)
    truth = {r["external_id"]: label for r, label in data}
    loop.ingest([r for r, _ in data])
    label_all(loop, truth)
    assert loop.retrain().model.version == 1
    loop.ingest([_record(), *(r for r, _ in points(6, seed=2, start=200))])
    truth |= {EXT: "b"} | {r["external_id"]: label for r, label in points(6, seed=2, start=200)}
    prediction = loop.lineage_of_item(EXT)["predictions"][-1]["id"]
    loop.feedback(prediction, "thumbs_down", "fb1", comment=f"wrong, says {FEEDBACK}", actor="enduser-42")
    for who in ("ann1", "ann2"):
        a = loop.next_task(who)
        while a is not None and a.item.external_id != EXT:
            loop.submit(a.lease.id, who, truth[a.item.external_id])
            a = loop.next_task(who)
        assert a is not None
        loop.submit(a.lease.id, who, "b", comment=COMMENT if who == "ann1" else None)
    label_all(loop, truth)
    assert [r["label"] for r in loop.lineage_of_item(EXT)["resolutions"]] == ["b"]
    out = loop.retrain()
    assert out.model.version == 2
    assert next(e for e in out.dataset.entries if e.item_hash == content_hash(_record()["payload"]))
    return Story(loop, store, out.dataset.id, truth)


@pytest.fixture
def story(store: SqlStore) -> Story:
    return tell(store)


def found_in_tables(store: SqlStore, needle: str) -> list[str]:
    """``table.column`` of every text, JSON or binary column of the schema holding ``needle``."""
    with store.engine.connect() as conn:
        cols: list[tuple[str, str, str]]
        if conn.dialect.name == "postgresql":
            query = (
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
                " AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea')"
            )
            cols = [(t, c, d) for t, c, d in conn.execute(text(query))]
        else:
            tables = list(
                conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars()
            )
            cols = [(t, c[1], "") for t in tables for c in conn.exec_driver_sql(f'PRAGMA table_info("{t}")')]
        hits = []
        for table, column, kind in cols:
            as_text = {"bytea": f"encode(\"{column}\", 'escape')", "": f'CAST("{column}" AS TEXT)'}
            shown = as_text.get(kind, f'"{column}"::text')
            query = f'SELECT count(*) FROM "{table}" WHERE {shown} LIKE :pattern'
            if conn.execute(text(query), {"pattern": f"%{needle}%"}).scalar():
                hits.append(f"{table}.{column}")
        return hits


def on_disk(path: Path, needle: str) -> list[str]:
    """The SQLite files (database, -wal, -shm) whose raw bytes hold ``needle``."""
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return [f.name for f in files if f.exists() and needle.encode() in f.read_bytes()]


def test_erased_content_is_gone_from_every_table_and_from_disk(story: Story) -> None:
    loop, store = story.loop, story.store
    for needle in SECRETS:  # the checks can see them: each is stored before the erasure
        assert found_in_tables(store, needle), needle
    sqlite_file = Path(store.engine.url.database or "") if store.engine.dialect.name == "sqlite" else None
    if sqlite_file is not None:
        assert all(on_disk(sqlite_file, n) for n in SECRETS)
    tomb = loop.erase(EXT, actor="lead", reason="Art. 17 request #12")
    assert tomb.counts["items"] == 1 and tomb.counts["annotations"] == 2 and tomb.counts["feedback"] == 1
    assert tomb.counts["dataset_entries"] == 1 and tomb.counts["events_redacted"] >= 5
    for needle in SECRETS:
        assert found_in_tables(store, needle) == [], needle
    if sqlite_file is not None:
        for needle in SECRETS:
            assert on_disk(sqlite_file, needle) == [], needle
        assert Path(f"{sqlite_file}-wal").stat().st_size == 0  # checkpointed and truncated
    with pytest.raises(NotFound, match="patient-7f3a9c"):
        loop.lineage_of_item(EXT)
    with pytest.raises(NotFound):  # erased already
        loop.erase(EXT, actor="lead")
    assert [t.id for t in loop.erasures()] == [tomb.id]


def test_tombstone_and_audit_event_hold_no_content(story: Story) -> None:
    loop = story.loop
    tomb = loop.erase(EXT, actor="lead", reason="Art. 17 request #12")
    assert (tomb.actor, tomb.reason) == ("lead", "Art. 17 request #12") and len(tomb.subject_hash) == 64
    assert tomb.subject_hash not in {content_hash(EXT), EXT}  # salted
    event = next(e for e in loop.events(limit=10_000) if e.action == "item.erased")
    assert (event.actor, event.subject_type, event.subject_id) == ("lead", "erasure", str(tomb.id))
    assert event.data["subject_hash"] == tomb.subject_hash and event.data["counts"] == tomb.counts
    assert event.data["dataset_versions"] == [story.v_with]
    assert not any(s in json.dumps(event.data) for s in SECRETS)
    assert loop.was_erased(EXT) and not loop.was_erased("p0")


def test_events_about_the_item_are_redacted_others_kept(story: Story) -> None:
    loop, store = story.loop, story.store
    with store.unit_of_work() as uow:  # an integration that logged the external id in its data
        uow.events.add(loop.project.id, "etl", "sync.note", "project", "toy", {"ids": [EXT]})
        uow.events.add(loop.project.id, "etl", "sync.note", "project", "toy", {"ids": ["p3"]})
        uow.events.add(loop.project.id, "etl", "sync.note", "project", "toy", {"text": f"met {NICK} today"})
    before = {e.id: e for e in loop.events(limit=10_000)}
    commented = [e for e in before.values() if e.data.get("comment") == COMMENT]
    complaint = [e for e in before.values() if e.action == "feedback.received"]
    assert len(commented) == 1 and [e.actor for e in complaint] == ["enduser-42"]
    tomb = loop.erase(EXT, actor="lead")
    after = {e.id: e for e in loop.events(limit=10_000)}
    redacted = {i for i, e in after.items() if e.data == {"erased": True}}
    assert len(redacted) == tomb.counts["events_redacted"]
    assert commented[0].id in redacted and complaint[0].id in redacted
    assert after[complaint[0].id].actor == "erased"  # the end user's id goes too
    assert after[commented[0].id].actor == "ann1"  # annotators keep their record of work
    notes = [e for e in after.values() if e.action == "sync.note"]
    assert [n.data for n in notes] == [{"erased": True}, {"ids": ["p3"]}, {"erased": True}]
    kept = [i for i in before if i not in redacted]
    assert all(after[i] == before[i] for i in kept)  # nothing else changed
    assert any(e.action == "item.resolved" for e in (after[i] for i in kept))  # other items' history


def test_datasets_keep_their_ids_but_not_the_item_and_models_are_flagged(story: Story) -> None:
    loop = story.loop
    old = loop.dataset(story.v_with)
    loop.erase(EXT, actor="lead")
    kept = loop.dataset(story.v_with)
    assert (kept.id, kept.n_items, kept.label_counts) == (old.id, old.n_items, old.label_counts)
    assert len(kept.entries) == len(old.entries) - 1
    hashes = {e.item_hash for e in kept.entries}
    assert content_hash(_record()["payload"]) not in hashes
    marks = loop.erasure_marks()
    assert marks.datasets == {story.v_with: 1} and marks.models == {2: 1}
    assert loop.lineage_of_model(2)["trained_on_erased_items"] == 1
    assert loop.lineage_of_model(1)["trained_on_erased_items"] == 0  # trained before EXT came
    fresh = loop.snapshot()  # the labels are those of v1's dataset again: the same content, the same id
    assert fresh.id != old.id and fresh.id == loop.model(1).dataset_version_id
    assert fresh.n_items == old.n_items - 1 and {e.item_hash for e in fresh.entries} == hashes
    after = loop.retrain()  # trained on the next snapshot: nothing erased in it
    assert loop.lineage_of_model(after.model.version)["trained_on_erased_items"] == 0
    assert loop.erasure_marks().datasets == {story.v_with: 1}


def test_reingesting_an_erased_id_makes_a_new_item(story: Story) -> None:
    loop = story.loop
    old_id = loop.lineage_of_item(EXT)["item"]["id"]
    loop.erase(EXT, actor="lead")
    report = loop.ingest([_record()])
    assert report.created == 1 and report.outcomes[0].item_id != old_id
    again = loop.lineage_of_item(EXT)
    assert (len(again["predictions"]), again["annotations"], again["feedback"]) == (1, [], [])
    assert again["dataset_versions"] == [] and loop.was_erased(EXT)  # the tombstone stays


def test_open_work_on_the_item_is_cancelled(story: Story) -> None:
    loop = story.loop
    loop.ingest([{"external_id": "late-1", "payload": {"x": 6.0, "y": 6.0}}])  # between blobs: reviewed
    held = loop.next_task("ann3")
    assert held is not None and held.item.external_id == "late-1"
    open_before = sum(loop.status().open_tasks_by_tier.values())
    tomb = loop.erase("late-1", actor="lead")
    assert tomb.counts["tasks"] == 1 and tomb.counts["leases"] == 1
    assert sum(loop.status().open_tasks_by_tier.values()) == open_before - 1
    with pytest.raises(NotFound, match=f"lease id {held.lease.id}"):
        loop.submit(held.lease.id, "ann3", "a")
    assert all(a.annotator != "ann3" or a.item_id != held.item.id for a in loop.annotations(limit=1000))


def test_erasure_waits_for_a_submission_in_flight(story: Story) -> None:
    """A submission holding its task's row lock commits first; the erasure then takes its
    annotation too (without the erasure's own locks it would trip over it on PostgreSQL)."""
    loop, store = story.loop, story.store
    loop.ingest([{"external_id": "late-2", "payload": {"x": 6.0, "y": 6.0}}])
    held = loop.next_task("ann3")
    assert held is not None and held.item.external_id == "late-2"
    locked, done = threading.Event(), threading.Event()

    def submit_slowly() -> None:
        with store.unit_of_work() as uow:
            uow.tasks.lock(held.task.id)
            locked.set()
            time.sleep(0.5)
            uow.annotations.add(held.task.id, held.item.id, held.lease.id, "ann3", "a", False)
        done.set()

    worker = threading.Thread(target=submit_slowly)
    worker.start()
    assert locked.wait(10)
    tomb = loop.erase("late-2", actor="lead")
    worker.join(10)
    assert done.is_set() and tomb.counts["annotations"] == 1 and tomb.counts["tasks"] == 1


def test_bad_erasures_write_nothing(story: Story) -> None:
    loop = story.loop
    n_events = len(loop.events(limit=10_000))
    with pytest.raises(NotFound, match="'nope'"):
        loop.erase("nope", actor="lead")
    with pytest.raises(Invalid, match="external id"):
        loop.erase("  ", actor="lead")
    with pytest.raises(Invalid, match="longer than 2000"):
        loop.erase(EXT, actor="lead", reason="x" * 2001)
    assert loop.erasures() == [] and len(loop.events(limit=10_000)) == n_events
    assert loop.lineage_of_item(EXT)["item"]["external_id"] == EXT


# -- REST and SDK --------------------------------------------------------------------------


@pytest.fixture
def served(story: Story) -> Iterator[tuple[str, dict[str, str]]]:
    """The REST app on the story's store, served by uvicorn on a free port; tokens per user."""
    ws = Workspace(story.store, ManualClock())
    ws.create_project({**CONFIG, "name": "other"})
    auth, tokens = members("toy", {"lead": Role.LEAD, "ann1": Role.ANNOTATOR, "outsider": None})
    auth.add_membership("outsider", "other", Role.LEAD)
    app = create_app(ws, authenticator=auth)
    with live_server(app) as url:
        yield url, tokens


def test_rest_erase_for_leads_only(story: Story, served: tuple[str, dict[str, str]]) -> None:
    url, tokens = served
    with Client(url, tokens["ann1"]) as ann, pytest.raises(ApiError) as info:
        ann.erase("toy", EXT, reason="no")
    assert info.value.status_code == 403
    with Client(url, tokens["outsider"]) as outsider, pytest.raises(NotFound):
        outsider.erase("toy", EXT)
    with Client(url, tokens["lead"]) as lead:
        with pytest.raises(NotFound, match="'nope'"):
            lead.erase("toy", "nope")
        assert story.loop.erasures() == []
        tomb = lead.erase("toy", EXT, reason="Art. 17 request #12")
        assert (tomb.actor, tomb.reason, tomb.counts["items"]) == ("lead", "Art. 17 request #12", 1)
        with pytest.raises(NotFound):
            lead.erase("toy", EXT)
        detail = lead._request("GET", f"/v1/projects/toy/datasets/{story.v_with}").json()
        assert detail["erased_items"] == 1 and detail["n_items"] == len(detail["entries"]) + 1
        lineage = lead._request("GET", "/v1/projects/toy/lineage/models/2").json()
        assert lineage["trained_on_erased_items"] == 1
    assert [t.id for t in story.loop.erasures()] == [tomb.id]


def test_rest_reason_in_the_query_and_conflicting_reasons(
    story: Story, served: tuple[str, dict[str, str]]
) -> None:
    url, tokens = served
    with Client(url, tokens["lead"]) as lead:
        path = f"/v1/projects/toy/items/{EXT}"
        with pytest.raises(Invalid, match="given twice"):
            lead._request("DELETE", path, params={"reason": "a"}, json={"reason": "b"})
        with pytest.raises(Invalid):
            lead._request("DELETE", path, json={"reason": "a", "extra": 1})
        assert story.loop.erasures() == []
        body = lead._request("DELETE", path, params={"reason": "by query"}).json()
    assert body["reason"] == "by query" and body["subject_hash"] == story.loop.erasures()[0].subject_hash


# -- CLI -----------------------------------------------------------------------------------


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwright", *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        timeout=120,
    )


def test_cli_erase_then_datasets_and_models_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lw.db'}"
    store = SqlStore(url)
    story = tell(store)
    store.close()
    missing = _cli(tmp_path, "erase", "nope", "--project", "toy", "--db", url)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "'nope'" in missing.stderr
    done = _cli(tmp_path, "erase", EXT, "--project", "toy", "--reason", "Art. 17", "--db", url, "--json")
    assert done.returncode == 0, done.stderr
    tomb = json.loads(done.stdout)
    assert (tomb["reason"], tomb["actor"], tomb["counts"]["items"]) == ("Art. 17", "cli", 1)
    assert not any(s in done.stdout for s in SECRETS)
    shown = _cli(tmp_path, "datasets", "show", story.v_with, "--project", "toy", "--db", url, "--json")
    assert json.loads(shown.stdout)["erased_items"] == 1
    model = _cli(tmp_path, "models", "show", "2", "--project", "toy", "--db", url, "--json")
    assert json.loads(model.stdout)["trained_on_erased_items"] == 1
    table = _cli(tmp_path, "models", "show", "1", "--project", "toy", "--db", url)
    assert "trained_on_erased_items" in table.stdout and table.returncode == 0
    again = _cli(tmp_path, "erase", EXT, "--project", "toy", "--db", url)
    assert again.returncode == 2 and "does not exist" in again.stderr
