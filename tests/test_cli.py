"""The command line, run as a user runs it: a real subprocess on a real database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

DIGITS_YAML = Path(str(files("loopwright") / "examples" / "digits.yaml"))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwright", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    done = run("demo", "--quick", "--out", str(out), "--seed", "0", cwd=out)
    assert done.returncode == 0, done.stderr
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_demo_quick_meets_the_bar(demo: tuple[Path, dict[str, Any]]) -> None:
    _, s = demo
    assert s["rounds"] == 20 and s["items_seen"] == 5200 and s["held_out_size"] == 450
    assert s["synthetic_items"] == 5200 - (1347 - 40)  # every pool digit but gold once, the rest augmented
    assert s["human_labels_per_item"] == (s["human_labels"] + s["gold_answers"]) / 5200
    assert len(s["automation_by_round"]) == 20 and s["automation_by_round"][0] == 0.0
    assert s["gold_items"] == 40 and s["gold_answers"] >= 9 * 10  # onboarding: 10 gold per annotator
    assert "t1-sloppy" in s["paused_annotators"]  # accuracy 0.5: caught by the gold checks
    assert s["promotions"] >= 1
    drift = s["drift"]  # the seeded shift mid-stream is caught at once
    assert s["drift_detected_round"] == drift["detected_round"] == drift["starts_round"] == 10
    assert drift["accuracy_at_shift"] < drift["accuracy_before"] - 0.2  # seed 0: 0.969 → 0.696
    assert drift["false_alarm_rounds"] == drift["retracted_rounds"] == []  # the next batch confirmed it
    bridged = [v["metrics"] for v in s["model_versions"] if "bridge_from" in v["metrics"]]
    assert s["drift_bridge_copies"] == 3 and bridged  # after the shift the old labels carry over...
    assert all(m["bridge_synthetic"] == 3 * m["bridge_from"] for m in bridged)  # ...as shifted copies
    weak = s["underfit_challenger"]  # the demo's deliberately bad trainer is stopped by the gate
    assert weak["promoted"] is False and "failed not_significantly_worse" in weak["reason"]
    rejected = next(v for v in s["model_versions"] if v["version"] == weak["version"])
    assert rejected["status"] == "rejected" and rejected["gate"]["p_value"] < 0.05
    assert {sl["slicing"] for sl in rejected["gate"]["slices"]} == {"class", "source"}
    assert (s["epsilon"], s["delta"]) == (0.02, 0.05)
    first = next(i for i, h in enumerate(s["history"]) if h["certified_threshold"] is not None)
    assert all(h["auto_accepted"] == 0 for h in s["history"][:first]) and s["auto_accepted"] > 0
    assert s["auto_accept_error"] <= 0.02
    versions = s["model_versions"]
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
    assert sum(v["status"] == "champion" for v in versions) == 1
    assert all(len(v["dataset_version"]) == 64 and "passed" in v["gate"] for v in versions)


@pytest.mark.slow
def test_demo_is_seeded(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, first = demo
    again = run("demo", "--quick", "--out", str(tmp_path), "--seed", "0", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "human_labels",
        "auto_accepted",
        "auto_accept_error",
        "champion_accuracy_by_round",
        "automation_by_round",
    ):
        assert second[key] == first[key], key
    assert [v["dataset_version"] for v in second["model_versions"]] == [
        v["dataset_version"] for v in first["model_versions"]
    ]


@pytest.mark.slow
def test_demo_report_has_plots_and_gate_evidence(demo: tuple[Path, dict[str, Any]]) -> None:
    out, s = demo
    html = (out / "report.html").read_text()
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == 3
    assert html.count("<td>champion</td>") == 1
    assert f"<td>{s['items_seen']} ({s['synthetic_items']})</td>" in html
    assert "Drift: the images shift one pixel from round 11" in html and "t1-sloppy" in html
    weak = s["underfit_challenger"]["version"]
    assert f"<tr><td>{weak}</td><td>rejected (underfit on purpose)</td>" in html
    bridged = [v for v in s["model_versions"] if "bridge_from" in v["metrics"]]
    assert bridged, "the demo's retrains after the drift carry old labels over"
    for v in bridged:
        m = v["metrics"]
        copies = m["bridge_synthetic"] // m["bridge_from"]
        assert f"<td>{m['train_size']} + {copies} copies of {m['bridge_from']}</td>" in html


@pytest.mark.slow
def test_status_reads_the_demo_database(demo: tuple[Path, dict[str, Any]]) -> None:
    out, s = demo
    done = run("status", "--db", f"sqlite:///{out / 'loopwright.db'}", "--json", cwd=out)
    assert done.returncode == 0, done.stderr
    (status,) = json.loads(done.stdout)
    assert status["project"] == "digits" and status["items"] == s["items_seen"] + s["gold_items"]
    assert status["annotations"] == s["human_labels"]
    assert status["routes"]["auto_accept"] == s["auto_accepted"]
    assert status["champion"]["version"] == next(
        v["version"] for v in s["model_versions"] if v["status"] == "champion"
    )
    table = run("status", "--db", f"sqlite:///{out / 'loopwright.db'}", cwd=out)
    assert "project digits" in table.stdout and "automation_rate" in table.stdout
    assert status["certification"]["threshold"] == s["certification"]["threshold"]
    assert status["routing"] == s["routing"]


def test_lineage_and_events_on_the_demo_database(demo: tuple[Path, dict[str, Any]]) -> None:
    out, s = demo
    db = f"sqlite:///{out / 'loopwright.db'}"
    champion = next(v for v in s["model_versions"] if v["status"] == "champion")
    done = run("lineage", "model", str(champion["version"]), "--db", db, "--json", cwd=out)
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    assert model["dataset_version"] == champion["dataset_version"]
    by_annotator, by_tier = model["annotations_by_annotator"], model["annotations_by_tier"]
    assert sum(by_annotator.values()) == sum(by_tier.values()) >= model["train_items"]
    assert set(model["labels_by_source"]) == {"review"}  # audited labels never train
    tiers = {int(t) for t in model["annotations_by_tier"]}
    assert tiers <= {1, 2, 3} and 1 in tiers
    item = json.loads(run("lineage", "item", "digit-0", "--db", db, "--json", cwd=out).stdout)
    assert item["item"]["external_id"] == "digit-0" and item["predictions"] is not None
    tree = run("lineage", "item", "digit-0", "--db", db, cwd=out)
    assert tree.returncode == 0 and "item digit-0" in tree.stdout
    promoted = json.loads(run("events", "--db", db, "--action", "model.promoted", "--json", cwd=out).stdout)
    assert len(promoted) == s["promotions"] and {e["action"] for e in promoted} == {"model.promoted"}
    missing = run("lineage", "model", "99", "--db", db, cwd=out)
    assert missing.returncode == 2 and "error (not_found)" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_gold_from_the_demo_audits(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The audits the champion gets wrong, listed, then made gold on tiers 1-2 (a copy of the DB)."""
    out, _ = demo
    (tmp_path / "lw.db").write_bytes((out / "loopwright.db").read_bytes())
    db = f"sqlite:///{tmp_path / 'lw.db'}"
    listed = run("gold", "--from-audits", "--dry-run", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    *rows, summary = listed.stdout.splitlines()
    assert len(rows) >= 1
    assert summary == f"{len(rows)} audited item(s) the champion gets wrong would become gold on tier(s) 1,2"
    for row in rows:  # "digit-1149-aug343  gold 8  champion 3 (0.68)"
        found = re.fullmatch(r"(digit-\S+)  gold (\d)  champion (?!\2)\d \(0\.\d\d\)", row)
        assert found, row
        item = json.loads(run("lineage", "item", found[1], "--db", db, "--json", cwd=tmp_path).stdout)
        assert [r["label"] for r in item["resolutions"]] == [found[2]]  # the audit's answer
        assert any(d["audit"] for d in item["decisions"])
    made = run("gold", "--from-audits", "--db", db, cwd=tmp_path)
    assert made.stdout.splitlines() == [
        *rows,
        f"made {len(rows)} audited item(s) gold as {2 * len(rows)} gold task(s) on tier(s) 1,2",
    ]
    again = run("gold", "--from-audits", "--dry-run", "--db", db, cwd=tmp_path)
    assert again.stdout.splitlines() == [
        "0 audited item(s) the champion gets wrong would become gold on tier(s) 1,2"
    ]
    both = run("gold", "g.csv", "--from-audits", "--db", db, cwd=tmp_path)
    assert both.returncode == 2 and "give a gold file or --from-audits (one of them)" in both.stderr


def test_init_then_status(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'lw.db'}"
    done = run("init", str(DIGITS_YAML), "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created project digits" in done.stdout
    again = run("init", str(DIGITS_YAML), "--db", db, cwd=tmp_path)
    assert again.returncode == 2 and "conflict" in again.stderr and "Traceback" not in again.stderr


def test_broken_config_is_named_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlabels: [a, b]\nrouting: {accept_threshold: 2}\ntiers: oops\n")
    done = run("init", str(bad), "--db", f"sqlite:///{tmp_path / 'lw.db'}", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "routing.accept_threshold" in done.stderr and "tiers" in done.stderr


def test_status_on_empty_database_says_what_to_do(tmp_path: Path) -> None:
    from loopwright import connect

    connect(f"sqlite:///{tmp_path / 'lw.db'}").close()  # empty (a missing file is refused: test_newcomer)
    done = run("status", "--db", f"sqlite:///{tmp_path / 'lw.db'}", cwd=tmp_path)
    assert done.returncode == 0 and "loopwright demo" in done.stdout


def test_help_lists_commands(tmp_path: Path) -> None:
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert all(c in done.stdout for c in ("demo", "init", "status"))


def test_serve_answers_over_real_http(tmp_path: Path) -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    assert run("init", str(DIGITS_YAML), "--db", db, cwd=tmp_path).returncode == 0
    server = subprocess.Popen(
        [sys.executable, "-m", "loopwright", "serve", "--db", db, "--port", str(port), "--open"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/projects", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert body is not None, server.stderr.read() if server.poll() is not None else "no answer"
        assert [p["name"] for p in body["projects"]] == ["digits"]
    finally:
        server.terminate()
        server.wait(timeout=30)
