"""loopwright: human-in-the-loop continuous learning.

>>> import loopwright
>>> ws = loopwright.connect("sqlite:///loop.db")          # doctest: +SKIP
>>> loop = ws.create_project("examples/digits.yaml")       # doctest: +SKIP
"""

import logging
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from loopwright.api import connect
    from loopwright.client import Client
    from loopwright.config import ProjectConfig
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

# name -> module: imported on first use, so ``import loopwright`` (and every CLI command's
# start-up) stays free of SQLAlchemy, NumPy, SciPy, scikit-learn and httpx.
_LAZY = {
    "Assignment": "loopwright.loop",
    "Client": "loopwright.client",
    "IngestReport": "loopwright.loop",
    "Loop": "loopwright.loop",
    "ProjectConfig": "loopwright.config",
    "ProjectStatus": "loopwright.loop",
    "RetrainOutcome": "loopwright.loop",
    "SubmitResult": "loopwright.loop",
    "Workspace": "loopwright.loop",
    "connect": "loopwright.api",
}


def __getattr__(name: str) -> object:
    """The public names in ``_LAZY`` on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwright' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
