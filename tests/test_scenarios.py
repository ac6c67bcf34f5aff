"""Demo scenarios: the registry, the shared summary and report, and small seeded runs of
``multilabel`` and ``chat`` (the full ``--quick`` runs are the README's figures)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopwright import scenarios
from loopwright.cli.app import app
from loopwright.errors import Invalid
from loopwright.scenarios import chat, multilabel
from loopwright.scenarios.report import report_html
from shared_data import SHARED_DATA

HEAD = {"scenario", "items_seen", "human_labels", "auto_accepted", "auto_accept_error", "final_metric"}


def test_registry_refuses_unknown_and_digits() -> None:
    with pytest.raises(
        Invalid, match="scenario: unknown scenario 'nope'; choose one of digits, images, multilabel, chat"
    ):
        scenarios.runner("nope")
    with pytest.raises(Invalid, match="run_demo"):
        scenarios.runner("digits")
    assert scenarios.runner("multilabel") is multilabel.run


def test_summary_and_report(tmp_path: Path) -> None:
    result = scenarios.summary("chat", 10, 7, 4, 1, "accuracy", 0.5, note="<b>x</b>")
    assert result == {
        "scenario": "chat",
        "items_seen": 10,
        "human_labels": 7,
        "auto_accepted": 4,
        "auto_accept_error": 0.25,
        "final_metric": {"name": "accuracy", "value": 0.5},
        "note": "<b>x</b>",
    }
    assert scenarios.summary("chat", 1, 1, 0, 0, "m", None)["auto_accept_error"] is None
    scenarios.write(tmp_path / "out", result)
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == result
    page = (tmp_path / "out" / "report.html").read_text()
    assert "loopwright scenario chat" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "<tr><th>human labels</th><td>7 (0.70 per item)</td></tr>" in page
    assert "<tr><th>realised auto-accept error</th><td>25.00%</td></tr>" in page
    assert "<img" not in page  # no rounds, no plot


def test_report_plots_and_tabulates_the_rounds() -> None:
    history = [
        {
            "round": 0,
            "items": 100,
            "auto_accepted": 0,
            "auto_accept_errors": 0,
            "human_labels": 210,
            "certified_threshold": None,
            "certificate": None,
            "gate": None,
        },
        {
            "round": 1,
            "items": 100,
            "auto_accepted": 60,
            "auto_accept_errors": 1,
            "human_labels": 80,
            "certified_threshold": 0.91234,
            "certificate": "certified <t>",
            "gate": {"passed": False},
        },
    ]
    result = scenarios.summary(
        "boxes", 200, 290, 60, 1, "held_out_map@0.5", 0.8, epsilon=0.05, delta=0.1, history=history
    )
    page = report_html(result)
    assert page.count('<img alt="Automation and human work per round" src="data:image/png;base64,') == 1
    assert "<tr><th>auto-accepted</th><td>60 (30%)</td></tr>" in page
    assert "<tr><th>certified bound</th><td>ε = 0.05 at δ = 0.1</td></tr>" in page
    assert "<tr><th>held out map@0.5</th><td>0.800</td></tr>" in page
    header = "".join(
        f"<th>{c}</th>"
        for c in (
            "round",
            "items",
            "auto accepted",
            "auto accept errors",
            "human labels",
            "certified threshold",
            "certificate",
        )
    )
    assert f'<table class="rounds"><tr>{header}</tr>' in page
    assert "<tr><td>1</td><td>100</td><td>0</td><td>0</td><td>210</td><td>n/a</td><td>n/a</td></tr>" in page
    assert (
        "<td>2</td><td>100</td><td>60</td><td>1</td><td>80</td><td>0.912</td><td>certified &lt;t&gt;</td>"
        in page
    )
    details = json.loads(html.unescape(page.split("<pre>")[1].split("</pre>")[0]))
    assert "history" not in details and details["epsilon"] == 0.05  # the rounds are not repeated


def test_chat_without_the_shared_data_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match=r"scenario chat needs text/trec_questions.csv .*pass --data DIR"):
        chat.run(tmp_path / "out", quick=True, data_dir=tmp_path / "nowhere")
    result = CliRunner().invoke(
        app, ["demo", "--scenario", "chat", "--out", str(tmp_path), "--data", str(tmp_path)]
    )
    assert result.exit_code != 0 and isinstance(result.exception, Invalid)
    assert not (tmp_path / "loopwright.db").exists()


@pytest.mark.slow
def test_multilabel_scenario_small_run_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multilabel, "ROUND_SIZE", 60)
    monkeypatch.setattr(multilabel, "QUICK_ROUNDS", 2)
    result = CliRunner().invoke(app, ["demo", "--scenario", "multilabel", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) >= HEAD and summary["scenario"] == "multilabel"
    assert summary["items_seen"] == 120 and summary["resolved_items"] == 120  # no model yet: all reviewed
    assert summary["auto_accepted"] == 0 and summary["auto_accept_error"] is None
    assert summary["human_labels"] >= 240  # two answers per item, more where a label split
    assert summary["final_metric"]["name"] == "held_out_micro_f1" and summary["final_metric"]["value"] > 0.8
    assert set(summary["agreement"]["per_label"]) == set(multilabel.LABELS)
    rows = [json.loads(x) for x in Path(summary["export"]).read_text().splitlines()]
    assert len(rows) == 120 and all(set(multilabel.LABELS) <= set(r) for r in rows)
    assert (tmp_path / "report.html").is_file()


@pytest.mark.slow
def test_chat_scenario_small_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (SHARED_DATA / "text" / "trec_questions.csv").is_file():
        pytest.skip(f"the shared TREC questions are not at {SHARED_DATA}/text (set LOOPWRIGHT_SHARED_DATA)")
    monkeypatch.setitem(chat.ROUND_SIZE, True, 40)
    monkeypatch.setitem(chat.ROUNDS, True, 2)
    monkeypatch.setitem(chat.PAIRS, True, 20)
    summary = chat.run(tmp_path, seed=0, quick=True, data_dir=SHARED_DATA)
    assert set(summary) >= HEAD and summary["items_seen"] == 80 + 20
    assert summary["rubric"]["items_seen"] == 80 and summary["preference"]["resolved"] == 20
    rounds = summary["history"]  # the rubric part's rounds, at the top level for the report's plot
    assert [(h["round"], h["items"]) for h in rounds] == [(0, 40), (1, 40)]
    assert "history" not in summary["rubric"]
    assert sum(h["human_labels"] for h in rounds) == summary["rubric"]["human_labels"]
    assert sum(h["auto_accepted"] for h in rounds) == summary["auto_accepted"]
    assert set(summary["preference"]["bradley_terry"]) == {"small", "large"}
    pairs = [json.loads(x) for x in Path(summary["preference"]["export"]).read_text().splitlines()]
    assert len(pairs) == summary["preference"]["preference_pairs_exported"] > 0
    assert all(set(p) == {"prompt", "chosen", "rejected"} and p["prompt"][1]["role"] == "user" for p in pairs)
