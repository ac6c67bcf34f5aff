"""Wiring for Python users: ``loopwright.connect(url)`` opens a SQL-backed :class:`Workspace`."""

from __future__ import annotations

from loopwright.loop import Workspace
from loopwright.loop.context import Clock, utc_now
from loopwright.settings import Settings
from loopwright.store.sql import SqlStore


def connect(url: str | None = None, clock: Clock = utc_now) -> Workspace:
    """Open (and migrate) the database at ``url``; default: ``LOOPWRIGHT_DB_URL`` or a SQLite file
    ``loopwright.db`` under ``LOOPWRIGHT_HOME`` or the working directory."""
    return Workspace(SqlStore(url or Settings.from_env().db_url), clock)
