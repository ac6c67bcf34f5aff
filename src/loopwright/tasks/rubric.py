"""Rubric rating of a model's answer: one of the project's rubric labels (e.g. correct /
partially_correct / wrong / unsafe) plus, when the project allows it, a free-text correction.

The rating is a single label (stored, voted and agreed on like one); the correction travels as
the submission's comment and is exported next to the rating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopwright.errors import Invalid
from loopwright.tasks.single import SingleLabel

MAX_CORRECTION = 20_000


class Rubric(SingleLabel):
    """A single label over rubric classes, with an optional correction."""

    name = "rubric"

    def check_correction(self, correction: str | None, allowed: bool) -> str | None:
        """The correction as kept (stripped, None if empty), or Invalid if not allowed or too long."""
        if correction is None or not correction.strip():
            return None
        if not allowed:
            raise Invalid("comment: this rubric takes no free-text correction (rubric.corrections: false)")
        if len(correction) > MAX_CORRECTION:
            raise Invalid(f"comment: a correction is at most {MAX_CORRECTION} characters")
        return correction.strip()

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        return {"rating": answer}
