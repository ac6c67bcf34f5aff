"""The text path on real data: the UCI SMS Spam Collection in ../shared/data (skips without it)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loopwright import Workspace
from loopwright.domain import Route
from loopwright.simulate import team, work
from loopwright.store.sql import SqlStore
from shared_data import SHARED_DATA

SMS = SHARED_DATA / "text" / "sms_spam.csv"


@pytest.fixture(scope="module")
def sms() -> list[tuple[str, str]]:
    if not SMS.exists():
        pytest.skip(f"real text data not found at {SMS} (it sits in shared/data beside the checkout)")
    with SMS.open(encoding="utf-8") as f:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(f)]
    return rows[:1200]


@pytest.mark.slow
def test_spam_loop_learns_from_reviewed_text(tmp_path: Path, sms: list[tuple[str, str]]) -> None:
    loop = Workspace(SqlStore(f"sqlite:///{tmp_path / 'sms.db'}")).create_project(
        {
            "name": "sms",
            "labels": ["ham", "spam"],
            "modality": "text",
            "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}, {"tier": 2, "name": "expert"}],
            "routing": {"bands": [{"min_confidence": 0.0, "tier": 1}]},
            "retrain": {"every_n_labels": 200, "min_labels": 100},
        }
    )
    truth = {f"sms-{i}": label for i, (_, label) in enumerate(sms)}
    records = [{"external_id": f"sms-{i}", "payload": {"text": text}} for i, (text, _) in enumerate(sms)]
    annotators = team(["ham", "spam"], {1: 2, 2: 1}, {1: 0.97, 2: 0.99})
    loop.ingest(records[:400])
    work(loop, annotators, truth.__getitem__)
    outcome = loop.maybe_retrain()
    assert outcome is not None and outcome.promoted
    report = loop.ingest(records[400:])
    auto = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
    assert len(auto) > 0.25 * len(report.outcomes)  # soft TF-IDF probabilities at threshold 0.9
    errors = sum(o.label != truth[o.external_id] for o in auto)
    assert errors / len(auto) < 0.03
    with pytest.raises(Exception, match="must be a string"):
        loop.ingest([{"external_id": "bad", "payload": {"text": 42}}])
