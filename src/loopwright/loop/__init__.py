"""Use cases: ingest, review, resolve, snapshot, retrain, status — through the ports in ``ports``.

The names below load on first use, so importing one use case (or ``loopwright.loop.ports``)
does not import every other one and its numerical dependencies.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopwright.loop.ingest import IngestReport, ItemOutcome
    from loopwright.loop.loop import Loop, Workspace
    from loopwright.loop.retrain import RetrainOutcome
    from loopwright.loop.review import Assignment, SubmitResult
    from loopwright.loop.status import ProjectStatus

_LAZY = {
    "Assignment": "loopwright.loop.review",
    "IngestReport": "loopwright.loop.ingest",
    "ItemOutcome": "loopwright.loop.ingest",
    "Loop": "loopwright.loop.loop",
    "ProjectStatus": "loopwright.loop.status",
    "RetrainOutcome": "loopwright.loop.retrain",
    "SubmitResult": "loopwright.loop.review",
    "Workspace": "loopwright.loop.loop",
}


def __getattr__(name: str) -> object:
    """The names in ``__all__`` on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwright.loop' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Assignment",
    "IngestReport",
    "ItemOutcome",
    "Loop",
    "ProjectStatus",
    "RetrainOutcome",
    "SubmitResult",
    "Workspace",
]
