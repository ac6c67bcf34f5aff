"""Gold (honeypot) tasks: items with a known answer mixed into review; annotator skill; pausing.

A gold task has status ``gold`` and never closes: every annotator may answer it once. Its
answers are scored (a label set is right only on an exact set match), never consolidated, so a
gold item added here gets no Resolution and so never enters a dataset version. Gold made from
audits (:mod:`.audit_gold`) keeps the audit's resolution: its gold answers change nothing there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from loopwright import tasks
from loopwright.config import GoldConfig
from loopwright.domain import GoldAnswer, Task, content_hash
from loopwright.errors import Conflict, Invalid, Paused
from loopwright.loop.context import Context
from loopwright.loop.ingest import validate_records
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import answers_on, champion_here

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TierSkill:
    """An annotator's gold record on one tier, and the evidence that it is below the bar."""

    tier: int
    answers: int
    correct: int
    evidence: float = 0.0  # CUSUM of log likelihood ratios, "≤ min_accuracy" vs "≥ expected"

    @property
    def accuracy(self) -> float:
        return self.correct / self.answers if self.answers else 0.0


@dataclass(frozen=True, slots=True)
class AnnotatorStats:
    annotator: str
    gold_answers: int
    gold_accuracy: float | None  # None before the first gold answer
    by_tier: tuple[TierSkill, ...]
    paused_tiers: tuple[int, ...]
    annotations_last_hour: int  # annotations and gold answers, sliding window
    annotations_this_session: int | None  # None without a session id


def skills(config: GoldConfig, answers: Sequence[GoldAnswer]) -> dict[int, TierSkill]:
    """Gold record per tier from one annotator's answers, oldest first.

    ``evidence`` is Page's CUSUM of the sequential probability ratio test between "accuracy is
    ``min_accuracy``" and "accuracy is ``expected_accuracy``": each right answer adds
    log(min/expected), each wrong one log((1-min)/(1-expected)), floored at 0 so an annotator
    who becomes careless later is caught as fast as one who starts that way.
    """
    right = math.log(config.min_accuracy / config.expected_accuracy)
    wrong = math.log((1.0 - config.min_accuracy) / (1.0 - config.expected_accuracy))
    out: dict[int, TierSkill] = {}
    for a in answers:
        s = out.get(a.tier, TierSkill(a.tier, 0, 0))
        evidence = max(0.0, s.evidence + (right if a.correct else wrong))
        out[a.tier] = TierSkill(a.tier, s.answers + 1, s.correct + a.correct, evidence)
    return out


def is_paused(config: GoldConfig, skill: TierSkill) -> bool:
    """Enough gold answers, and a likelihood ratio for "below the bar" of at least 1/alpha."""
    return skill.answers >= config.min_answers and skill.evidence >= math.log(1.0 / config.alpha)


def paused_tiers(config: GoldConfig, by_tier: Mapping[int, TierSkill]) -> list[int]:
    """Tiers the annotator is paused from (:func:`is_paused`)."""
    return sorted(t for t, s in by_tier.items() if is_paused(config, s))


def paused_error(config: GoldConfig, annotator: str, skill: TierSkill) -> Paused:
    return Paused(
        f"{annotator!r} is paused from tier {skill.tier}: {skill.correct} of {skill.answers} gold "
        f"answers right; the recent ones favour accuracy {config.min_accuracy:.2f} over "
        f"{config.expected_accuracy:.2f} by a likelihood ratio of {math.exp(skill.evidence):.1f} "
        f"(pause at {1.0 / config.alpha:.0f}); ask a lead to review your gold answers"
    )


@dataclass(frozen=True, slots=True)
class Record:
    """What a claim needs of an annotator's history: the gold fold and the work count."""

    by_tier: dict[int, TierSkill]
    work: int  # annotations + gold answers, as ``count_work`` since the epoch

    @property
    def answered(self) -> int:
        return sum(s.answers for s in self.by_tier.values())


