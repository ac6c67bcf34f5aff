"""Seeded simulated annotators that work through the same review API a person would.

Each annotator has a tier, an accuracy, and a class confusion matrix: when wrong, the label
it gives is drawn from its own (Dirichlet-drawn) confusion row, so errors are systematic,
like a person's, not uniform noise.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from loopwright.errors import Capped, Paused
from loopwright.loop import Loop


@dataclass
class SimulatedAnnotator:
    name: str
    tiers: tuple[int, ...]
    accuracy: float
    labels: Sequence[str]
    random_state: int = 0
    unsure_rate: float = 0.0  # chance of flagging "unsure" when the annotator is wrong

    def __post_init__(self) -> None:
        k = len(self.labels)
        self._rng = np.random.default_rng(self.random_state)
        off = self._rng.dirichlet(np.full(k - 1, 0.5), size=k)
        confusion = np.zeros((k, k))
        for c in range(k):
            confusion[c, np.arange(k) != c] = (1.0 - self.accuracy) * off[c]
            confusion[c, c] = self.accuracy
        self.confusion_ = confusion
        self._index = {label: i for i, label in enumerate(self.labels)}

    def answer(self, truth: str) -> tuple[str, bool]:
        """(label, unsure) for an item whose true label is ``truth``."""
        row = self.confusion_[self._index[truth]]
        label = self.labels[int(self._rng.choice(len(self.labels), p=row))]
        unsure = label != truth and bool(self._rng.random() < self.unsure_rate)
        return label, unsure


class FastClock:
    """Real time sped up ``speed`` times from a fixed start: a shared, always-forward clock for
    load tests whose leases must expire within the run."""

    def __init__(self, speed: float) -> None:
        self.start, self.t0, self.speed = datetime(2026, 11, 1, tzinfo=UTC), time.monotonic(), speed

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)


@dataclass
class WorkLog:
    annotations: int = 0  # labels on real items
    gold_answers: int = 0  # answers to gold checks (human work too, but never a label)
    by_tier: Counter[int] = field(default_factory=Counter)
    by_annotator: Counter[str] = field(default_factory=Counter)
    stopped: dict[str, str] = field(default_factory=dict)  # annotator → why they could not work


def team(
    labels: Sequence[str],
    sizes: Mapping[int, int],
    accuracy: Mapping[int, float],
    random_state: int = 0,
    unsure_rate: float = 0.0,
) -> list[SimulatedAnnotator]:
    """``sizes[tier]`` annotators per tier with ``accuracy[tier]``, seeded one after another."""
    return [
        SimulatedAnnotator(
            f"t{tier}-{i}", (tier,), accuracy[tier], labels, random_state * 1000 + 17 * tier + i, unsure_rate
        )
        for tier, n in sorted(sizes.items())
        for i in range(n)
    ]


def work(
    loop: Loop,
    annotators: Sequence[SimulatedAnnotator],
    truth: Callable[[str], str],
    max_annotations: int | None = None,
    budget: Mapping[int, int] | None = None,
) -> WorkLog:
    """Let the annotators take turns (claim → answer → submit) until no one finds a task.

    ``truth(external_id)`` gives the true label, which only the simulated person sees.
    ``budget[tier]`` caps the labels tier ``tier`` gives in this call (human capacity is
    finite): tasks it does not reach stay open, in queue order, for the next call. Gold answers
    are not counted against it.
    """
    log = WorkLog()
    idle: set[str] = set()
    while len(idle) < len(annotators):
        for annotator in annotators:
            if annotator.name in idle:
                continue
            if max_annotations is not None and log.annotations >= max_annotations:
                return log
            tiers = _within_budget(annotator.tiers, budget, log.by_tier)
            if not tiers:
                idle.add(annotator.name)
                continue
            try:
                assignment = loop.next_task(annotator.name, tiers)
            except (Paused, Capped) as stop:  # a paused or capped person stops working
                log.stopped[annotator.name] = stop.message
                idle.add(annotator.name)
                continue
            if assignment is None:
                idle.add(annotator.name)
                continue
            label, unsure = annotator.answer(truth(assignment.item.external_id))
            result = loop.submit(assignment.lease.id, annotator.name, label, unsure)
            if result.gold is not None:
                log.gold_answers += 1
                continue
            log.annotations += 1
            log.by_tier[assignment.task.tier] += 1
            log.by_annotator[annotator.name] += 1
            idle.clear()  # a submission may have escalated work to someone idle
    return log


def _within_budget(
    tiers: tuple[int, ...], budget: Mapping[int, int] | None, spent: Counter[int]
) -> tuple[int, ...]:
    """The tiers among ``tiers`` whose label budget is not spent yet (all without a budget)."""
    if budget is None:
        return tiers
    return tuple(t for t in tiers if t not in budget or spent[t] < budget[t])
