"""The task-type protocol: what an answer looks like, how answers become one, and how it is scored.

An answer is stored as its *canonical text* in the existing ``label`` columns: a class name
(single, rubric), a sorted JSON array (multilabel), ``"A"``/``"B"``/``"tie"`` (preference). The
loop calls :func:`loopwright.tasks.task_type` with the project's ``task`` and dispatches on what
it returns, instead of branching in each stage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loopwright.errors import Invalid, UnknownLabel


@dataclass(frozen=True, slots=True)
class Vote:
    """Answers to one item made one: the canonical answer, the share that agrees, and a tie flag."""

    label: str
    agreement: float  # in [0, 1]; for a label set, the mean per-label agreement
    tie: bool


class TaskType(Protocol):
    """One annotation type: its value schema, consensus, agreement, confidence and export."""

    name: str

    def parse(self, value: Any, labels: Sequence[str]) -> str:
        """The canonical text of an answer, or :class:`~loopwright.errors.Invalid` naming the field."""
        ...

    def vote(self, answers: Sequence[str], labels: Sequence[str]) -> Vote:
        """Consolidate canonical answers to one item (the ``majority`` consensus method)."""
        ...

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        """The dataset-export fields for one resolved answer."""
        ...


def json_list(value: Any, what: str) -> Any:
    """An answer given as JSON text, decoded (anything else passes through unchanged)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise Invalid(f"label: {what} must be a JSON array, not {value[:80]!r}") from None
    return value


def unknown_label(field: str, value: Any, labels: Sequence[str]) -> UnknownLabel:
    """The one-line error for an answer outside the project's labels."""
    return UnknownLabel(f"{field}: unknown label {value!r}; the project's labels are {list(labels)}")
