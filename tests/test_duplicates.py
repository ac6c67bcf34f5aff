"""Near-duplicates: MinHash LSH on text and perceptual hashes on images, with band keys kept in
the store so a batch looks up only its own keys; a near duplicate links to its original and,
with ``action: check``, goes to a cheap review."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import func, select

from loopwright.loop import Loop, Workspace
from loopwright.loop.duplicates import _bands, image_keys, jaccard, shingles
from loopwright.store.sql import SqlStore
from loopwright.store.sql.tables import duplicate_keys

TEXT = {
    "name": "txt",
    "labels": ["ham", "spam"],
    "modality": "text",
    "duplicates": {"text_threshold": 0.5, "shingle": 2},
}
BASE = "win a free cruise to the bahamas now by calling this number before midnight tonight"
NEAR = "WIN a free cruise to the Bahamas now by calling this number before midnight today"  # 1 word off
OTHER = "are we still meeting for lunch tomorrow at the usual place near the office"


def _meta(loop: Loop, ext: str) -> dict[str, Any]:
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        return dict(uow.items.by_external_ids(ctx.project.id, [ext])[ext].metadata)


def _keys(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(duplicate_keys)).scalar_one())


def test_shingles_and_bands() -> None:
    assert shingles("A b  C", 2) == {"a b", "b c"}
    assert shingles("one", 3) == {"one"} and shingles("   ", 3) == set()
    a, b = shingles(BASE, 2), shingles(NEAR, 2)
    assert jaccard(a, b) == pytest.approx(13 / 15)
    bands, rows = _bands(0.5, 128)
    assert bands * rows <= 128 and bands > 1


def test_image_keys_share_a_band_within_the_distance() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h = int(rng.integers(0, 2**63))
        flips = rng.choice(64, size=3, replace=False)
        near = h
        for bit in flips:
            near ^= 1 << int(bit)
        assert set(image_keys(h, 3)) & set(image_keys(near, 3))  # pigeonhole: 4 bands, 3 flips


def test_text_near_duplicates_link_across_batches_and_within_one(store: SqlStore) -> None:
    loop = Workspace(store).create_project(TEXT)
    b, _ = _bands(0.5, 128)
    loop.ingest([{"external_id": "base", "payload": {"text": BASE}}])
    assert _keys(store) == b  # one key per band, persisted
    loop.ingest(
        [
            {"external_id": "other", "payload": {"text": OTHER}},
            {"external_id": "near", "payload": {"text": NEAR}},  # matches the stored item
            {"external_id": "near2", "payload": {"text": OTHER + " ok"}},  # matches "other" in the batch
        ]
    )
    assert _meta(loop, "near") == {
        "duplicate_of": "base",
        "duplicate": {"kind": "text", "similarity": round(13 / 15, 6)},
    }
    assert _meta(loop, "near2")["duplicate_of"] == "other"
    assert "duplicate_of" not in _meta(loop, "other")
    assert loop.lineage_of_item("near")["item"]["duplicate_of"] == "base"
    assert _keys(store) == 4 * b


def test_the_index_is_not_rebuilt_per_batch(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup asks the store for the batch's own keys only, never for the project's items."""
    loop = Workspace(store).create_project(TEXT)
    loop.ingest(
        [{"external_id": f"t{i}", "payload": {"text": f"message number {i} " * 3}} for i in range(50)]
    )
    asked: list[int] = []
    from loopwright.store.sql.duplicates import SqlDuplicateKeyRepo

    original = SqlDuplicateKeyRepo.find

    def spy(self: Any, project_id: int, keys: Any) -> Any:
        asked.append(len(keys))
        return original(self, project_id, keys)

    monkeypatch.setattr(SqlDuplicateKeyRepo, "find", spy)
    loop.ingest([{"external_id": "new", "payload": {"text": "message number 7 " * 3}}])
    b, _ = _bands(0.5, 128)
    assert asked == [b]
    assert _meta(loop, "new")["duplicate_of"] == "t7"


def test_check_action_routes_near_duplicates_to_a_cheap_review(store: SqlStore) -> None:
    config = {**TEXT, "duplicates": {**TEXT["duplicates"], "action": "check"}}  # type: ignore[dict-item]
    loop = Workspace(store).create_project(config)
    loop.ingest([{"external_id": "base", "payload": {"text": BASE}}])
    report = loop.ingest([{"external_id": "near", "payload": {"text": NEAR}}])
    (o,) = report.outcomes
    assert (o.route, o.tier, o.reason) == ("review", 1, "near_duplicate")
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        (task,) = uow.tasks.for_item(o.item_id)
    assert (task.tier, task.priority, task.reason) == (1, 0.0, "near_duplicate")


