"""The one module that reads the environment (prefix ``LOOPWRIGHT_``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    db_url: str

    @classmethod
    def from_env(cls) -> Settings:
        """``LOOPWRIGHT_HOME`` (default: the working directory) and ``LOOPWRIGHT_DB_URL``
        (default: SQLite file ``loopwright.db`` under the home)."""
        home = Path(os.environ.get("LOOPWRIGHT_HOME") or Path.cwd())
        url = os.environ.get("LOOPWRIGHT_DB_URL") or f"sqlite:///{home / 'loopwright.db'}"
        return cls(home=home, db_url=url)
