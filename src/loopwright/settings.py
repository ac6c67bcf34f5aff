"""The one module that reads the environment (prefix ``LOOPWRIGHT_``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    db_url: str
    serve_open: bool = False  # LOOPWRIGHT_SERVE_OPEN=1: no authentication (`serve --open`)
    public_metrics: bool = False  # LOOPWRIGHT_PUBLIC_METRICS=1: /metrics without a token

    @classmethod
    def from_env(cls) -> Settings:
        """``LOOPWRIGHT_HOME`` (default: the working directory) and ``LOOPWRIGHT_DB_URL``
        (default: SQLite file ``loopwright.db`` under the home); the server flags
        ``LOOPWRIGHT_SERVE_OPEN`` and ``LOOPWRIGHT_PUBLIC_METRICS`` ("1": on)."""
        home = Path(os.environ.get("LOOPWRIGHT_HOME") or Path.cwd())
        url = os.environ.get("LOOPWRIGHT_DB_URL") or f"sqlite:///{home / 'loopwright.db'}"
        serve_open = os.environ.get("LOOPWRIGHT_SERVE_OPEN") == "1"
        public_metrics = os.environ.get("LOOPWRIGHT_PUBLIC_METRICS") == "1"
        return cls(home=home, db_url=url, serve_open=serve_open, public_metrics=public_metrics)
