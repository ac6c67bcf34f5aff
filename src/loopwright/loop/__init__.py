"""Use cases: ingest, review, resolve, snapshot, retrain, status — through the ports in ``ports``."""

from loopwright.loop.ingest import IngestReport, ItemOutcome
from loopwright.loop.loop import Loop, Workspace
from loopwright.loop.retrain import RetrainOutcome
from loopwright.loop.review import Assignment, SubmitResult
from loopwright.loop.status import ProjectStatus

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
