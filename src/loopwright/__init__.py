"""loopwright: human-in-the-loop continuous learning.

>>> import loopwright
>>> ws = loopwright.connect("sqlite:///loop.db")          # doctest: +SKIP
>>> loop = ws.create_project("examples/digits.yaml")       # doctest: +SKIP
"""

import logging

from loopwright.api import connect
from loopwright.config import ProjectConfig
from loopwright.errors import (
    Capped,
    Conflict,
    Invalid,
    LeaseExpired,
    LoopwrightError,
    NotFitted,
    NotFound,
    Paused,
    StoreUnavailable,
    UnknownLabel,
)
from loopwright.loop import (
    Assignment,
    IngestReport,
    Loop,
    ProjectStatus,
    RetrainOutcome,
    SubmitResult,
    Workspace,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "Assignment",
    "Capped",
    "Conflict",
    "IngestReport",
    "Invalid",
    "LeaseExpired",
    "Loop",
    "LoopwrightError",
    "NotFitted",
    "NotFound",
    "Paused",
    "ProjectConfig",
    "ProjectStatus",
    "RetrainOutcome",
    "StoreUnavailable",
    "SubmitResult",
    "UnknownLabel",
    "Workspace",
    "__version__",
    "connect",
]
