"""``ReadsNeverWait``: GET and HEAD requests run in the store's read mode.

On SQLite every unit of work otherwise begins ``IMMEDIATE`` (the write lock, so writers queue
instead of failing), which made a ``GET /v1/me`` — authentication included — wait behind a
long ingest. Safe methods only read, so they read a WAL snapshot instead
(:func:`loopwright.store.sql.engine.reading`); handlers of safe methods must not write.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from loopwright.store.sql.engine import reading

SAFE_METHODS = frozenset({"GET", "HEAD"})


class ReadsNeverWait:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
            with reading():  # the context is copied into the threads that run sync handlers
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)
