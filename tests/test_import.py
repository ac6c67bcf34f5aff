"""Import from files and object stores: CSV, JSONL and Parquet streamed in batches, bad rows
reported with reasons while the rest goes in, re-runs idempotent, an S3 server (moto) read
through fsspec/s3fs, and the ``loopwright ingest`` command run as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from live import free_port
from loopwright.errors import Invalid
from loopwright.loop import Loop
from loopwright.loop.file_import import Rejected
from loopwright.readers import ColumnMap, read_rows
from loopwright.store.sql import SqlStore

CONFIG = {"name": "imp", "labels": ["a", "b"], "features": ["x", "y"]}
N = 40
BAD_Y = {7, 23}  # rows whose y is not a number


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "external_id": f"r{i}",
            "x": float(i),
            "y": "oops" if i in BAD_Y else float(i % 3),
            "source": f"s{i % 2}",
            "image": f"s3://media/r{i}.png",
        }
        for i in range(N)
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:  # parquet holds typed columns: a bad y is a null there
        typed = [{**r, "y": None if r["y"] == "oops" else r["y"]} for r in rows]
        pq.write_table(pa.Table.from_pylist(typed), path, row_group_size=16)
    return path


@pytest.fixture
def loop(store: SqlStore) -> Loop:
    from loopwright.loop import Workspace

    return Workspace(store).create_project(CONFIG)


def _import(loop: Loop, path: Path | str, batch: int = 10, **given: Any) -> tuple[Any, list[Rejected]]:
    opts = given.pop("storage_options", None)
    cmap = ColumnMap.for_project(loop.config, **given)
    rejected: list[Rejected] = []
    rows = read_rows(str(path), cmap, loop.config, batch_size=batch, storage_options=opts)
    return loop.import_rows(rows, rejected.append), rejected


def _items(loop: Loop) -> dict[str, Any]:
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        ids = [f"r{i}" for i in range(N)]
        return uow.items.by_external_ids(ctx.project.id, ids)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_each_format_imports_good_rows_and_reports_bad_ones(loop: Loop, tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"data{suffix}", _rows())
    summary, rejected = _import(loop, path, metadata_cols=("source",), media_cols=("image",))
    assert (summary.read, summary.ingested, summary.skipped, summary.rejected) == (N, N - 2, 0, 2)
    assert sorted(r.external_id or "" for r in rejected) == ["r23", "r7"]
    assert all("column 'y'" in r.reason and "is not a number" in r.reason for r in rejected)
    items = _items(loop)
    assert set(items) == {f"r{i}" for i in range(N)} - {"r7", "r23"}
    first = items["r1"]
    assert first.payload == {"x": 1.0, "y": 1.0}
    assert first.metadata == {"source": "s1", "media": {"image": "s3://media/r1.png"}}  # a reference
    again, rejected_again = _import(loop, path, metadata_cols=("source",), media_cols=("image",))
    assert (again.ingested, again.skipped, again.rejected) == (0, N - 2, 2)  # idempotent
    assert len(rejected_again) == 2


def test_an_interrupted_import_resumes_with_every_row_in_exactly_once(loop: Loop, tmp_path: Path) -> None:
    path = _write(tmp_path / "data.parquet", _rows())
    cmap = ColumnMap.for_project(loop.config)
    seen: list[int] = []

    def die_after_two(summary: Any) -> None:
        seen.append(summary.read)
        if len(seen) == 2:
            raise KeyboardInterrupt  # as a killed process would stop: between commits

    with pytest.raises(KeyboardInterrupt):
        loop.import_rows(
            read_rows(str(path), cmap, loop.config, batch_size=10), lambda r: None, die_after_two
        )
    assert len(_items(loop)) == 19  # two batches of 10, one bad row among them (r7)
    summary, _ = _import(loop, path)
    assert (summary.ingested, summary.skipped, summary.rejected) == (N - 2 - 19, 19, 2)
    ctx = loop._ctx
    with ctx.store.unit_of_work() as uow:
        assert uow.items.count(ctx.project.id) == N - 2  # each good row once


def test_same_id_with_other_content_is_rejected_not_overwritten(loop: Loop, tmp_path: Path) -> None:
    rows = [r for r in _rows() if r["external_id"] in ("r1", "r2")]
    _import(loop, _write(tmp_path / "a.jsonl", rows))
    changed = [{**rows[0], "x": 99.0}, rows[1], {**rows[1], "external_id": "r3"}]
    summary, rejected = _import(loop, _write(tmp_path / "b.jsonl", changed))
    assert (summary.ingested, summary.skipped, summary.rejected) == (1, 1, 1)
    assert rejected[0].external_id == "r1" and "already in with different content" in rejected[0].reason
    assert _items(loop)["r1"].payload["x"] == 1.0


def test_predictions_and_embeddings_come_from_columns(loop: Loop, tmp_path: Path) -> None:
    rows = [
        {"external_id": f"r{i}", "x": 1.0, "y": 2.0, "pa": 0.8, "pb": 0.2, "emb": [float(i), 1.0, 0.0]}
        for i in range(3)
    ] + [{"external_id": "r3", "x": 1.0, "y": 2.0, "pa": 0.8, "pb": 0.9, "emb": [1.0, 1.0, 0.0]}]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    summary, rejected = _import(
        loop,
        path,
        prediction_cols=(("a", "pa"), ("b", "pb")),
        prediction_model="ext@v1",
        embedding_col="emb",
    )
    assert (summary.ingested, summary.rejected) == (3, 1)
    assert rejected[0].external_id == "r3" and rejected[0].reason.startswith("prediction:")
    ctx = loop._ctx
    item = _items(loop)["r2"]
    with ctx.store.unit_of_work() as uow:
        (pred,) = uow.predictions.for_item(item.id)
        assert pred.probabilities == {"a": 0.8, "b": 0.2}
        assert uow.embeddings.get_many([item.id]) == {item.id: [2.0, 1.0, 0.0]}


def test_truncated_parquet_is_one_clear_error_naming_the_file(loop: Loop, tmp_path: Path) -> None:
    path = _write(tmp_path / "data.parquet", _rows())
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(Invalid, match=r"cut\.parquet: not a readable Parquet file \(truncated or corrupt\)"):
        _import(loop, cut)
    assert _items(loop) == {}


def test_csv_with_a_broken_quote_keeps_the_good_rows(loop: Loop, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text('external_id,x,y\nr0,1,2\nr1,"3,4\nr2,5,6\nr3,7,8\nr4,1,"x"",2\nr5,9,9\n')
    summary, rejected = _import(loop, path)
    assert sorted(_items(loop)) == ["r0", "r5"]
    (bad,) = rejected  # the open quote ran into the next rows: they are reported in its value
    assert bad.external_id == "r1" and "runs over 4 lines (a broken quote?)" in bad.reason
    assert all(f"r{i}," in bad.reason for i in (2, 3, 4))
    assert (summary.read, summary.ingested, summary.rejected) == (3, 2, 1)


def test_jsonl_bad_lines_are_reported_by_line(loop: Loop, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"external_id": "r0", "x": 1, "y": 2}),
        '{"external_id": "r1", "x": 1,',  # cut short
        "[1, 2]",
        json.dumps({"external_id": "r2", "payload": {"x": 3, "y": 4}, "metadata": {"k": 1}}),  # ingest shape
        json.dumps({"x": 1, "y": 2}),
    ]
    path.write_text("\n".join(lines) + "\n")
    summary, rejected = _import(loop, path)
    assert (summary.ingested, summary.rejected) == (2, 3)
    assert [(r.ref, r.reason.split(":")[0]) for r in rejected] == [
        ("line 2", "not valid JSON"),
        ("line 3", "must be a JSON object, not list"),
        ("line 5", "no id in column 'external_id'"),
    ]
    assert _items(loop)["r2"].metadata == {"k": 1}


def test_a_missing_column_names_the_file_and_the_columns(loop: Loop, tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("id,x\n1,2\n")
    with pytest.raises(Invalid, match=r"cols\.csv: no column\(s\) \['external_id', 'y'\]"):
        _import(loop, path)


# -- an S3-compatible server: moto's server mode, a real S3-protocol endpoint --------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs", reason="the import extra (s3fs) is not installed")
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)


def _upload(endpoint: str, bucket: str, key: str, path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(path), bucket, key)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_parquet_and_jsonl_from_an_s3_server(
    loop: Loop, tmp_path: Path, s3_endpoint: str, s3_env: None
) -> None:
    _upload(s3_endpoint, "inbox", "d/data.parquet", _write(tmp_path / "data.parquet", _rows()))
    _upload(s3_endpoint, "inbox2", "d/data.jsonl", _write(tmp_path / "data.jsonl", _rows()))
    opts = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    summary, _ = _import(loop, "s3://inbox/d/data.parquet", storage_options=opts)
    assert (summary.ingested, summary.rejected) == (N - 2, 2)
    again, _ = _import(loop, "s3://inbox2/d/data.jsonl", storage_options=opts)
    assert (again.ingested, again.skipped, again.rejected) == (0, N - 2, 2)
    with pytest.raises(Invalid, match=r"s3://inbox/d/nothing.parquet: no such file"):
        _import(loop, "s3://inbox/d/nothing.parquet", storage_options=opts)


# -- the command --------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwright", "ingest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )


def test_cli_ingest_reports_progress_rejects_and_resumes(tmp_path: Path) -> None:
    from loopwright.api import connect

    db = f"sqlite:///{tmp_path / 'lw.db'}"
    connect(db).create_project(CONFIG)
    path = _write(tmp_path / "data.parquet", _rows())
    done = _cli(str(path), "--db", db, "--project", "imp", "--batch", "8", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["read"], result["ingested"], result["rejected"]) == (N, N - 2, 2)
    assert result["rejected_by_reason"] == {"column …: … is not a number": 2}
    assert "rows/s" in done.stderr and "ingest" in done.stderr  # the progress bar, on stderr
    with (tmp_path / "data.parquet.rejects.csv").open() as f:
        report = list(csv.DictReader(f))
    assert [(r["where"], r["external_id"]) for r in report] == [
        ("row group 0, row 7", "r7"),
        ("row group 1, row 7", "r23"),
    ]
    again = _cli(str(path), "--db", db, "--rejects", "again.jsonl", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["skipped"] == N - 2
    assert len((tmp_path / "again.jsonl").read_text().splitlines()) == 2
    bad = _cli(str(tmp_path / "none.csv"), "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "none.csv: no such file" in bad.stderr


@pytest.mark.slow  # two subprocess runs over 3,000 rows: ~10 s, more on a loaded machine
def test_cli_ingest_killed_midway_and_rerun_has_every_row_once(tmp_path: Path) -> None:
    """SIGKILL mid-import (between or inside chunk transactions), then the same command again."""
    import signal
    import sqlite3

    from loopwright.api import connect

    db_file = tmp_path / "kill.db"
    db = f"sqlite:///{db_file}"
    connect(db).create_project(CONFIG)
    rows = [{"external_id": f"k{i}", "x": float(i), "y": 1.0} for i in range(3000)]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=500)
    args = [sys.executable, "-m", "loopwright", "ingest", str(path), "--db", db, "--batch", "200"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def count() -> int:
        try:
            with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5) as conn:
                return int(conn.execute("select count(*) from items").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    deadline = time.monotonic() + 120
    while count() < 400 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    halfway = count()
    assert 0 < halfway < 3000
    done = _cli(str(path), "--db", db, "--json", cwd=tmp_path)
    result = json.loads(done.stdout)
    assert (result["ingested"] + result["skipped"], result["rejected"]) == (3000, 0)
    assert result["skipped"] == halfway
    with sqlite3.connect(str(db_file)) as conn:
        ids = [r[0] for r in conn.execute("select external_id from items")]
    assert sorted(ids) == sorted(f"k{i}" for i in range(3000))  # every row once
