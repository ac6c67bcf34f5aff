"""50 annotator threads against one Loop on each backend: overlap holds, nothing is lost.

Time runs 40x fast on a shared clock, so a 2-minute lease that an annotator abandons expires
after 3 s of real time and its slot goes back to the queue. The lease must stay well above a
claim-to-submit cycle, which takes up to half a second with 50 threads on a slow 2-core box.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from loopwright import Conflict, LeaseExpired, Loop, Workspace
from loopwright.simulate import FastClock
from loopwright.store.sql import SqlStore

N_ITEMS, N_ANNOTATORS, OVERLAP = 200, 50, 2
CONFIG: dict[str, Any] = {
    "name": "crowd",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {"audit_rate": 0.0},
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": OVERLAP, "lease_seconds": 120},
        {"tier": 2, "name": "expert", "required_annotations": 1, "lease_seconds": 120},
    ],
}


class Annotator(threading.Thread):
    """Claims and submits until told to stop; abandons a few leases; answers mostly "a"."""

    def __init__(self, loop: Loop, name: str, done: threading.Event, seed: int) -> None:
        super().__init__(name=name, daemon=True)  # never keeps the test process alive
        self.loop, self.done, self.rng = loop, done, random.Random(seed)
        self.submitted: list[int] = []  # annotation ids the store acknowledged
        self.abandoned = self.expired = self.late = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.done.is_set():
                self.step()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)

    def step(self) -> None:
        assignment = self.loop.next_task(self.name)
        if assignment is None:
            time.sleep(0.02)
            return
        if self.rng.random() < 0.05:
            self.abandoned += 1
            return
        label = "a" if self.rng.random() < 0.9 else "b"
        try:
            result = self.loop.submit(assignment.lease.id, self.name, label)
        except LeaseExpired:
            self.expired += 1
            return
        except Conflict as exc:  # the lease ran out mid-flight and a new claimer finished the task
            assert "is already" in exc.message
            self.late += 1
            return
        assert result.annotation is not None
        self.submitted.append(result.annotation.id)


def run_crowd(loop: Loop, timeout: float = 60.0) -> list[Annotator]:
    """Run the annotators until every item is resolved (or ``timeout`` seconds pass)."""
    done = threading.Event()
    crowd = [Annotator(loop, f"ann{i:02d}", done, seed=i) for i in range(N_ANNOTATORS)]
    for annotator in crowd:
        annotator.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and loop.status().resolutions < N_ITEMS:
            if any(a.errors for a in crowd):
                break
            time.sleep(0.05)
    finally:  # stop the crowd even when polling fails, so no thread outlives the test
        done.set()
        for annotator in crowd:
            annotator.join(timeout=30)
    assert not any(a.is_alive() for a in crowd), "an annotator thread did not stop"
    return crowd


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A store with a connection per annotator thread plus one for the status poller."""
    sql_store = SqlStore(store_url, pool_size=N_ANNOTATORS + 1)
    yield sql_store
    sql_store.close()


def test_fifty_annotators_keep_overlap_and_lose_nothing(store: SqlStore) -> None:
    loop = Workspace(store, FastClock(speed=40.0)).create_project(CONFIG)
    loop.ingest([{"external_id": f"i{i}", "payload": {"x": float(i)}} for i in range(N_ITEMS)])
    crowd = run_crowd(loop)
    assert [e for a in crowd for e in a.errors] == []
    submitted = sorted(n for a in crowd for n in a.submitted)
    assert sum(a.abandoned for a in crowd) > 0  # abandoned leases expired and were requeued
    status = loop.status()
    assert status.resolutions == N_ITEMS and status.open_tasks_by_tier == {}
    with store.unit_of_work() as uow:
        per_item = {i: uow.annotations.for_item(i) for i in range(1, N_ITEMS + 1)}
        tasks = {i: uow.tasks.for_item(i) for i in per_item}
        stored = sorted(a.id for votes in per_item.values() for a in votes)
        assert stored == submitted  # every acknowledged submit is in the store, and only those
        for item_id, votes in per_item.items():
            assert max(Counter(a.annotator for a in votes).values()) == 1  # never twice per item
            for task in tasks[item_id]:
                assert sum(a.task_id == task.id for a in votes) == task.required_annotations
            assert len(uow.resolutions.for_item(item_id)) == 1
