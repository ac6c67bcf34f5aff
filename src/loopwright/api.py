"""Wiring for Python users: ``loopwright.connect(url)`` opens a SQL-backed :class:`Workspace`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopwright.loop import Workspace
    from loopwright.loop.context import Clock


def connect(url: str | None = None, clock: Clock | None = None) -> Workspace:
    """Open (and migrate) the database at ``url``; default: ``LOOPWRIGHT_DB_URL`` or a SQLite file
    ``loopwright.db`` under ``LOOPWRIGHT_HOME`` or the working directory. ``clock`` defaults to
    UTC now.

    Projects with ``model.kind: http`` score through a served model (the Open Inference
    Protocol or MLflow ``/invocations``; :mod:`loopwright.integrations.serving`).
    The store and use cases are imported here, not when ``loopwright`` is imported."""
    from loopwright.integrations.chat import HttpChat  # standard library only
    from loopwright.integrations.serving import ServedModels  # at the edge; httpx only when used
    from loopwright.loop.context import utc_now
    from loopwright.loop.loop import Workspace
    from loopwright.settings import Settings
    from loopwright.store.sql import SqlStore

    store = SqlStore(url or Settings.from_env().db_url)
    return Workspace(store, clock or utc_now, scorers={"http": ServedModels()}, chat=HttpChat())
