"""Where the real data sets live: ``LOOPWRIGHT_SHARED_DATA``, else ``shared/data`` beside the
checkout, else the workplace's ``/work/shared/data`` (CI may check out elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "data",
    Path("/work/shared/data"),
]
SHARED_DATA = Path(
    os.environ.get("LOOPWRIGHT_SHARED_DATA")
    or next((str(p) for p in _CANDIDATES if p.is_dir()), str(_CANDIDATES[0]))
)
