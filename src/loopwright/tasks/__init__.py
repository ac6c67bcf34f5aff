"""Task types: single label, multi-label, rubric rating, pairwise preference, spans and boxes.

:func:`task_type` maps a project's ``task`` to the object the loop dispatches on.
"""

from __future__ import annotations

from typing import Literal

from loopwright.errors import Invalid
from loopwright.tasks.base import TaskType, Vote
from loopwright.tasks.boxes import Boxes
from loopwright.tasks.multilabel import MultiLabel
from loopwright.tasks.preference import Preference
from loopwright.tasks.rubric import Rubric
from loopwright.tasks.single import SingleLabel
from loopwright.tasks.spans import Spans

TaskName = Literal["single", "multilabel", "rubric", "preference", "spans", "boxes"]
TASKS: dict[str, TaskType] = {
    t.name: t for t in (SingleLabel(), MultiLabel(), Rubric(), Preference(), Spans(), Boxes())
}


def task_type(name: str) -> TaskType:
    """The task type called ``name``; Invalid naming the choices otherwise."""
    if (found := TASKS.get(name)) is None:
        raise Invalid(f"task: unknown task type {name!r}; choose one of {sorted(TASKS)}")
    return found


__all__ = [
    "TASKS",
    "Boxes",
    "MultiLabel",
    "Preference",
    "Rubric",
    "SingleLabel",
    "Spans",
    "TaskName",
    "TaskType",
    "Vote",
    "task_type",
]
