"""The round loop the spans and boxes scenarios share.

Each round the champion (a model that lives outside the project, as a detector or tagger
would) scores the round's items; once the audited items it has seen certify a threshold,
confident items pass without review (never an audited one). The rest are ingested with the
champion's proposals and reviewed by the simulated team. A challenger trained on the resolved
items that are neither audited nor frozen for evaluation replaces the champion when its gate
passes. What differs between the two scenarios is a :class:`Spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from loopwright.loop import Loop
from loopwright.routing.certify import certify
from loopwright.scenarios import Reviewer, new_resolutions, review, summary

X = TypeVar("X")  # an item's input: a text, an image
S = TypeVar("S")  # one shape: a span, a box


@dataclass(frozen=True)
class Spec(Generic[X, S]):
    """The scenario's stream and model, and how the loop reads them."""

    inputs: Sequence[X]  # the stream's inputs, in order
    truth: Sequence[list[S]]  # the true shapes of each
    external_ids: Sequence[str]
    score: Callable[[Any, Sequence[X]], list[tuple[list[S], float]]]  # model, inputs → (shapes, confidence)
    predict: Callable[[Any, Sequence[X]], Any]  # what the gate compares
    payload: Callable[[int, list[S] | None], dict[str, Any]]  # stream index, proposals → payload
    correct: Callable[[list[S], list[S]], bool]  # found, truth → exactly right
    decode: Callable[[str], list[S]]  # a resolved label → shapes
    fit: Callable[[list[X], list[list[S]]], Any]  # a challenger trained on these
    gate: Callable[[list[list[S]], Any, Any | None], Any]  # truth, challenger's, champion's → verdict
    per_round: Callable[[Any], dict[str, Any]] = lambda champion: {}  # extra history columns


@dataclass
class Rounds(Generic[S]):
    """What the rounds left: the champion, the resolved shapes and the counts."""

    champion: Any = None
    human: dict[int, list[S]] = field(default_factory=dict)  # stream index → resolved shapes
    index_of: dict[int, int] = field(default_factory=dict)  # item id → stream index
    history: list[dict[str, Any]] = field(default_factory=list)
    human_labels: int = 0
    auto_accepted: int = 0
    auto_accept_errors: int = 0
    promotions: int = 0
    resolved_exact: float | None = None  # share of resolved items whose shapes equal the truth

    def summary(self, scenario: str, metric: str, value: float | None, **extra: Any) -> dict[str, Any]:
        """The scenario's ``summary.json``: what the rounds counted, then ``extra``."""
        exact = self.resolved_exact
        return summary(
            scenario,
            items_seen=sum(h["items"] for h in self.history),
            human_labels=self.human_labels,
            auto_accepted=self.auto_accepted,
            auto_accept_errors=self.auto_accept_errors,
            metric=metric,
            value=None if value is None else round(value, 4),
            promotions=self.promotions,
            resolved_items=len(self.human),
            resolved_exact=None if exact is None else round(exact, 4),
            history=self.history,
            **extra,
        )


def run_rounds(
    loop: Loop,
    reviewers: Sequence[Reviewer],
    spec: Spec[X, S],
    rounds: int,
    round_size: int,
    rng: np.random.Generator,
    audit_rate: float,
    epsilon: float,
    delta: float,
    min_train: int,
) -> Rounds[S]:
    """Run ``rounds`` rounds of ``round_size`` stream items (see the module docstring)."""
    out: Rounds[S] = Rounds()
    position = {e: i for i, e in enumerate(spec.external_ids)}
    audit: list[int] = []  # stream indices of the uniform audit sample: reviewed, never trained on
    eval_ids: set[int] = set()
    after = 0
    for r in range(rounds):
        batch = range(r * round_size, (r + 1) * round_size)
        audited = rng.random(len(batch)) < audit_rate
        champion = out.champion
        scored = spec.score(champion, [spec.inputs[i] for i in batch]) if champion else None
        cert = None
        if champion is not None and (sample := [i for i in audit if i in out.human]):
            checked = spec.score(champion, [spec.inputs[i] for i in sample])
            ok = [spec.correct(found, out.human[i]) for (found, _), i in zip(checked, sample, strict=True)]
            cert = certify([c for _, c in checked], ok, epsilon, delta)
        auto = np.zeros(len(batch), dtype=bool)
        if scored is not None and cert is not None and cert.threshold is not None:
            auto = np.array([c >= cert.threshold for _, c in scored]) & ~audited
        wrong = (
            sum(not spec.correct(scored[k][0], spec.truth[i]) for k, i in enumerate(batch) if auto[k])
            if scored
            else 0
        )
        out.auto_accepted, out.auto_accept_errors = (
            out.auto_accepted + int(auto.sum()),
            out.auto_accept_errors + wrong,
        )
        records = [
            {
                "external_id": spec.external_ids[i],
                "payload": spec.payload(i, scored[k][0] if scored else None),
            }
            for k, i in enumerate(batch)
            if not auto[k]
        ]
        report = loop.ingest(records)
        out.index_of.update((o.item_id, position[o.external_id]) for o in report.outcomes)
        log = review(loop, reviewers)
        out.human_labels += log.annotations
        resolved, after = new_resolutions(loop, after)
        for item_id, label in resolved.items():
            i = out.index_of[item_id]
            out.human[i] = spec.decode(label)
            if rng.random() < 0.2:
                eval_ids.add(i)  # frozen: evaluates gates, never trains
        audit += [i for k, i in enumerate(batch) if audited[k]]
        held_back = eval_ids | set(audit)
        train = [i for i in out.human if i not in held_back]
        gate_row: dict[str, Any] | None = None
        if len(train) >= min_train:
            challenger = spec.fit([spec.inputs[i] for i in train], [out.human[i] for i in train])
            evals = sorted(eval_ids)
            inputs = [spec.inputs[i] for i in evals]
            old = None if out.champion is None else spec.predict(out.champion, inputs)
            verdict = spec.gate([out.human[i] for i in evals], spec.predict(challenger, inputs), old)
            gate_row = verdict.as_dict()
            if verdict.passed:
                out.champion, out.promotions = challenger, out.promotions + 1
        out.history.append(
            {
                "round": r,
                "items": len(batch),
                "auto_accepted": int(auto.sum()),
                "auto_accept_errors": int(wrong),
                "reviewed": len(records),
                "human_labels": log.annotations,
                "certified_threshold": None if cert is None else cert.threshold,
                "certificate": None if cert is None else cert.reason,
                "gate": gate_row,
                **spec.per_round(out.champion),
            }
        )
    if out.human:
        out.resolved_exact = float(
            np.mean([spec.correct(found, spec.truth[i]) for i, found in out.human.items()])
        )
    return out
