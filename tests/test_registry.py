"""Dataset versions (diff, export) and the model registry (aliases, rollback, deployment
manifests) through the Python API, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import test_loop
from loopwright import Conflict, Invalid, Loop, NotFound, Workspace
from loopwright.domain import DatasetVersion, ModelStatus
from loopwright.store.sql import SqlStore

CONFIG: dict[str, Any] = {
    **test_loop.CONFIG,
    "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "uncertain"}],  # one label per item
}
RELABEL = {"p0": "b", "p3": "b", "p2": "a"}  # p0, p3 were "a", p2 was "c"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def points(n: int, start: int = 0) -> list[tuple[dict[str, Any], str]]:
    return test_loop.points(n, seed=start, start=start)


def label_all(loop: Loop, truth: dict[str, str]) -> None:
    test_loop.label_all(loop, truth, annotators=("ann1", "ann2"))


@dataclass
class Seeded:
    loop: Loop
    store: SqlStore
    v1: DatasetVersion  # 45 items labelled truthfully
    v2: DatasetVersion  # + p45…p50, and p0, p3, p2 relabelled


def seed(store: SqlStore) -> Seeded:
    """45 items labelled truthfully (v1), then 6 more and three relabelled (v2)."""
    loop = Workspace(store, Clock()).create_project(CONFIG)
    first, more = points(45), points(6, start=45)
    loop.ingest([r for r, _ in first])
    label_all(loop, {r["external_id"]: lab for r, lab in first})
    v1 = loop.snapshot()
    loop.ingest([r for r, _ in more])
    label_all(loop, {r["external_id"]: lab for r, lab in more})
    with store.unit_of_work() as uow:  # a later, different resolution of three items
        items = uow.items.by_external_ids(loop.project.id, list(RELABEL))
        for ext, label in RELABEL.items():
            task = uow.tasks.for_item(items[ext].id)[-1]
            uow.resolutions.add(items[ext].id, task.id, label, "expert", 1.0, 1)
    v2 = loop.snapshot()
    return Seeded(loop, store, v1, v2)


@pytest.fixture
def seeded(store: SqlStore) -> Seeded:
    return seed(store)


def test_diff_and_version_lookup(seeded: Seeded) -> None:
    loop, v1, v2 = seeded.loop, seeded.v1, seeded.v2
    assert (v1.n_items, v2.n_items, v2.parent_id) == (45, 51, v1.id)
    d = loop.diff_datasets(v1.id, v2.id)
    assert d.counts == {"added": 6, "relabelled": 3, "removed": 0, "unchanged": 42}
    assert sorted((r.external_id, r.old, r.new) for r in d.relabelled) == [
        ("p0", "a", "b"),
        ("p2", "c", "a"),
        ("p3", "a", "b"),
    ]
    assert d.transitions == {"a → b": 2, "c → a": 1}
    assert sorted(r.external_id for r in d.added) == [f"p{i}" for i in range(45, 51)]
    assert all(r.old is None and r.new is not None for r in d.added)
    back = loop.diff_datasets(v2.id[:8], v1.id[:6])  # unique prefixes resolve
    assert back.counts == {"added": 0, "relabelled": 3, "removed": 6, "unchanged": 42}
    assert back.transitions == {"a → c": 1, "b → a": 2}
    assert loop.diff_datasets(None, v2.id).as_dict() == d.as_dict()  # default: from the parent
    with pytest.raises(Invalid, match="no parent"):
        loop.diff_datasets(None, v1.id)
    # lookup: latest, case-insensitive unique prefixes; unknown, short and ambiguous prefixes
    assert loop.dataset("latest").id == seeded.v2.id and loop.dataset(v1.id.upper()[:10]).id == v1.id
    unused = next(p for p in ("000000", "ffffff", "123456") if not seeded.v2.id.startswith(p))
    unused = unused if not v1.id.startswith(unused) else "abcdef"
    with pytest.raises(NotFound, match="does not exist"):
        loop.dataset(unused)
    with pytest.raises(Invalid, match="at least 6"):
        loop.dataset(v1.id[:5])
    twin = v1.id[:6] + "0" * 58 if not v1.id.startswith(v1.id[:6] + "0" * 58) else v1.id[:6] + "1" * 58
    with seeded.store.unit_of_work() as uow:  # a second version sharing the prefix
        uow.datasets.add(replace(v1, id=twin, parent_id=None, entries=()))
    with pytest.raises(Invalid, match="ambiguous") as info:
        loop.dataset(v1.id[:6])
    assert v1.id in str(info.value) and twin in str(info.value)
    assert loop.dataset(v1.id[:7] if v1.id[6] != "0" else v1.id).id == v1.id
    with pytest.raises(Invalid, match="unknown export format"):
        loop.export_dataset(v1.id, "xlsx", Path("x"))


def test_exports_are_deterministic_and_complete(seeded: Seeded, tmp_path: Path) -> None:
    loop, v1, v2 = seeded.loop, seeded.v1, seeded.v2
    has_pyarrow = importlib.util.find_spec("pyarrow") is not None
    if not has_pyarrow:
        with pytest.raises(Invalid, match="pip install pyarrow"):
            loop.export_dataset(v2.id, "parquet", tmp_path / "one.parquet")
    for fmt in ("jsonl", "csv", "parquet") if has_pyarrow else ("jsonl", "csv"):
        first = loop.export_dataset(v2.id, fmt, tmp_path / f"one.{fmt}")
        (tmp_path / "dir").mkdir(exist_ok=True)
        second = loop.export_dataset(v2.id[:12], fmt, tmp_path / "dir")
        assert second == tmp_path / "dir" / f"{v2.id[:12]}.{fmt}"
        assert first.read_bytes() == second.read_bytes(), fmt
    lines = (tmp_path / "one.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 51 and list(rows[0]) == [
        "item_id",
        "external_id",
        "item_hash",
        "label",
        "source",
        "split",
        "resolution_id",
        "payload",
    ]
    assert [r["item_hash"] for r in rows] == sorted(r["item_hash"] for r in rows)
    assert {r["external_id"]: r["label"] for r in rows if r["external_id"] in RELABEL} == RELABEL
    assert set(rows[0]["payload"]) == {"x", "y"}
    table = list(csv.DictReader(io.StringIO((tmp_path / "one.csv").read_text(encoding="utf-8"))))
    assert [r["item_hash"] for r in table] == [r["item_hash"] for r in rows]
    assert json.loads(table[0]["payload"]) == rows[0]["payload"]
    if has_pyarrow:
        import pyarrow.parquet as pq

        pt = pq.read_table(tmp_path / "one.parquet")
        assert pt.column_names == list(rows[0]) and pt.num_rows == 51
        assert pt.column("label").to_pylist() == [r["label"] for r in rows]
    # the DVC directory
    a = loop.export_dataset(v2.id, "dvc", tmp_path / "a")
    b = loop.export_dataset(v2.id, "dvc", tmp_path / "b")
    assert a == tmp_path / "a" / v2.id[:12] and [p.name for p in (tmp_path / "a").iterdir()] == [a.name]
    names = sorted(p.name for p in a.iterdir())
    assert names == ["README.md", "eval.jsonl", "manifest.json", "train.jsonl"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    manifest = json.loads((a / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["id"], manifest["parent"], manifest["n_items"]) == (v2.id, v1.id, 51)
    assert manifest["label_counts"] == v2.label_counts and sum(manifest["label_counts"].values()) == 51
    assert manifest["created_at"] == v2.created_at.isoformat()
    for name, info in manifest["files"].items():
        assert hashlib.sha256((a / name).read_bytes()).hexdigest() == info["sha256"], name
    counts = manifest["split_counts"]
    assert counts["train"] + counts["eval"] == 51
    assert manifest["files"]["train.jsonl"]["rows"] == counts["train"]
    assert loop.export_dataset(v2.id, "dvc", tmp_path / "a") == a  # same bytes again: a no-op
    (a / "README.md").write_text("edited\n")
    with pytest.raises(Conflict, match="differs"):
        loop.export_dataset(v2.id, "dvc", tmp_path / "a")


def test_registry_aliases_rollback_and_manifests(seeded: Seeded, tmp_path: Path) -> None:
    loop, store = seeded.loop, seeded.store
    deploy = tmp_path / "deploy"
    m1 = loop.retrain().model
    m2 = loop.retrain(dataset_id=seeded.v2.id).model
    assert (m1.version, m2.version, m2.status) == (1, 2, ModelStatus.CHAMPION)
    assert loop.model_aliases().previous == loop.model(1)
    # promoting a rejected version: Conflict and no manifest; unknown: NotFound
    with store.unit_of_work() as uow:
        rejected = uow.models.add(loop.project.id, ModelStatus.REJECTED, None, "h", 0, {}, b"")
    with pytest.raises(Conflict, match="rejected"):
        loop.deploy(deploy, ["prod"], rejected.version)
    with pytest.raises(NotFound, match="does not exist"):
        loop.deploy(deploy, ["prod"], 99)
    with pytest.raises(Invalid, match="unknown environment"):
        loop.deploy(deploy, ["qa"], 2)
    assert not deploy.exists()
    m4 = loop.retrain(dataset_id=seeded.v2.id).model  # v4 replaces v2
    assert m4.version == 4 and m4.status is ModelStatus.CHAMPION
    # deploy the champion to prod as well as dev
    done = loop.deploy(deploy, ["prod"], "champion")
    assert [p.relative_to(deploy).as_posix() for p in done.manifests] == ["dev/toy.json", "prod/toy.json"]
    with store.unit_of_work() as uow:
        sha4 = hashlib.sha256(uow.models.artifact(m4.id)).hexdigest()
    prod = json.loads((deploy / "prod" / "toy.json").read_text())
    promoted_at = loop.model(4).promoted_at
    assert promoted_at is not None
    assert prod == {
        "format": "loopwright.deployment/1",
        "project": "toy",
        "environment": "prod",
        "model_version": 4,
        "model_id": m4.id,
        "dataset_version": seeded.v2.id,
        "config_hash": m4.config_hash,
        "seed": m4.seed,
        "artifact_sha256": sha4,
        "promoted_at": promoted_at.isoformat(),
    }
    aliases = loop.model_aliases()
    assert (aliases.champion, aliases.previous) == (loop.model(4), loop.model(2))
    # rollback: v2 again, v4 retired, dev and prod (which ran v4) rewritten, staging untouched
    back = loop.rollback("ops", deploy)
    assert (back.model.version, back.replaced and back.replaced.version) == (2, 4)
    assert loop.model(4).status is ModelStatus.RETIRED and loop.model("champion").version == 2
    assert sorted(p.relative_to(deploy).as_posix() for p in back.manifests) == [
        "dev/toy.json",
        "prod/toy.json",
    ]
    assert json.loads((deploy / "prod" / "toy.json").read_text())["model_id"] == m2.id
    assert not (deploy / "staging").exists()
    # the next ingest predicts with the restored champion
    report = loop.ingest([points(1, start=900)[0][0]])
    with store.unit_of_work() as uow:
        assert uow.predictions.for_item(report.outcomes[0].item_id)[-1].model_version_id == m2.id
    # previous walks back the champions' history (v1), not to the version just rolled back from
    assert loop.model("previous").version == 1
    assert loop.rollback().model.version == 1
    with pytest.raises(Conflict, match="no previous version"):
        loop.rollback()
    assert loop.model("champion").version == 1
    # a promotion after rollbacks: previous is the champion it replaced
    loop.deploy(deploy, (), 4)
    assert loop.model("previous").version == 1
    events = [e for e in loop.events(limit=1000) if e.action == "model.rolled_back"]
    assert [(e.data["before"], e.data["after"]) for e in events] == [(4, 2), (2, 1)]
    assert events[0].data["before_id"] == m4.id and events[0].data["after_id"] == m2.id
