"""Wiring for Python users: ``loopwright.connect(url)`` opens a SQL-backed :class:`Workspace`."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopwright.integrations.serving import HttpScorer, ServedModels
    from loopwright.loop import Workspace
    from loopwright.loop.context import Clock, Context
    from loopwright.loop.ports import UnitOfWork


class LazyServedModels:
    """The ``http`` scorer factory, :class:`~loopwright.integrations.serving.ServedModels`, made
    (and :mod:`loopwright.integrations.serving` and NumPy imported) on first use: commands that
    never score a served model, such as ``loopwright status``, do not pay for it."""

    def __init__(self) -> None:
        self._served: ServedModels | None = None
        self._lock = threading.Lock()

    def __call__(self, ctx: Context, uow: UnitOfWork) -> HttpScorer:
        with self._lock:
            if self._served is None:
                from loopwright.integrations.serving import ServedModels

                self._served = ServedModels()
            served = self._served
        return served(ctx, uow)

    def close(self) -> None:
        with self._lock:
            if self._served is not None:
                self._served.close()


def connect(url: str | None = None, clock: Clock | None = None) -> Workspace:
    """Open (and migrate) the database at ``url``; default: ``LOOPWRIGHT_DB_URL`` or a SQLite file
    ``loopwright.db`` under ``LOOPWRIGHT_HOME`` or the working directory. ``clock`` defaults to
    UTC now.

    Projects with ``model.kind: http`` score through a served model (the Open Inference
    Protocol or MLflow ``/invocations``; :mod:`loopwright.integrations.serving`, imported on first
    use) and model annotators of kind chat through :mod:`loopwright.integrations.chat`. The
    store and use cases are imported here, not when ``loopwright`` is imported."""
    from loopwright.integrations.chat import HttpChat  # urllib only when a judge is called
    from loopwright.loop.context import utc_now
    from loopwright.loop.loop import Workspace
    from loopwright.settings import Settings
    from loopwright.store.sql import SqlStore

    store = SqlStore(url or Settings.from_env().db_url)
    return Workspace(store, clock or utc_now, scorers={"http": LazyServedModels()}, chat=HttpChat())