def record(ctx: Context, uow: UnitOfWork, annotator: str, lock: bool = False) -> Record:
    """``annotator``'s :class:`Record` from its stats row (one indexed read); built from the
    rows when missing or folded under other accuracy settings, and stored."""
    config, pid = ctx.config.gold, ctx.project.id
    params = [config.min_accuracy, config.expected_accuracy]
    row = uow.annotator_stats.get(pid, annotator, lock)
    if row is not None and row[1].get("params") == params:
        tiers = row[1]["tiers"]
        by_tier = {int(t): TierSkill(int(t), n, c, e) for t, (n, c, e) in tiers.items()}
        return Record(by_tier, row[0])
    by_tier = skills(config, uow.gold_answers.for_project(pid, annotator))
    work = row[0] if row is not None else uow.annotations.count_work(pid, annotator, EPOCH)
    _store(ctx, uow, annotator, Record(by_tier, work))
    return Record(by_tier, work)


def count_answer(
    ctx: Context, uow: UnitOfWork, annotator: str, was: Record, tier: int, correct: bool
) -> None:
    """Fold one more gold answer into the stored record (``was``: read under lock before it)."""
    folded = skills_step(ctx.config.gold, was.by_tier, tier, correct)
    _store(ctx, uow, annotator, Record(folded, was.work + 1))


def skills_step(
    config: GoldConfig, by_tier: Mapping[int, TierSkill], tier: int, correct: bool
) -> dict[int, TierSkill]:
    """:func:`skills` after one more answer (the same arithmetic, so the same floats)."""
    right = math.log(config.min_accuracy / config.expected_accuracy)
    wrong = math.log((1.0 - config.min_accuracy) / (1.0 - config.expected_accuracy))
    s = by_tier.get(tier, TierSkill(tier, 0, 0))
    evidence = max(0.0, s.evidence + (right if correct else wrong))
    return {**by_tier, tier: TierSkill(tier, s.answers + 1, s.correct + correct, evidence)}


def _store(ctx: Context, uow: UnitOfWork, annotator: str, rec: Record) -> None:
    config = ctx.config.gold
    tiers = {str(t): [s.answers, s.correct, s.evidence] for t, s in rec.by_tier.items()}
    gold = {"params": [config.min_accuracy, config.expected_accuracy], "tiers": tiers}
    uow.annotator_stats.put(ctx.project.id, annotator, rec.work, gold)


def check_not_paused(ctx: Context, uow: UnitOfWork, annotator: str, tier: int) -> Record:
    """Raise :class:`Paused` when ``annotator`` is paused from ``tier``; else their record,
    read under lock (so answers fold in the order they are stored)."""
    rec = record(ctx, uow, annotator, lock=True)
    if tier in paused_tiers(ctx.config.gold, rec.by_tier):
        raise paused_error(ctx.config.gold, annotator, rec.by_tier[tier])
    return rec


def gold_due(ctx: Context, annotator: str, answered: int, work_done: int) -> str | None:
    """Why ``annotator``'s next claim should be a gold task, or ``None``.

    Onboarding comes first; then a draw at ``gold.rate``, seeded by the project's seed, the
    annotator and how much work they have done, so the same history gives the same choice.
    """
    config = ctx.config.gold
    if answered < config.onboarding:
        return f"onboarding {answered + 1}/{config.onboarding}"
    if config.rate <= 0.0:
        return None
    key = f"gold:{ctx.config.retrain.seed}:{annotator}:{work_done}"
    draw = int(content_hash(key)[:8], 16) / 0x1_0000_0000
    return f"random gold check at rate {config.rate:.2f}" if draw < config.rate else None


LOOKALIKE_POOL = 50  # unseen gold tasks scored (in one call) to pick a gold check


