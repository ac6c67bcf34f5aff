"""Preprocessing: declared steps, each a pure function, applied on ingest and recorded in the
item's lineage with their parameters; empty and corrupt records are rejected with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwright.config import ProjectConfig
from loopwright.errors import Invalid
from loopwright.loop import Workspace
from loopwright.loop.preprocess import Dropped, apply
from loopwright.readers import ColumnMap, read_rows
from loopwright.store.sql import SqlStore

TEXT = {
    "name": "txt",
    "labels": ["ham", "spam"],
    "modality": "text",
    "preprocess": [{"step": "normalize_text", "lowercase": True}, {"step": "drop_empty"}],
}
IMAGE = {
    "name": "img",
    "labels": ["a", "b"],
    "modality": "image",
    "preprocess": [
        {"step": "resize_image", "height": 4, "width": 4},
        {"step": "normalize_image", "scale": 16.0},
    ],
}


def test_normalize_text_is_nfkc_whitespace_and_lowercase() -> None:
    config = ProjectConfig.from_dict(TEXT)
    out = apply(config, {"text": "  \uff26\uff55\uff4c\uff4c\u00a0WIDTH\tﬁne \n text ", "other": " Keep "})
    assert out == {"text": "full width fine text", "other": " Keep "}  # only the input field
    kept = ProjectConfig.from_dict({**TEXT, "preprocess": [{"step": "normalize_text"}]})
    assert apply(kept, {"text": "A  B"}) == {"text": "A B"}


def test_drop_empty_rejects_blank_text() -> None:
    config = ProjectConfig.from_dict(TEXT)
    for payload in ({"text": " \u3000 "}, {"text": ""}, {}):
        with pytest.raises(Dropped, match=r"^empty: field\(s\) \['text'\] missing or blank$"):
            apply(config, payload)


def test_resize_and_normalize_an_image_with_pillow() -> None:
    config = ProjectConfig.from_dict(IMAGE)
    pixels = np.repeat(np.repeat(np.arange(4.0).reshape(2, 2) * 4, 4, axis=0), 4, axis=1)  # 8x8 blocks
    out = apply(config, {"pixels": pixels.reshape(-1).tolist()})
    grid = np.asarray(out["pixels"]).reshape(4, 4)
    assert grid.shape == (4, 4)
    assert grid[0, 0] == 0.0 and grid[3, 3] == 12.0 / 16.0  # corners keep their block's value
    assert grid.mean() == pytest.approx(6.0 / 16.0)  # bilinear keeps the mean
    assert (np.diff(grid, axis=0) >= 0).all() and (np.diff(grid, axis=1) >= 0).all()
    with pytest.raises(Dropped, match="corrupt: 10 pixels do not fill a 3x3 image"):
        apply(config, {"pixels": list(range(10))})
    with pytest.raises(Dropped, match="corrupt: pixels are not numbers"):
        apply(config, {"pixels": ["x"] * 16})


def test_unknown_steps_and_bad_parameters_are_refused() -> None:
    with pytest.raises(Invalid) as exc:
        ProjectConfig.from_dict({**TEXT, "preprocess": [{"step": "stem"}, {"step": "resize_image"}]})
    fields = [f for f, _ in exc.value.errors]
    assert fields[0].startswith("preprocess.0") and any(f.startswith("preprocess.1") for f in fields)


def test_ingest_applies_the_steps_and_records_them(store: SqlStore) -> None:
    loop = Workspace(store).create_project(TEXT)
    with pytest.raises(Invalid) as exc:
        loop.ingest([{"external_id": "e", "payload": {"text": "   "}}])
    assert exc.value.errors == [("[0].payload", "empty: field(s) ['text'] missing or blank")]
    loop.ingest([{"external_id": "t1", "payload": {"text": "Hello\u2003WORLD"}, "metadata": {"k": 1}}])
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        item = uow.items.by_external_ids(ctx.project.id, ["t1"])["t1"]
    assert item.payload == {"text": "hello world"}
    assert item.metadata == {
        "k": 1,
        "preprocess": [
            {
                "step": "normalize_text",
                "fields": None,
                "form": "NFKC",
                "collapse_whitespace": True,
                "lowercase": True,
            },
            {"step": "drop_empty", "fields": None},
        ],
    }
    assert loop.lineage_of_item("t1")["item"]["preprocess"] == item.metadata["preprocess"]
    report = loop.ingest([{"external_id": "t1", "payload": {"text": "Hello\u2003WORLD"}}])
    assert report.duplicates == 1  # hashed as given: re-sending the original is idempotent


def test_file_import_reports_dropped_rows_and_keeps_the_rest(store: SqlStore, tmp_path: Path) -> None:
    loop = Workspace(store).create_project(TEXT)
    path = tmp_path / "t.csv"
    path.write_text('external_id,text\n1,"\uff21  b"\n2,"   "\n3,c\n')
    rejected: list[Any] = []
    rows = read_rows(str(path), ColumnMap.for_project(loop.config), loop.config)
    summary = loop.import_rows(rows, rejected.append)
    assert (summary.ingested, summary.rejected) == (2, 1)
    assert (rejected[0].ref, rejected[0].external_id) == ("row 3", "2")
    assert rejected[0].reason == "payload: empty: field(s) ['text'] missing or blank"
