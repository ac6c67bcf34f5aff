"""`loopwright select` on Dask: a seeded Parquet pool scored on an in-process LocalCluster with
three workers gives exactly the single-process (and whole-array) answer for the uncertainty
strategies, ties included; k-center stays within its documented 4x bound; bad input and an
unreachable scheduler fail in one line."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("dask.distributed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from sklearn.linear_model import LogisticRegression  # noqa: E402

from loopwright import Workspace  # noqa: E402
from loopwright.active.topk import top_k  # noqa: E402
from loopwright.errors import Invalid  # noqa: E402
from loopwright.integrations import dask_select as ds  # noqa: E402
from loopwright.learning.artifact import dump_model  # noqa: E402
from loopwright.store.sql import SqlStore  # noqa: E402

N, D, GROUP = 12_000, 6, 1_000
FEATURES = [f"f{j}" for j in range(D)]


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded pool in row groups of 1,000, with exact duplicate rows far apart (ties)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, D)).astype(np.float32)
    X[9_500:9_600] = X[100:200]  # the same rows in another partition: equal scores
    table = pa.table(
        {"external_id": [f"p{i}" for i in range(N)], **{f: X[:, j] for j, f in enumerate(FEATURES)}}
    )
    path = tmp_path_factory.mktemp("pool") / "pool.parquet"
    pq.write_table(table, path, row_group_size=GROUP)
    return path


@pytest.fixture(scope="module")
def model() -> Any:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, D))
    y = np.array(["a", "b", "c"])[(X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)]
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    c = ds.connect_cluster(None, workers=3, processes=False)
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


def _pool(path: Path, rows_per_part: int = 2_000) -> ds.Pool:
    return ds.open_pool(str(path), FEATURES, "external_id", rows_per_part)


def _whole(path: Path, model: Any, strategy: str, k: int) -> np.ndarray:
    """The plain answer: the whole pool in one array, one predict_proba, the shared top_k."""
    table = pq.read_table(path)
    X = np.column_stack([table.column(f).to_numpy() for f in FEATURES]).astype(np.float32)
    return top_k(ds.SCORES[strategy](model.predict_proba(X)), k)


@pytest.mark.parametrize("strategy", ["margin", "entropy", "least-confidence"])
def test_dask_answer_is_exactly_the_single_process_answer(
    pool_file: Path, model: Any, client: Any, strategy: str
) -> None:
    pool = _pool(pool_file)
    spec = ds.ModelSpec(dump_model(model))
    assert len(pool.parts) == 6 and pool.rows == N
    on_dask = ds.select_on_dask(pool, 300, strategy, client, spec)
    single = ds.select_single(pool, 300, strategy, spec)
    assert on_dask.rows.tolist() == single.rows.tolist() == _whole(pool_file, model, strategy, 300).tolist()
    assert on_dask.scores.tolist() == single.scores.tolist()
    assert on_dask.ids == [f"p{r}" for r in on_dask.rows]
    assert on_dask.where == "dask (3 workers)"


def test_ties_go_to_the_lower_row_across_partitions(pool_file: Path, model: Any, client: Any) -> None:
    pool = _pool(pool_file, rows_per_part=1_000)  # 12 partitions: rows 100.. and 9500.. apart
    spec = ds.ModelSpec(dump_model(model))
    chosen = ds.select_on_dask(pool, N, "entropy", client, spec)  # everything, in order
    rank = {int(r): i for i, r in enumerate(chosen.rows)}
    for r in range(100, 200):
        assert rank[r] < rank[r + 9_400]  # equal scores: the lower row first
    assert chosen.rows.tolist() == _whole(pool_file, model, "entropy", N).tolist()


def test_kcenter_stays_within_four_times_the_exact_greedy_radius(pool_file: Path, client: Any) -> None:
    pool = _pool(pool_file)
    approx = ds.select_on_dask(pool, 40, "kcenter", client, random_state=3)
    exact = ds.select_single(pool, 40, "kcenter", random_state=3)
    assert len(set(approx.rows.tolist())) == 40 and len(exact.rows) == 40
    r_approx, r_exact = ds.covering_radius(pool, approx.rows), ds.covering_radius(pool, exact.rows)
    assert r_approx <= 4 * r_exact  # greedy >= OPT, two rounds <= 4 OPT
    again = ds.select_on_dask(pool, 40, "kcenter", client, random_state=3)
    assert again.rows.tolist() == approx.rows.tolist()  # seeded: the same answer every time


def test_an_unreachable_scheduler_is_one_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ds.ClusterUnavailable, match=rf"tcp://127.0.0.1:{port} is not answering") as info:
        ds.connect_cluster(f"tcp://127.0.0.1:{port}", timeout=1)
    assert "\n" not in str(info.value)


def test_bad_input_is_refused_before_anything_runs(pool_file: Path, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="does not exist"):
        ds.open_pool(str(tmp_path / "missing.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(Invalid, match="not a readable Parquet file"):
        ds.open_pool(str(tmp_path / "bad.parquet"))
    with pytest.raises(Invalid, match="lacks the feature column"):
        ds.open_pool(str(pool_file), ["f0", "nope"])
    pool = _pool(pool_file)
    with pytest.raises(Invalid, match="unknown strategy"):
        ds.select_single(pool, 5, "bald")
    with pytest.raises(Invalid, match="needs a model"):
        ds.select_single(pool, 5, "margin")


def test_cli_selects_with_the_project_champion_on_a_scheduler(
    pool_file: Path, model: Any, client: Any, tmp_path: Path
) -> None:
    from loopwright.cli.app import app

    db = f"sqlite:///{tmp_path / 'lw.db'}"
    ws = Workspace(SqlStore(db))
    loop = ws.create_project({"name": "pool", "labels": ["a", "b", "c"], "features": FEATURES})
    loop.use_model(model, force=True)
    ws.close()
    base = ["select", "--db", db, "--pool", str(pool_file), "--budget", "25", "--id-column", "external_id"]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--scheduler", client.scheduler.address, "--json"])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.stdout)
    expected = _whole(pool_file, model, "margin", 25).tolist()
    assert [r["row"] for r in answer["rows"]] == expected
    assert [r["id"] for r in answer["rows"]] == [f"p{r}" for r in expected]
    single = runner.invoke(app, [*base, "--single", "--json"])
    assert json.loads(single.stdout)["rows"] == answer["rows"]
    bad = runner.invoke(app, [*base, "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1"])
    assert isinstance(bad.exception, ds.ClusterUnavailable)
    kcenter = ["select", "--pool", str(pool_file), "--budget", "5", "--strategy", "kcenter", "--single"]
    k = runner.invoke(app, [*kcenter, "--features", ",".join(FEATURES), "--json"])  # no model needed
    assert k.exit_code == 0, k.output
    exact = ds.select_single(_pool(pool_file), 5, "kcenter")
    assert [r["row"] for r in json.loads(k.stdout)["rows"]] == exact.rows.tolist()


def test_selections_repeated_on_one_client_keep_their_model(pool_file: Path, model: Any, client: Any) -> None:
    """The model is scattered under a key of its own per call: with the content's hash, a second
    call got the first one's key, released when the first call's future was collected, and
    failed with "lost dependencies" (seen in bench/select_cluster.py --sweep)."""
    import gc

    spec = ds.ModelSpec(dump_model(model))
    pool = _pool(pool_file)
    expected = ds.select_single(pool, 20, "margin", spec).rows.tolist()
    for _ in range(4):
        assert ds.select_on_dask(pool, 20, "margin", client, spec).rows.tolist() == expected
        gc.collect()