def test_image_near_duplicates_by_perceptual_hash(store: SqlStore) -> None:
    digits = load_digits()
    config = {
        "name": "img",
        "labels": [str(d) for d in range(10)],
        "modality": "image",
        "duplicates": {"image_max_distance": 4},
    }
    loop = Workspace(store).create_project(config)
    first = digits.images[0]
    rng = np.random.default_rng(0)
    noisy = np.clip(first + rng.normal(0, 0.3, first.shape), 0, 16)  # the same picture, noised
    other = digits.images[1]  # another digit
    loop.ingest([{"external_id": "d0", "payload": {"pixels": first.reshape(-1).tolist()}}])
    loop.ingest(
        [
            {"external_id": "d0-noisy", "payload": {"pixels": noisy.reshape(-1).tolist()}},
            {"external_id": "d1", "payload": {"pixels": other.reshape(-1).tolist()}},
        ]
    )
    linked = _meta(loop, "d0-noisy")
    assert linked["duplicate_of"] == "d0" and linked["duplicate"]["kind"] == "image"
    assert linked["duplicate"]["similarity"] >= 1 - 4 / 64
    assert "duplicate_of" not in _meta(loop, "d1")


REUSE = {
    **TEXT,
    "duplicates": {**TEXT["duplicates"], "action": "reuse"},  # type: ignore[dict-item]
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": 3},  # a costly tier: the check takes one
        {"tier": 2, "name": "expert", "required_annotations": 1},
    ],
}


def _label(loop: Loop, ext: str, label: str, who: tuple[str, ...] = ("a1", "a2", "a3")) -> None:
    """Annotators answer ``label`` on the open task of ``ext`` until it is resolved."""
    for annotator in who:
        task = loop.next_task(annotator)
        if task is None:
            return
        assert task.item.external_id == ext
        loop.submit(task.lease.id, annotator, label)


def test_reuse_gives_a_near_duplicate_its_original_s_resolved_label(store: SqlStore) -> None:
    loop = Workspace(store).create_project(REUSE)
    loop.ingest([{"external_id": "base", "payload": {"text": BASE}}])
    _label(loop, "base", "spam")
    [(original,)] = [[r for r in loop.resolutions() if r.label == "spam"]]
    report = loop.ingest([{"external_id": "near", "payload": {"text": NEAR}}])
    (o,) = report.outcomes
    assert (o.route, o.tier, o.reason) == ("review", 1, "near_duplicate_reuse")
    assert loop.next_task("a1") is None  # nothing for anyone to do: the label is reused
    resolved = [r for r in loop.resolutions() if r.item_id == o.item_id]
    assert [(r.label, r.method, r.agreement, r.n_annotations) for r in resolved] == [
        ("spam", "reused", original.agreement, 0)
    ]
    lineage = loop.lineage_of_item("near")
    assert lineage["item"]["duplicate_of"] == "base"
    assert lineage["item"]["duplicate"]["reused"] == {"resolution_id": original.id, "label": "spam"}
    assert [(t["status"], t["reason"]) for t in lineage["tasks"]] == [("resolved", "near_duplicate_reuse")]
    assert lineage["annotations"] == [] and lineage["resolutions"][0]["method"] == "reused"
    event = [e for e in loop.events(limit=100) if e.action == "item.resolved"][-1]
    assert (event.subject_id, event.data["method"], event.data["reused_from"]) == (
        str(o.item_id), "reused", {"external_id": "base", "resolution_id": original.id},
    )  # fmt: skip
    dataset = loop.snapshot()
    entries = {e.item_id: e for e in dataset.entries}
    assert (entries[o.item_id].label, entries[o.item_id].source, entries[o.item_id].split.value) == (
        "spam", "reused", "train",
    )  # fmt: skip


def test_reuse_without_a_resolved_original_is_a_one_annotation_check(store: SqlStore) -> None:
    """The original still waits for its three annotations (or is in the same batch): the near
    duplicate goes to the cheap check instead: tier 1, one annotation, lowest priority."""
    loop = Workspace(store).create_project(REUSE)
    report = loop.ingest(
        [
            {"external_id": "base", "payload": {"text": BASE}},
            {"external_id": "near", "payload": {"text": NEAR}},  # its original is in the batch
        ]
    )
    base, near = report.outcomes
    assert (base.reason, near.reason) == ("no_model", "near_duplicate")
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        (task,) = uow.tasks.for_item(near.item_id)
        (base_task,) = uow.tasks.for_item(base.item_id)
    assert (task.tier, task.priority, task.reason, task.required_annotations) == (1, 0.0, "near_duplicate", 1)
    assert base_task.required_annotations == 3
    assert "reused" not in loop.lineage_of_item("near")["item"]["duplicate"]
    late = loop.ingest([{"external_id": "near-again", "payload": {"text": NEAR + " please"}}])
    assert late.outcomes[0].reason == "near_duplicate"  # base is not resolved yet: still a check
    assert [r.item_id for r in loop.resolutions()] == []


def test_link_and_check_never_reuse_a_label(store: SqlStore) -> None:
    for action in ("link", "check"):
        config = {**REUSE, "name": action, "duplicates": {**REUSE["duplicates"], "action": action}}
        loop = Workspace(store).create_project(config)
        loop.ingest([{"external_id": "base", "payload": {"text": BASE}}])
        _label(loop, "base", "spam")
        (o,) = loop.ingest([{"external_id": "near", "payload": {"text": NEAR}}]).outcomes
        assert o.reason == ("no_model" if action == "link" else "near_duplicate")
        assert [r.item_id for r in loop.resolutions()] != [] and all(
            r.item_id != o.item_id for r in loop.resolutions()
        )
        assert "reused" not in loop.lineage_of_item("near")["item"]["duplicate"]
