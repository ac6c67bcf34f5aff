"""Wiring for Python users: ``loopwright.connect(url)`` opens a SQL-backed :class:`Workspace`."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from loopwright.integrations.chat import HttpChat
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


class LazyChat:
    """The chat client model annotators call, :class:`~loopwright.integrations.chat.HttpChat`,
    made (and ``urllib.request`` imported) on first use."""

    def __init__(self) -> None:
        self._chat: HttpChat | None = None

    def complete(
        self,
        url: str,
        model: str,
        messages: Sequence[Mapping[str, str]],
        api_key_env: str | None,
        timeout_s: float,
    ) -> str:
        if self._chat is None:
            from loopwright.integrations.chat import HttpChat

            self._chat = HttpChat()  # stateless: two threads making one each is harmless
        return self._chat.complete(url, model, messages, api_key_env, timeout_s)


def connect(url: str | None = None, clock: Clock | None = None) -> Workspace:
    """Open (and migrate) the database at ``url``; default: ``LOOPWRIGHT_DB_URL`` or a SQLite file
    ``loopwright.db`` under ``LOOPWRIGHT_HOME`` or the working directory. ``clock`` defaults to
    UTC now.

    Projects with ``model.kind: http`` score through a served model (the Open Inference
    Protocol or MLflow ``/invocations``; :mod:`loopwright.integrations.serving`) and model
    annotators of kind chat through :mod:`loopwright.integrations.chat`, both imported on first
    use. The store and use cases are imported here, not when ``loopwright`` is imported."""
    from loopwright.loop.context import utc_now
    from loopwright.loop.loop import Workspace
    from loopwright.settings import Settings
    from loopwright.store.sql import SqlStore

    store = SqlStore(url or Settings.from_env().db_url)
    return Workspace(store, clock or utc_now, scorers={"http": LazyServedModels()}, chat=LazyChat())
