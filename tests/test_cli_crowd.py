"""``loopwright aggregate`` and ``loopwright agreement`` run as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ANSWERS = "item,worker,label\nq1,w1,a\nq1,w2,a\n\nq1,w3,b\nq2,w1,b\nq2,w2,b\nq3,w3,a\n"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwright", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def answers(tmp_path: Path) -> Path:
    path = tmp_path / "answers.csv"
    path.write_text(ANSWERS)
    return path


def test_aggregate_writes_item_label_confidence(answers: Path, tmp_path: Path) -> None:
    done = run("aggregate", str(answers), "--method", "mv", "--out", "out.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "item,label,confidence",
        "q1,a,0.666667",
        "q2,b,1.000000",
        "q3,a,1.000000",
    ]


def test_aggregate_clamps_gold_items(answers: Path, tmp_path: Path) -> None:
    (tmp_path / "gold.csv").write_text("item,truth\nq1,b\n")
    done = run(
        "aggregate", str(answers), "--method", "mv", "--gold", "gold.csv", "--out", "o.csv", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o.csv").read_text().splitlines()[1] == "q1,b,1.000000"


@pytest.mark.parametrize("method", ["wmv", "ds", "ds1"])
def test_aggregate_every_method_with_custom_columns(tmp_path: Path, method: str) -> None:
    renamed = ANSWERS.replace("item,worker,label", "question,worker,answer")
    (tmp_path / "a.csv").write_text(renamed)
    done = run(
        "aggregate", "a.csv", "--method", method, "--item-col", "question", "--label-col", "answer",
        "--out", "o.csv", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "o.csv").read_text().splitlines()
    assert rows[0] == "item,label,confidence" and [r.split(",")[0] for r in rows[1:]] == ["q1", "q2", "q3"]


def test_agreement_json_and_table(answers: Path, tmp_path: Path) -> None:
    done = run("agreement", str(answers), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # P̄ = (1/3 + 1) / 2, P_e = 0.4² + 0.6² = 0.52
    assert report["fleiss_kappa"] == pytest.approx((2 / 3 - 0.52) / 0.48, abs=1e-6)
    assert report["items_with_2_or_more"] == 2 and report["workers"] == 3
    table = run("agreement", str(answers), cwd=tmp_path)
    assert table.returncode == 0 and "fleiss_kappa" in table.stdout and "per label" in table.stdout
    assert "least-agreeing pairs (" in table.stdout


def _fails(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr


def test_missing_columns_name_the_existing_ones(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("question,worker,answer\n1,w,0\n")
    _fails(
        run("agreement", "a.csv", cwd=tmp_path), "missing column(s) item, label", "question, worker, answer"
    )


def test_rows_with_empty_fields_are_named_by_line(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("item,worker,label\nq1,w1,a\nq1,,b\n\nq2,w1\n")
    _fails(run("aggregate", "a.csv", "--out", "o.csv", cwd=tmp_path), "line(s) 3, 5")
    assert not (tmp_path / "o.csv").exists()


def test_bad_gold_files(answers: Path, tmp_path: Path) -> None:
    (tmp_path / "unknown.csv").write_text("item,truth\nq9,a\n")
    _fails(run("aggregate", str(answers), "--gold", "unknown.csv", "--out", "o.csv", cwd=tmp_path), "'q9'")
    (tmp_path / "nocol.csv").write_text("item,label\nq1,a\n")
    _fails(
        run("aggregate", str(answers), "--gold", "nocol.csv", "--out", "o.csv", cwd=tmp_path),
        "missing column(s) truth",
    )
