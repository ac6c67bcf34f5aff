"""``LeaseSweeper``: expire stale leases on a timer, apart from any request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from loopwright.loop.ports import Store

log = logging.getLogger(__name__)


class LeaseSweeper:
    """A daemon thread that expires stale leases of every project every ``every`` seconds.

    Each sweep is one indexed ``UPDATE`` of at most ``limit`` leases (the index on lease
    expiry, migration 0012), so its cost follows the stale leases, never the project size.
    Claims also sweep opportunistically, at most once per interval per process; neither is
    needed for correctness: claims and submits check a lease's expiry themselves.
    """

    def __init__(
        self, store: Store, clock: Callable[[], datetime], every: float = 5.0, limit: int = 1000
    ) -> None:
        self._store, self._clock, self.every, self.limit = store, clock, every, limit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swept = 0  # leases expired since start

    def sweep_once(self) -> int:
        """One sweep now, unthrottled; the number of leases it expired."""
        with self._store.unit_of_work() as uow:
            n = uow.leases.sweep(self._clock(), min_interval=0, limit=self.limit)
        self.swept += n
        return n

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sweep_once()
            except Exception:  # a sweep that fails (database away) is retried next tick
                log.exception("lease sweep failed")
