"""Wiring for Python users: ``loopwright.connect(url)`` opens a SQL-backed :class:`Workspace`."""

from __future__ import annotations

from loopwright.integrations.chat import HttpChat  # standard library only
from loopwright.loop import Workspace
from loopwright.loop.context import Clock, utc_now
from loopwright.settings import Settings
from loopwright.store.sql import SqlStore


def connect(url: str | None = None, clock: Clock = utc_now) -> Workspace:
    """Open (and migrate) the database at ``url``; default: ``LOOPWRIGHT_DB_URL`` or a SQLite file
    ``loopwright.db`` under ``LOOPWRIGHT_HOME`` or the working directory.

    Projects with ``model.kind: http`` score through a served model (the Open Inference
    Protocol or MLflow ``/invocations``; :mod:`loopwright.integrations.serving`)."""
    from loopwright.integrations.serving import ServedModels  # at the edge; httpx only when used

    store = SqlStore(url or Settings.from_env().db_url)
    return Workspace(store, clock, scorers={"http": ServedModels()}, chat=HttpChat())
