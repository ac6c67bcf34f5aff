"""Single label (the default): one class name per item, plurality vote, accuracy, one label column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopwright.consensus import majority
from loopwright.tasks.base import Vote, unknown_label


class SingleLabel:
    """One class per item: today's behaviour, and the rubric's (a rubric is a single label)."""

    name = "single"

    def parse(self, value: Any, labels: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in labels:
            raise unknown_label("label", value, labels)
        return value

    def vote(self, answers: Sequence[str], labels: Sequence[str]) -> Vote:
        consensus = majority(answers)
        return Vote(consensus.label, consensus.agreement, consensus.tie)

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        return {"label": answer}
