"""loopwright: human-in-the-loop continuous learning.

>>> import loopwright
>>> ws = loopwright.connect("sqlite:///loop.db")          # doctest: +SKIP
>>> loop = ws.create_project("examples/digits.yaml")       # doctest: +SKIP
"""

import logging
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from loopwright.client import Client

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``loopwright.Client`` on first use, so ``import loopwright`` does not import httpx."""
    if name == "Client":
        from loopwright.client import Client

        return Client
    raise AttributeError(f"module 'loopwright' has no attribute {name!r}")


__all__ = [
    "Assignment",
    "Capped",
    "Client",
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