def lookalike(
    ctx: Context, uow: UnitOfWork, annotator: str, tiers: Sequence[int], now: datetime
) -> int | None:
    """The unseen gold task whose item the champion is about as sure of as the item
    ``annotator`` labelled last; None (serve the oldest) before their first label, with one
    gold task or none left to choose from, or without a champion loopwright runs.

    Reviewers see the champion's suggestion and how sure it is. Below a certified threshold the
    work is items the model is unsure of, while gold drawn at random is mostly items it finds
    easy: such gold would stand out, and a reviewer who only accepts the suggestion would pass
    it wherever the model is right. Gold like the work is neither told apart nor passed so.
    """
    if ctx.config.task in ("spans", "boxes"):
        return None  # no one confidence per item to match
    last = uow.annotations.recent(ctx.project.id, annotator, 1)
    if not last:
        return None
    pool = uow.tasks.gold_unseen(ctx.project.id, annotator, tiers, now, LOOKALIKE_POOL)
    if len(pool) < 2 or (model := champion_here(ctx, uow)) is None:
        return None
    _, confidence = answers_on(ctx, uow, model, [last[0].item_id, *(t.item_id for t in pool)])
    return pool[int(np.argmin(np.abs(confidence[1:] - confidence[0])))].id


def add_gold(
    ctx: Context,
    records: Iterable[Mapping[str, Any]],
    tiers: Sequence[int] | None = None,
    actor: str = "system",
) -> list[Task]:
    """Store items with a known ``label`` as gold tasks on ``tiers`` (default: every tier)."""
    records = list(records)
    answers, errors = _gold_answers(ctx, records)
    if errors:
        raise Invalid(f"{len(errors)} gold item(s) rejected; nothing was added", errors)
    batch = validate_records(ctx, records)
    labels = {str(r["external_id"]): answers[i] for i, r in enumerate(records)}
    tiers = list(tiers) if tiers is not None else [t.tier for t in ctx.config.tiers]
    if unknown := sorted(set(tiers) - {t.tier for t in ctx.config.tiers}):
        raise Invalid(f"unknown tier(s) {unknown}")
    created: list[Task] = []
    with ctx.store.unit_of_work() as uow:
        if existing := uow.items.by_external_ids(ctx.project.id, [r.external_id for r in batch]):
            raise Conflict(f"item(s) {sorted(existing)} already exist; gold items must be new")
        for r in batch:
            item = uow.items.add(ctx.project.id, r.external_id, r.hash, r.payload, r.metadata)
            created += [uow.tasks.add_gold(ctx.project.id, item.id, t, labels[r.external_id]) for t in tiers]
        ctx.event(uow, actor, "gold.added", ("project", ctx.project.name), items=len(batch), tiers=tiers)
    return created


def _gold_answers(ctx: Context, records: Sequence[Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """Each record's known answer as canonical text, and the errors naming the bad ones. For
    ``task: multilabel`` the answer is a label set (a list or its JSON text), stored canonical,
    and a gold answer is right only when its whole set matches."""
    answers: list[str] = []
    errors: list[tuple[str, str]] = []
    kind = None if ctx.config.task == "single" else tasks.task_type(ctx.config.task)
    for i, r in enumerate(records):
        label = r.get("label") if isinstance(r, Mapping) else None
        if kind is None:
            if isinstance(r, Mapping) and label not in ctx.labels:
                errors.append((f"[{i}].label", f"must be one of {ctx.labels}"))
            answers.append(str(label))
            continue
        try:
            answers.append(kind.parse(label, ctx.labels))
        except Invalid as exc:  # UnknownLabel included
            errors.append((f"[{i}].label", exc.message.removeprefix("label: ")))
            answers.append("")
    return answers, errors


def annotator_stats(ctx: Context, annotator: str, session_id: str | None = None) -> AnnotatorStats:
    """Gold answers and accuracy (overall and per tier), paused tiers and recent workload."""
    now = ctx.clock()
    with ctx.store.unit_of_work() as uow:
        answers = uow.gold_answers.for_project(ctx.project.id, annotator)
        last_hour = uow.annotations.count_work(ctx.project.id, annotator, now - HOUR)
        session = None if session_id is None else uow.leases.count_submitted(annotator, session_id)
    by_tier = skills(ctx.config.gold, answers)
    accuracy = sum(a.correct for a in answers) / len(answers) if answers else None
    return AnnotatorStats(
        annotator,
        len(answers),
        accuracy,
        tuple(by_tier[t] for t in sorted(by_tier)),
        tuple(paused_tiers(ctx.config.gold, by_tier)),
        last_hour,
        session,
    )
