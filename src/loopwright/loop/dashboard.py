"""The lead's dashboard: the project's history as time series and tables, from a few queries.

Everything is reconstructed from stored timestamps: queue depth per tier from when tasks opened
and closed, throughput from annotations, the automation rate from routing decisions, the
certified threshold from the certificates, drift from drift-check events. Time is cut into
equal buckets whose width adapts to the span (a "nice" width giving at most ``MAX_BUCKETS``).
Agreement, annotator skill and model versions with their gate evidence are tables as of now.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.consensus import OneCoinDawidSkene, agreement_report
from loopwright.domain import Annotation, Certification, Event, GoldAnswer, ModelStatus, ModelVersion
from loopwright.loop import gold
from loopwright.loop.audit import DRIFT_CONFIRMED, DRIFT_DETECTED, DRIFT_RETRACTED, TASK_REASONS
from loopwright.loop.backlog import REASON as BACKLOG
from loopwright.loop.context import Context
from loopwright.loop.deference import Deference, deference
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import answers_on, champion_here

MAX_BUCKETS = 48
MINUTE, HOUR, DAY = 60, 3600, 86400
NICE_SECONDS: tuple[float, ...] = (
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
)
NICE_SECONDS += (15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY)
NICE_SECONDS += (2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY)
DRIFT_ACTIONS = ("drift.checked", DRIFT_DETECTED)
SETTLED = {DRIFT_CONFIRMED: "confirmed", DRIFT_RETRACTED: "retracted"}
PAGE = 50_000
GOLD_SCORED = 1_000  # the newest gold items the dashboard scores with the champion


@dataclass(frozen=True, slots=True)
class Buckets:
    """``n`` buckets ``[starts[k], starts[k] + seconds)``; the last one holds the latest activity."""

    seconds: float
    starts: list[datetime]
    ends: list[datetime]


@dataclass(frozen=True, slots=True)
class AnnotatorRow:
    name: str
    tiers: list[int]  # tiers they answered gold checks on
    annotations: int
    gold_answers: int
    gold_correct: int
    gold_accuracy: float | None
    skill: float | None  # one-coin Dawid-Skene accuracy over the whole project
    paused_tiers: list[int]
    last_active: datetime | None
    deference: Deference | None  # agreement with the model's suggestion, against everyone else's


@dataclass(frozen=True, slots=True)
class ModelRow:
    version: int
    status: str
    promoted: bool  # was champion at some point
    created_at: datetime
    promoted_at: datetime | None
    dataset_version: str | None
    metrics: dict[str, Any]
    gate: dict[str, Any] | None  # the stored gate evidence (accuracy, McNemar p, ECE, slices)
    regressed_slices: list[str]


@dataclass(frozen=True, slots=True)
class DriftPoint:
    at: datetime
    detected: bool
    actor: str
    window: tuple[int, int]  # first and last item id compared
    domain_classifier_auc: float | None
    drifted_features: int
    prediction_drift: bool | None
    concept_drift: bool
    sampled_tasks: int
    settled: str | None = None  # a detection the next batch "confirmed" or "retracted"


@dataclass(frozen=True, slots=True)
class Dashboard:
    project: str
    labels: list[str]
    tiers: dict[int, str]  # tier → name
    start: datetime | None  # earliest and latest activity; None for a project with none
    end: datetime | None
    buckets: Buckets
    queue_depth: dict[int, list[int]]  # tier → open tasks at each bucket's end
    throughput: list[int]  # annotations per bucket
    throughput_by_annotator: dict[str, list[int]]
    decisions: list[int]  # routing decisions per bucket
    routed: list[int]  # items routed per bucket (a later acceptance from the certified backlog is not one)
    auto_accepted: list[int]
    automation_rate: list[float | None]  # auto_accepted / decisions (None: no decision)
    certifications: list[dict[str, Any]]
    certify: dict[str, float] | None  # the configured ε, δ (None: fixed threshold)
    agreement: dict[str, Any] | None  # consensus.agreement_report over all annotations
    annotators: list[AnnotatorRow]
    models: list[ModelRow]
    drift: list[DriftPoint]
    auc_threshold: float
    totals: dict[str, Any]


def dashboard(ctx: Context, max_buckets: int = MAX_BUCKETS) -> Dashboard:
    """The lead's dashboard of ``ctx``'s project (one transaction, a handful of queries)."""
    pid = ctx.project.id
    with ctx.store.unit_of_work() as uow:
        tasks = uow.tasks.timeline(pid)
        decisions = uow.decisions.timeline(pid)
        annotations = _all_annotations(uow, pid)
        answers = uow.gold_answers.for_project(pid)
        gold_missed = _gold_missed(ctx, uow)
        certs = uow.certifications.list(pid)
        models = uow.models.list(pid)
        drift_events = uow.events.of_actions(pid, (*DRIFT_ACTIONS, *SETTLED))
        open_now = uow.tasks.count_open_by_tier(pid)
        waiting = uow.tasks.count_open_answered(pid, TASK_REASONS)
        resolved = uow.resolutions.count(pid)
        decided_items = uow.decisions.count_items(pid)
    drift = _drift_points(drift_events)
    created = _epoch([t[1] for t in tasks])
    closed = _epoch([t[2] for t in tasks if t[2] is not None])
    decided = _epoch([d[0] for d in decisions])
    annotated = _epoch([a.created_at for a in annotations])
    others = _epoch([c.created_at for c in certs] + [e.at for e in drift] + [m.created_at for m in models])
    every = np.concatenate([created, closed, decided, annotated, others])
    buckets, edges = _buckets(every, max_buckets)
    tier_of = np.asarray([t[0] for t in tasks], dtype=int)
    closed_tier = np.asarray([t[0] for t in tasks if t[2] is not None], dtype=int)
    queue = {
        t.tier: _depth(created[tier_of == t.tier], closed[closed_tier == t.tier], edges[1:])
        for t in ctx.config.tiers
    }
    names = np.asarray([a.annotator for a in annotations])
    auto = np.asarray([d[1] == "auto_accept" for d in decisions], dtype=bool)
    anew = np.asarray([d[2] != BACKLOG for d in decisions], dtype=bool)
    n_decided, n_auto = _count(decided, edges), _count(decided[auto], edges)
    certify = ctx.config.routing.certify
    return Dashboard(
        project=ctx.project.name,
        labels=list(ctx.labels),
        tiers={t.tier: t.name for t in ctx.config.tiers},
        start=_at(every.min()) if every.size else None,
        end=_at(every.max()) if every.size else None,
        buckets=buckets,
        queue_depth=queue,
        throughput=_count(annotated, edges),
        throughput_by_annotator={
            n: _count(annotated[names == n], edges) for n in sorted(set(names.tolist()))
        },
        decisions=n_decided,
        routed=_count(decided[anew], edges),
        auto_accepted=n_auto,
        automation_rate=[a / d if d else None for a, d in zip(n_auto, n_decided, strict=True)],
        certifications=_certifications(certs, models),
        certify=None if certify is None else {"epsilon": certify.epsilon, "delta": certify.delta},
        agreement=_agreement(annotations),
        annotators=_annotators(ctx, annotations, answers, deference(annotations)),
        models=[_model(m) for m in models],
        drift=drift,
        auc_threshold=ctx.config.drift.auc_threshold,
        totals={
            "tasks": len(tasks),
            "open_tasks": sum(open_now.values()),
            "open_tasks_by_tier": dict(sorted(open_now.items())),
            "audits_waiting": waiting,  # answered audits waiting for another answer
            "annotations": len(annotations),
            "resolutions": resolved,  # items labelled for good (consensus reached)
            "decisions": len(decisions),
            "auto_accepted": int(auto.sum()),
            "routed_items": decided_items,
            "automation_rate": float(auto.sum() / decided_items) if decided_items else None,  # per item
            "gold_answers": len(answers),
            # the newest gold items scored, and how many of them the champion gets wrong (None: no
            # champion loopwright runs): gold catches someone who only accepts suggestions on those
            "gold_scored": None if gold_missed is None else gold_missed[0],
            "gold_missed": None if gold_missed is None else gold_missed[1],
            "gold_from_audits": ctx.config.gold.from_audits,  # the loop makes such gold by itself
            "champion": next((m.version for m in models if m.status is ModelStatus.CHAMPION), None),
            "threshold": certs[-1].threshold if certs else None,
            "drift_checks": len(drift),
            "drift_detected": sum(p.detected for p in drift),
            "drift_retracted": sum(p.settled == "retracted" for p in drift),
        },
    )


def bucket_seconds(span: float, max_buckets: int = MAX_BUCKETS) -> float:
    """The smallest nice width that cuts ``span`` seconds into at most ``max_buckets`` buckets,
    counting the one or two partial buckets at the ends (buckets start at multiples of it)."""
    return next((w for w in NICE_SECONDS if span / w <= max_buckets - 2), NICE_SECONDS[-1])


def _buckets(every: NDArray[np.float64], max_buckets: int) -> tuple[Buckets, NDArray[np.float64]]:
    if every.size == 0:
        return Buckets(NICE_SECONDS[0], [], []), np.zeros(1)
    lo, hi = float(every.min()), float(every.max())
    width = bucket_seconds(hi - lo, max_buckets)
    start = math.floor(lo / width) * width
    n = int((hi - start) // width) + 1  # the last bucket's end lies after the latest activity
    edges = start + width * np.arange(n + 1, dtype=np.float64)
    return Buckets(width, [_at(x) for x in edges[:-1]], [_at(x) for x in edges[1:]]), edges


def _count(times: NDArray[np.float64], edges: NDArray[np.float64]) -> list[int]:
    """How many ``times`` fall in each bucket ``[edges[k], edges[k + 1])``."""
    n = len(edges) - 1
    if n <= 0:
        return []
    k = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, n - 1)
    return [int(c) for c in np.bincount(k, minlength=n)]


def _depth(created: NDArray[np.float64], closed: NDArray[np.float64], at: NDArray[np.float64]) -> list[int]:
    """Tasks opened by each time in ``at`` minus those closed by then."""
    opened = np.searchsorted(np.sort(created), at, side="right")
    done = np.searchsorted(np.sort(closed), at, side="right")
    return [int(x) for x in opened - done]


def _epoch(times: list[datetime]) -> NDArray[np.float64]:
    return np.asarray([t.timestamp() for t in times], dtype=np.float64)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def _all_annotations(uow: UnitOfWork, pid: int) -> list[Annotation]:
    out: list[Annotation] = []
    while page := uow.annotations.page(pid, out[-1].id if out else 0, PAGE):
        out += page
    return out


def _certifications(certs: list[Certification], models: list[ModelVersion]) -> list[dict[str, Any]]:
    version = {m.id: m.version for m in models}
    return [
        {
            "at": c.created_at,
            "model_version": version.get(c.model_version_id),
            "threshold": c.threshold,
            "epsilon": c.epsilon,
            "delta": c.delta,
            "n_evidence": c.n_evidence,
            "n_errors": c.n_errors,
            "upper_bound": c.upper_bound,
            "n_audited": c.n_audited,
            "reason": c.reason,
        }
        for c in certs
    ]


def _agreement(annotations: list[Annotation]) -> dict[str, Any] | None:
    """Agreement over every annotation, an item's annotations at all tiers together."""
    if not annotations:
        return None
    return agreement_report(
        [str(a.item_id) for a in annotations],
        [a.annotator for a in annotations],
        [a.label for a in annotations],
    )


