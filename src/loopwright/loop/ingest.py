"""Ingest: items in → predictions by the champion → routing decisions → review tasks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from loopwright.domain import Route, content_hash
from loopwright.errors import Conflict, Invalid, NotFitted
from loopwright.learning import featurize, predict_proba_by_label
from loopwright.learning.estimators import check_payload
from loopwright.loop import certification, monitoring
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.queue import prioritise
from loopwright.privacy import scrub_payload
from loopwright.routing import ThresholdRouter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    item_id: int
    external_id: str
    duplicate: bool  # already ingested earlier: nothing new was written for it
    label: str | None
    confidence: float | None
    route: Route | None
    tier: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class IngestReport:
    outcomes: tuple[ItemOutcome, ...]
    drift: dict[str, Any] | None = None  # the batch against the window before it, when checked

    def count(self, reason: str | None = None, route: Route | None = None) -> int:
        return sum(
            1
            for o in self.outcomes
            if not o.duplicate
            and (reason is None or o.reason == reason)
            and (route is None or o.route == route)
        )

    @property
    def created(self) -> int:
        return sum(not o.duplicate for o in self.outcomes)

    @property
    def duplicates(self) -> int:
        return sum(o.duplicate for o in self.outcomes)


@dataclass(frozen=True, slots=True)
class _Record:
    external_id: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    hash: str  # of the payload as given, so re-sending the same original stays idempotent
    scrubbed: Counter[str]  # personal data replaced before storing, by kind


def validate_records(ctx: Context, records: Iterable[Mapping[str, Any]]) -> list[_Record]:
    """Check every record at the edge; raise one Invalid listing all problems."""
    out: dict[str, _Record] = {}
    errors: list[tuple[str, str]] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            errors.append((f"[{i}]", f"item must be an object, not {type(rec).__name__}"))
            continue
        ext = rec.get("external_id")
        if isinstance(ext, bool) or not isinstance(ext, str | int) or str(ext) == "":
            errors.append((f"[{i}].external_id", "required: a non-empty string or integer"))
            continue
        problem = check_payload(ctx.config, rec.get("payload"))
        if problem:
            errors.append((f"[{i}].payload", problem))
            continue
        metadata = rec.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            errors.append((f"[{i}].metadata", "must be an object"))
            continue
        try:
            payload, found = _scrubbed(ctx, rec["payload"])
        except Invalid as exc:
            errors += [(f"[{i}].payload.{field}", msg) for field, msg in exc.errors]
            continue
        record = _Record(str(ext), payload, dict(metadata), content_hash(rec["payload"]), found)
        if (seen := out.get(record.external_id)) and seen.hash != record.hash:
            errors.append(
                (f"[{i}].external_id", f"{ext!r} appears twice in the batch with different payloads")
            )
        out.setdefault(record.external_id, record)
    if errors:
        raise Invalid(f"{len(errors)} item(s) rejected; nothing was ingested", errors)
    return list(out.values())


def _scrubbed(ctx: Context, payload: Mapping[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    """The payload to store: scrubbed of personal data unless the project keeps originals."""
    privacy = ctx.config.privacy
    if not privacy.fields or privacy.keep_original:
        return dict(payload), Counter()
    clean, findings = scrub_payload(payload, privacy.fields, privacy.kinds)
    return clean, Counter(f.kind for f in findings)


class _Scored(NamedTuple):
    model_version_id: int | None
    proba: Any  # probability matrix, or None when there is no usable prediction
    error: str | None  # why there is none
    model: Any = None
    X: Any = None


def _predict(ctx: Context, uow: UnitOfWork, records: list[_Record]) -> _Scored:
    """The champion's probabilities for ``records``, or why there are none."""
    champion = uow.models.champion(ctx.project.id)
    if champion is None:
        return _Scored(None, None, "no_model")
    try:
        model = ctx.model(uow, champion)
        X = featurize(ctx.config, [r.payload for r in records])
        return _Scored(champion.id, predict_proba_by_label(model, X, ctx.labels), None, model, X)
    except NotFitted as exc:
        log.warning("champion unavailable, routing to review: %s", exc)
        return _Scored(champion.id, None, "model_unavailable")
    except Exception as exc:  # a model that raises must not lose items: they go to review
        log.warning("model v%s raised %s: %s; routing to review", champion.version, type(exc).__name__, exc)
        return _Scored(champion.id, None, f"model_error: {type(exc).__name__}: {exc}")


def _audit_draws(ctx: Context, records: list[_Record]) -> list[float]:
    """Uniform draws from the item hash and the project seed: random, yet reproducible."""
    seed = ctx.config.retrain.seed
    return [int(content_hash(f"audit:{seed}:{r.hash}")[:8], 16) / 0x1_0000_0000 for r in records]


def _threshold(ctx: Context, uow: UnitOfWork, actor: str) -> float | Literal["config"] | None:
    """The configured threshold, or the certified one (``None``: nothing certified)."""
    if ctx.config.routing.certify is None:
        return "config"
    try:
        cert = certification.current(ctx, uow, actor)
    except Exception as exc:  # a champion that cannot score the audit certifies nothing
        log.warning("could not certify a threshold, routing everything to review: %s", exc)
        return None
    return None if cert is None else cert.threshold


def ingest(ctx: Context, records: Iterable[Mapping[str, Any]], actor: str = "system") -> IngestReport:
    """Store new items, predict, route and open review tasks, all in one transaction."""
    batch = validate_records(ctx, records)
    labels = ctx.labels
    with ctx.store.unit_of_work() as uow:
        existing = uow.items.by_external_ids(ctx.project.id, [r.external_id for r in batch])
        for r in batch:
            if (old := existing.get(r.external_id)) and old.content_hash != r.hash:
                raise Conflict(f"item {r.external_id!r} exists with different content; nothing was ingested")
        new = [r for r in batch if r.external_id not in existing]
        scored = _predict(ctx, uow, new) if new else _Scored(None, None, None)
        model_id, proba, error = scored.model_version_id, scored.proba, scored.error
        if proba is not None:
            top = proba.argmax(axis=1)
            pred_labels: list[str | None] = [labels[j] for j in top]
            confidences: list[float | None] = [float(c) for c in proba[np.arange(len(new)), top]]
        else:
            pred_labels, confidences = [None] * len(new), [None] * len(new)
        reason = "model_error" if error and error.startswith("model_error") else (error or "no_model")
        threshold = _threshold(ctx, uow, actor)
        drift = monitoring.batch_drift(ctx, uow, scored.X) if ctx.config.drift.check_on_ingest else None
        if drift is not None and drift["drift"]:
            threshold = None  # a changed world voids the certificate: this batch goes to review
        router = ThresholdRouter(ctx.config.routing, threshold=threshold)
        choices = router.route(
            pred_labels, confidences, no_prediction_reason=reason, draws=_audit_draws(ctx, new)
        )
        if proba is not None:
            choices = prioritise(ctx, uow, scored.model, scored.X, choices)
        outcomes = {
            ext: ItemOutcome(item.id, ext, True, None, None, None, None, None)
            for ext, item in existing.items()
        }
        for i, (r, choice) in enumerate(zip(new, choices, strict=True)):
            item = uow.items.add(ctx.project.id, r.external_id, r.hash, r.payload, r.metadata)
            probabilities = {} if proba is None else dict(zip(labels, map(float, proba[i]), strict=True))
            pred = uow.predictions.add(
                item.id, model_id, probabilities, pred_labels[i], confidences[i], error
            )
            decision = uow.decisions.add(
                item.id,
                pred.id,
                choice.route,
                choice.tier,
                choice.reason,
                choice.audit,
                router.threshold,
            )
            if choice.route is Route.REVIEW and choice.tier is not None:
                required = ctx.config.tier(choice.tier).required_annotations
                uow.tasks.add(
                    ctx.project.id,
                    item.id,
                    decision.id,
                    choice.tier,
                    choice.priority,
                    choice.reason,
                    required,
                )
            outcomes[r.external_id] = ItemOutcome(
                item.id,
                r.external_id,
                False,
                pred_labels[i],
                confidences[i],
                choice.route,
                choice.tier,
                choice.reason,
            )
        report = IngestReport(tuple(outcomes[r.external_id] for r in batch), drift)
        created = [o.item_id for o in report.outcomes if not o.duplicate]
        if drift is not None and created:
            monitoring.record(ctx, uow, actor, drift, (min(created), max(created)), sampled=0)
        ctx.event(
            uow,
            actor,
            "items.ingested",
            ("project", ctx.project.name),
            created=report.created,
            duplicates=report.duplicates,
            to_review=report.count(route=Route.REVIEW),
            model_version_id=model_id,
            error=error,
            pii_scrubbed=dict(sum((r.scrubbed for r in new), Counter[str]())),
        )
    return report
