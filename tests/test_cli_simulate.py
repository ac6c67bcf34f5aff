"""``loopwright simulate``: runs in a real subprocess, error paths in-process through ``main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loopwright.cli.app import main


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwright", "simulate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_has_the_schema_and_is_deterministic(tmp_path: Path) -> None:
    args = ("--dataset", "digits", "--strategy", "hybrid", "--budget", "30", "--batch", "10", "--seeds", "2")
    first, second = run(*args, "--json", cwd=tmp_path), run(*args, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    out = json.loads(first.stdout)
    assert set(out) == {"dataset", "strategy", "full_accuracy", "seeds", "labels_to_target"}
    assert out["dataset"] == "digits" and out["strategy"] == "hybrid"
    assert 0.9 < out["full_accuracy"] <= 1
    assert [s["seed"] for s in out["seeds"]] == [0, 1]
    assert [n for n, _ in out["seeds"][0]["curve"]] == [10, 20, 30]
    assert all(0 <= acc <= 1 for s in out["seeds"] for _, acc in s["curve"])
    assert set(out["labels_to_target"]) == {"0.95", "0.98"}


def test_text_csv_with_noisy_annotators_prints_a_table(tmp_path: Path) -> None:
    words = {"sport": "goal match team", "food": "bread cheese soup", "tech": "code chip robot"}
    lines = [f"{w.split()[i % 3]} number {i},{label}" for label, w in words.items() for i in range(12)]
    (tmp_path / "q.csv").write_text("question,topic\n" + "\n".join(lines) + "\n")
    done = run(
        "--dataset", "csv:q.csv", "--text-col", "question", "--label-col", "topic",
        "--strategy", "margin", "--budget", "9", "--batch", "3", "--annotators", "noisy", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "margin on csv:q.csv" in done.stdout and "median" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dataset", "csv:nope.csv"), "nope.csv: no such file"),
        (("--dataset", "csv:q.csv", "--label-col", "lab"), "the columns are: text, label"),
        (("--dataset", "csv:empty.csv"), "no data rows, so the pool is empty"),
        (("--dataset", "digits", "--budget", "5000"), "larger than the pool of 1347"),
        (("--dataset", "digits", "--strategy", "bald"), "'bald' is not one of"),
    ],
)
def test_bad_input_exits_2_without_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    """In-process through ``main`` (the console entry point), to keep the test fast."""
    (tmp_path / "q.csv").write_text("text,label\nhi,a\nho,b\n")
    (tmp_path / "empty.csv").write_text("text,label\n\n")
    options = {"--strategy": "margin", "--budget": "10", **dict(zip(args[::2], args[1::2], strict=True))}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["loopwright", "simulate", *[x for kv in options.items() for x in kv]])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert message in " ".join(stderr.split())
    assert "Traceback" not in stderr


def test_without_strategy_the_default_auto_runs(tmp_path: Path) -> None:
    args = ("--dataset", "digits", "--budget", "40", "--batch", "10", "--json")
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["strategy"] == "auto"
    assert [n for n, _ in out["seeds"][0]["curve"]] == [10, 20, 30, 40]