def _annotators(
    ctx: Context, annotations: list[Annotation], answers: list[GoldAnswer], defer: dict[str, Deference]
) -> list[AnnotatorRow]:
    skills = _skills(annotations, answers)
    counts = Counter(a.annotator for a in annotations)
    tiers: dict[str, set[int]] = {}
    last: dict[str, datetime] = {}
    for who, tier, at in [(g.annotator, g.tier, g.created_at) for g in answers]:
        tiers.setdefault(who, set()).add(tier)
        last[who] = max(last.get(who, at), at)
    for a in annotations:
        last[a.annotator] = max(last.get(a.annotator, a.created_at), a.created_at)
    rows = []
    for name in sorted(set(counts) | {g.annotator for g in answers}):
        mine = [g for g in answers if g.annotator == name]
        right = sum(g.correct for g in mine)
        by_tier = gold.skills(ctx.config.gold, mine)
        rows.append(
            AnnotatorRow(
                name=name,
                tiers=sorted(tiers.get(name, set())),
                annotations=counts[name],
                gold_answers=len(mine),
                gold_correct=right,
                gold_accuracy=right / len(mine) if mine else None,
                skill=skills.get(name),
                paused_tiers=gold.paused_tiers(ctx.config.gold, by_tier),
                last_active=last.get(name),
                deference=defer.get(name),
            )
        )
    return rows


def _gold_missed(ctx: Context, uow: UnitOfWork) -> tuple[int, int] | None:
    """The newest :data:`GOLD_SCORED` gold items scored and how many the champion gets wrong;
    None without a champion loopwright runs or for span and box tasks."""
    if ctx.config.task in ("spans", "boxes") or (model := champion_here(ctx, uow)) is None:
        return None
    known = uow.tasks.gold_items(ctx.project.id, GOLD_SCORED)
    if not known:
        return 0, 0
    predicted, _ = answers_on(ctx, uow, model, [i for i, _ in known])
    return len(known), sum(p != label for p, (_, label) in zip(predicted, known, strict=True))


def _skills(annotations: list[Annotation], answers: list[GoldAnswer]) -> dict[str, float]:
    """One-coin Dawid-Skene accuracy per annotator, gold items clamped to their known label."""
    known = {str(g.item_id): g.label for g in answers if g.correct}
    rows = [(str(a.item_id), a.annotator, a.label) for a in annotations]
    rows += [(str(g.item_id), g.annotator, g.label) for g in answers if str(g.item_id) in known]
    if not rows:
        return {}
    items, workers, labels = zip(*rows, strict=True)
    fit = OneCoinDawidSkene().fit(items, workers, labels, gold=known)
    return {w: round(float(s), 6) for w, s in fit.skills_.items()}


def _model(m: ModelVersion) -> ModelRow:
    slices = (m.gate or {}).get("slices") or []
    return ModelRow(
        version=m.version,
        status=m.status.value,
        promoted=m.promoted_at is not None,
        created_at=m.created_at,
        promoted_at=m.promoted_at,
        dataset_version=m.dataset_version_id,
        metrics=m.metrics,
        gate=m.gate,
        regressed_slices=[f"{s['slicing']}={s['slice']}" for s in slices if s.get("regressed")],
    )


def _drift_points(events: list[Event]) -> list[DriftPoint]:
    """Each drift check, a detection with what the next batch made of it."""
    settled = {e.data["alarm_event_id"]: SETTLED[e.action] for e in events if e.action in SETTLED}
    return [_drift(e, settled) for e in events if e.action in DRIFT_ACTIONS]


def _drift(e: Event, settled: dict[int, str]) -> DriftPoint:
    d = e.data
    detected = e.action == DRIFT_DETECTED
    return DriftPoint(
        at=e.at,
        detected=detected,
        actor=e.actor,
        window=(int(d["window_start_item_id"]), int(d["window_end_item_id"])),
        domain_classifier_auc=d.get("domain_classifier_auc"),
        drifted_features=len(d.get("drifted_features") or []),
        prediction_drift=d.get("prediction_drift"),
        concept_drift=bool(d.get("concept_drift")),
        sampled_tasks=int(d.get("sampled_tasks", 0)),
        settled=settled.get(e.id) if detected else None,
    )
