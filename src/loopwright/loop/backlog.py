"""Accept the review backlog a certificate covers.

Items that went to review only because nothing was certified yet (or an older champion was
unsure, or there was no model) wait untouched once the humans fall behind. When the champion
holds a certified threshold, those items are scored again by the champion and the ones at or
above the threshold are auto-accepted as if they arrived now: a new prediction and an
``auto_accept`` decision (reason ``certified_backlog``), the task closed as ``accepted``.

Why the guarantee carries over: the audit sample behind the certificate is drawn uniformly from
the same stream (every item, whatever its route) since the last drift, and only items ingested
since then are accepted. Tasks someone answered or leases, that a lower tier sent up, and
flagged, high-stakes, audited, duplicate or drift-review items are left alone: only the reasons
in :data:`REASONS` qualify. A champion that lives elsewhere is scored by its stored
predictions, so only items it predicted can be accepted.

Cost: a new champion or a lower threshold rescans the backlog since the drift; otherwise only
items ingested since the last pass are scanned (the pass's event keeps where it stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from loopwright.domain import Certification, Event, ModelVersion, Route
from loopwright.loop import audit, certification
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.scoring import scores_of
from loopwright.tasks.multilabel import top

REASONS = ("uncertified", "low_confidence", "no_model")  # sent to review for want of a certificate
UNSCORED = ("uncertified", "no_model")  # of those, the ones no certificate of this champion has seen
ACCEPTED = "backlog.accepted"
REASON = "certified_backlog"  # the reason on an acceptance's auto_accept decision
CHUNK = 500  # tasks per transaction


@dataclass(frozen=True, slots=True)
class BacklogReport:
    scanned: int  # untouched tasks scored again
    accepted: int  # of those, auto-accepted and closed
    threshold: float | None  # the certified threshold (None: nothing certified, nothing scanned)
    model_version: int | None
    items: tuple[tuple[str, str], ...] = ()  # (external id, accepted label) of each, in item order

    def summary(self) -> dict[str, Any]:
        """The counts without the item list (what a job result or an API reply carries)."""
        return {
            "scanned": self.scanned,
            "accepted": self.accepted,
            "threshold": self.threshold,
            "model_version": self.model_version,
        }


class _Scope(NamedTuple):
    cert: Certification
    threshold: float  # the certificate's
    champion: ModelVersion
    since: int  # the first item id to scan
    reasons: tuple[str, ...]  # the task reasons that qualify


def accept(ctx: Context, actor: str = "system") -> BacklogReport:
    """Auto-accept the untouched backlog the champion's certificate covers, one transaction per
    :data:`CHUNK` tasks, oldest first; one ``backlog.accepted`` event at the end."""
    with ctx.store.unit_of_work() as uow:
        scope = _scope(ctx, uow, actor)
    if scope is None:
        return BacklogReport(0, 0, None, None)
    cert, threshold, champion, since, reasons = scope
    scanned, last_item = 0, since - 1
    accepted: list[tuple[str, str]] = []
    while True:
        with ctx.store.unit_of_work() as uow:
            tasks = uow.tasks.backlog(ctx.project.id, reasons, last_item + 1, ctx.clock(), CHUNK)
            if not tasks:
                break
            last_item, scanned = tasks[-1].item_id, scanned + len(tasks)
            items = {i.id: i for i in uow.items.get_many([t.item_id for t in tasks])}
            scores = scores_of(ctx, uow, champion, list(items.values()))
            scored = [t for t in tasks if t.item_id in scores]
            labels, confidences = top(ctx.config.task, ctx.labels, [scores[t.item_id] for t in scored])
            high = ctx.config.routing.high_stakes_labels
            passing = {
                t.id: (t.item_id, label, conf)
                for t, label, conf in zip(scored, labels, confidences, strict=True)
                if label is not None and conf is not None and conf >= threshold and label not in high
            }
            rows = [passing[task_id] for task_id in uow.tasks.accept(list(passing), ctx.clock())]
            pred_ids = uow.predictions.add_many(
                [(item_id, champion.id, scores[item_id], label, conf, None) for item_id, label, conf in rows]
            )
            uow.decisions.add_many(
                [
                    (item_id, pred_id, Route.AUTO_ACCEPT, None, REASON, False, threshold)
                    for (item_id, _, _), pred_id in zip(rows, pred_ids, strict=True)
                ]
            )
            accepted += [(items[item_id].external_id, label) for item_id, label, _ in rows]
    with ctx.store.unit_of_work() as uow:
        ctx.event(
            uow,
            actor,
            ACCEPTED,
            ("model_version", champion.version),
            accepted=len(accepted),
            scanned=scanned,
            threshold=threshold,
            model_version_id=champion.id,
            certification_id=cert.id,
            scanned_to_item_id=last_item,
        )
    return BacklogReport(scanned, len(accepted), threshold, champion.version, tuple(accepted))


def due(ctx: Context) -> bool:
    """Whether a pass could accept anything: a certified threshold and either a champion or a
    threshold below the last pass's, or review tasks opened since it (indexed look-ups)."""
    with ctx.store.unit_of_work() as uow:
        scope = _scope(ctx, uow, "automation")  # the certificate is cached unless something changed
        if scope is None:
            return False
        return bool(uow.tasks.backlog(ctx.project.id, scope.reasons, scope.since, ctx.clock(), 1))


def _scope(ctx: Context, uow: UnitOfWork, actor: str) -> _Scope | None:
    """What a pass uses and scans (:class:`_Scope`); None while no threshold is certified.
    Scanning starts at the drift start or, when the last pass used this champion at a threshold
    no higher than now, past it and only for items routed for want of a certificate (nothing it
    left, and no item this champion already found below a certified threshold, can pass now)."""
    cert = certification.current(ctx, uow, actor)
    champion = uow.models.champion(ctx.project.id)
    if cert is None or cert.threshold is None or champion is None:
        return None
    start = audit.drift_start(uow, ctx.project.id) or 0
    last: Event | None = uow.events.latest(ctx.project.id, ACCEPTED)
    if last is None or last.data.get("model_version_id") != champion.id:
        return _Scope(cert, cert.threshold, champion, start, REASONS)
    if cert.threshold < float(last.data["threshold"]):
        return _Scope(cert, cert.threshold, champion, start, REASONS)
    since = max(start, int(last.data["scanned_to_item_id"]) + 1)
    return _Scope(cert, cert.threshold, champion, since, UNSCORED)
