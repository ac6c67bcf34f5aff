"""``loopwright drift`` run as a user runs it: a real subprocess on two CSV files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwright", "drift", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(path: Path, n: int, shift: float, seed: int, extra: str) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["age", "income", "colour", "flag", "const", extra])
        for i in range(n):
            w.writerow([
                f"{rng.normal(40 + 5 * shift, 10):.2f}",
                "" if i % 9 == 0 else f"{rng.lognormal(10, 0.5):.0f}",
                rng.choice(["red", "green", "blue"], p=[0.5, 0.3, 0.2] if not shift else [0.3, 0.3, 0.4]),
                int(rng.random() < 0.3),
                1,
                i,
            ])  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write(tmp_path / "ref.csv", 600, 0.0, seed=0, extra="only_ref")
    write(tmp_path / "cur.csv", 500, 1.0, seed=1, extra="only_cur")
    write(tmp_path / "same.csv", 600, 0.0, seed=2, extra="only_ref")
    return tmp_path


def test_json_is_one_object_with_per_feature_results(files: Path) -> None:
    done = run("ref.csv", "cur.csv", "--json", "--categorical", "flag", "--alpha", "0.01", cwd=files)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["drift"] is True and report["alpha"] == 0.01
    assert isinstance(report["domain_classifier_auc"], float)
    by_name = {f["name"]: f for f in report["features"]}
    assert set(by_name) == {"age", "income", "colour", "flag", "const", "only_ref", "only_cur"}
    for f in report["features"]:
        assert {"name", "test", "statistic", "p_value", "drift", "skipped"} <= set(f)
        assert isinstance(f["drift"], bool) and (f["p_value"] is None or 0 <= f["p_value"] <= 1)
    assert (by_name["age"]["test"], by_name["age"]["drift"]) == ("ks", True)
    assert (by_name["colour"]["test"], by_name["colour"]["drift"]) == ("chi2", True)
    assert (by_name["flag"]["test"], by_name["flag"]["drift"]) == ("chi2", False)
    assert by_name["income"]["drift"] is False and by_name["income"]["missing_current"] > 0.1
    assert (
        "constant" in by_name["const"]["skipped"] and "only in the current" in by_name["only_cur"]["skipped"]
    )


def test_table_html_and_no_drift_on_the_same_distribution(files: Path) -> None:
    done = run("ref.csv", "same.csv", "--html", "report.html", "--fail-on-drift", cwd=files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift" in done.stdout and "age" in done.stdout
    page = (files / "report.html").read_text()
    assert (
        page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 5
    )  # only_ref is shared here
    assert run("ref.csv", "cur.csv", "--fail-on-drift", "--no-classifier", cwd=files).returncode == 1


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ("missing.csv", "cur.csv"), "missing.csv: no such file"),
        ("", ("empty.csv", "cur.csv"), "the file is empty"),
        ("age,income\n", ("empty.csv", "cur.csv"), "no data rows"),
        ("x,y\n1,2\n", ("empty.csv", "cur.csv"), "share no column"),
        (None, ("ref.csv", "cur.csv", "--categorical", "nope"), "--categorical nope"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    files: Path, make: str | None, args: tuple[str, ...], message: str
) -> None:
    if make is not None:
        (files / "empty.csv").write_text(make)
    done = run(*args, cwd=files)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error (invalid):") and message in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr
