"""Gold from the audits the champion gets wrong.

Gold can only catch a reviewer who accepts every suggestion on items the model gets wrong, and
gold drawn at random is mostly items it gets right. The audits hold the items that work: each is
a uniform draw of the stream, answered blind at the audit tier and never trained on. An audited
item (since the last drift) whose answers all agree, at least two of them, and that the
champion answers otherwise becomes a gold task with that answer on the tiers that see the
model's suggestion. Its resolution, its place in the certificate's evidence and in dataset
versions stay as they were: a gold answer is scored, never consolidated.

A person who reads the item is still right on these far more often than one who accepts the
suggestion, but such items are harder than most: look at the list (``dry_run``) before adding.
With ``gold.from_audits`` the loop's automation runs it by itself whenever :func:`due` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loopwright.domain import Resolution, TaskStatus
from loopwright.errors import Invalid
from loopwright.loop import audit
from loopwright.loop.context import Context
from loopwright.loop.scoring import EXTERNAL, answers, champion_here

MIN_ANSWERS = 2  # answers behind a resolution that may become gold, all of them agreeing
CHECKED = "gold.audits_checked"  # every run that may add gold: the champion it asked, when it read


@dataclass(frozen=True, slots=True)
class Candidate:
    external_id: str
    label: str  # the audit's answer: the gold answer
    predicted: str  # the champion's answer now
    confidence: float


@dataclass(frozen=True, slots=True)
class AuditGold:
    candidates: tuple[Candidate, ...]  # in item order
    tiers: tuple[int, ...]
    added: int  # gold tasks added (0 on a dry run)


def gold_tiers(ctx: Context) -> list[int]:
    """The tiers where gold shows the suggestion: every tier but those taking audits."""
    return [t.tier for t in ctx.config.tiers if t.tier not in ctx.config.routing.audit_tiers]


def from_audits(
    ctx: Context, tiers: Sequence[int] | None = None, dry_run: bool = False, actor: str = "system"
) -> AuditGold:
    """Make gold of the audited items the champion gets wrong (see the module); ``dry_run``
    lists them and adds nothing. Items that are gold already are left out."""
    tiers = list(tiers) if tiers is not None else gold_tiers(ctx)
    if unknown := sorted(set(tiers) - {t.tier for t in ctx.config.tiers}):
        raise Invalid(f"unknown tier(s) {unknown}")
    if not tiers:
        raise Invalid("every tier takes audits, where gold is answered blind: name the tiers with --tiers")
    pid = ctx.project.id
    with ctx.store.unit_of_work() as uow:
        version = uow.certifications.evidence_version(pid)  # read before the answers: a later one is news
        model, champion = champion_here(ctx, uow), uow.models.champion(pid)
        if model is None or champion is None:
            raise Invalid(
                "gold from audits needs a champion that loopwright runs: retrain or use_model first"
            )
        resolved = uow.resolutions.latest_by_item(pid)
        since = audit.drift_start(uow, pid) or 0
        agreed = [
            r
            for i in uow.decisions.audited_items(pid)
            if i >= since
            and (r := resolved.get(i)) is not None
            and r.n_annotations >= MIN_ANSWERS
            and r.agreement >= 1.0
        ]
        items = {i.id: i for i in uow.items.get_many([r.item_id for r in agreed])}
        missed: list[tuple[Resolution, str, float]] = []
        if agreed:
            predicted, confidence = answers(ctx, model, [items[r.item_id].payload for r in agreed])
            missed = [
                (r, str(p), float(c))
                for r, p, c in zip(agreed, predicted, confidence, strict=True)
                if str(p) != r.label
                and not any(t.status is TaskStatus.GOLD for t in uow.tasks.for_item(r.item_id))
            ]
        if not dry_run:
            subject = ("model_version", champion.version)
            ctx.event(
                uow,
                actor,
                CHECKED,
                subject,
                items=len(missed),
                model_version_id=champion.id,
                evidence_version=version,
            )
            for r, _, _ in missed:
                for tier in tiers:
                    uow.tasks.add_gold(pid, r.item_id, tier, r.label)
            if missed:
                ctx.event(
                    uow,
                    actor,
                    "gold.added",
                    ("project", ctx.project.name),
                    items=len(missed),
                    tiers=tiers,
                    source="audits",
                )
    candidates = tuple(Candidate(items[r.item_id].external_id, r.label, p, c) for r, p, c in missed)
    return AuditGold(candidates, tuple(tiers), 0 if dry_run else len(missed) * len(tiers))


def due(ctx: Context) -> bool:
    """``gold.from_audits`` is set and the champion (one loopwright runs) or the audit evidence
    changed since the last run: its evidence version, never a scan of the project."""
    if not ctx.config.gold.from_audits:
        return False
    pid = ctx.project.id
    with ctx.store.unit_of_work() as uow:
        champion = uow.models.champion(pid)
        if champion is None or champion.kind == EXTERNAL:
            return False
        last = uow.events.latest(pid, CHECKED)
        if last is not None and last.data.get("model_version_id") != champion.id:
            return True
        seen = 0 if last is None else last.data.get("evidence_version")  # an older run's event: None
        return bool(seen != uow.certifications.evidence_version(pid))
