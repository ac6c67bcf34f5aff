"""Ingest: items in → predictions by the champion → routing decisions → review tasks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Literal, NamedTuple

import numpy as np

from loopwright.domain import Route, content_hash
from loopwright.errors import Conflict, Invalid, ModelUnavailable, NotFitted
from loopwright.learning import featurize
from loopwright.loop import audit, certification, duplicates, external, media, monitoring, preprocess
from loopwright.loop.context import Context
from loopwright.loop.payload_schema import schema_for
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.queue import Carried, prioritise
from loopwright.loop.scoring import champion_scorer
from loopwright.privacy import scrub_payload
from loopwright.routing import ThresholdRouter
from loopwright.tasks import boxes, spans
from loopwright.tasks.multilabel import top

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
    alarm_confirmed: bool | None = None  # the last drift alarm, confirmed or retracted by this batch

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
    prediction: tuple[str, str, dict[str, float]] | None = None  # carried: (name, tag, probabilities)
    embedding: list[float] | None = None  # carried


def _carried(
    ctx: Context, i: int, rec: Mapping[str, Any], dims: dict[str, int]
) -> tuple[Any, Any, list[tuple[str, str]]]:
    """A record's own prediction and embedding, checked (``dims`` fixes the embedding length)."""
    prediction = embedding = None
    errors: list[tuple[str, str]] = []
    if rec.get("prediction") is not None:
        prediction, problem = external.check_prediction(ctx.labels, rec["prediction"])
        if prediction is None:
            errors.append((f"[{i}].prediction", problem))
    if rec.get("embedding") is not None:
        embedding, problem = external.check_embedding(rec["embedding"], dims.get("dim"))
        if embedding is None:
            errors.append((f"[{i}].embedding", problem))
        else:
            dims.setdefault("dim", len(embedding))
    return prediction, embedding, errors


def _embedding_dim(ctx: Context, records: list[Any]) -> dict[str, int]:
    """The project's embedding length when fixed (config, or the first one stored)."""
    if ctx.config.embedding.dim is not None:
        return {"dim": ctx.config.embedding.dim}
    if not any(isinstance(r, Mapping) and r.get("embedding") is not None for r in records):
        return {}
    with ctx.store.unit_of_work() as uow:
        dim = uow.embeddings.dim(ctx.project.id)
    return {} if dim is None else {"dim": dim}


def validate_records(ctx: Context, records: Iterable[Mapping[str, Any]]) -> list[_Record]:
    """Check every record at the edge; raise one Invalid listing all problems."""
    out: dict[str, _Record] = {}
    errors: list[tuple[str, str]] = []
    records = list(records)
    dims = _embedding_dim(ctx, records)
    schema = schema_for(ctx)  # fields, types and the image size every payload must have
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            errors.append((f"[{i}]", f"item must be an object, not {type(rec).__name__}"))
            continue
        ext = rec.get("external_id")
        if isinstance(ext, bool) or not isinstance(ext, str | int) or str(ext) == "":
            errors.append((f"[{i}].external_id", "required: a non-empty string or integer"))
            continue
        given = rec.get("payload")  # hashed as given: preprocessing may change with the config
        try:
            rec = preprocess.record(ctx.config, rec)
        except preprocess.Dropped as exc:
            errors.append((f"[{i}].payload", exc.reason))
            continue
        problem = schema.problem(rec.get("payload"))
        if problem:
            errors.append((f"[{i}].payload", problem))
            continue
        try:  # an image by reference: read and decoded now, inside the media roots
            seen_media = media.check(ctx.config, rec["payload"])
        except Invalid as exc:
            errors.append((f"[{i}].payload.{ctx.config.input_key}", exc.message))
            continue
        metadata = rec.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            errors.append((f"[{i}].metadata", "must be an object"))
            continue
        try:  # a spans/boxes item's model proposals, checked against its text or image
            _check_proposals(ctx, rec["payload"], dict(metadata) | seen_media)
        except Invalid as exc:
            errors.append((f"[{i}].payload", exc.message))
            continue
        prediction, embedding, problems = _carried(ctx, i, rec, dims)
        if problems:
            errors += problems
            continue
        try:
            payload, found = _scrubbed(ctx, rec["payload"])
        except Invalid as exc:
            errors += [(f"[{i}].payload.{field}", msg) for field, msg in exc.errors]
            continue
        record = _Record(
            str(ext),
            payload,
            dict(metadata) | preprocess.lineage(ctx.config) | seen_media,
            content_hash(given),
            found,
            prediction,
            embedding,
        )
        if (seen := out.get(record.external_id)) and seen.hash != record.hash:
            errors.append(
                (f"[{i}].external_id", f"{ext!r} appears twice in the batch with different payloads")
            )
        out.setdefault(record.external_id, record)
    if errors:
        raise Invalid(f"{len(errors)} item(s) rejected; nothing was ingested", errors)
    return list(out.values())


def _check_proposals(ctx: Context, payload: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Invalid when a spans or boxes item's ``proposals`` leave its text or image (tasks.spans/boxes)."""
    if ctx.config.task == "spans" and "proposals" in payload:
        spans.proposals(payload, ctx.config.input_key, ctx.labels)
    elif ctx.config.task == "boxes" and "proposals" in payload:
        boxes.proposals(payload, metadata, ctx.config.input_key, ctx.labels)


def _scrubbed(ctx: Context, payload: Mapping[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    """The payload to store: scrubbed of personal data unless the project keeps originals."""
    privacy = ctx.config.privacy
    if not privacy.fields or privacy.keep_original:
        return dict(payload), Counter()
    clean, findings = scrub_payload(payload, privacy.fields, privacy.kinds)
    return clean, Counter(f.kind for f in findings)


class _Scored(NamedTuple):
    model_version_id: int | None  # the champion's, or the one version that sent every prediction
    rows: list[dict[str, float] | None]  # per record: probabilities by label, None when unusable
    versions: list[int | None]  # per record: the model version that produced (or failed) it
    error: str | None  # why records without a carried prediction have none
    model: Any = None  # an in-process estimator (active-learning strategies may query it)
    X: Any = None  # the batch's features (embeddings when every record carries one)

    @property
    def any(self) -> bool:
        return any(r is not None for r in self.rows)


def _predict(ctx: Context, uow: UnitOfWork, records: list[_Record], actor: str = "system") -> _Scored:
    """Probabilities for ``records`` through the scoring port: the ones they carry (the external
    adapter), the champion's for the rest, or why there are none."""
    rows: list[dict[str, float] | None] = [None] * len(records)
    versions: list[int | None] = [None] * len(records)
    producers: dict[tuple[str, str], int] = {}  # name@tag → model version id, looked up once a batch
    for i, r in enumerate(records):
        if r.prediction is not None:
            name, tag, probabilities = r.prediction
            if (name, tag) not in producers:
                producers[name, tag] = external.version_for(ctx, uow, name, tag, actor).id
            rows[i], versions[i] = probabilities, producers[name, tag]
    rest = [i for i, r in enumerate(records) if r.prediction is None]
    champion = uow.models.champion(ctx.project.id) if rest else None
    served = ctx.config.model.kind in ctx.scorers or ctx.config.model.kind == "http"  # at the edge
    error, model = None, None
    if rest and champion is None and not served:
        error = "no_model"
    elif rest:
        if champion is not None:
            for i in rest:
                versions[i] = champion.id
        try:
            scorer = champion_scorer(ctx, uow)
            assert scorer is not None
            scores = scorer.score([records[i].payload for i in rest])
            for i, p, v in zip(rest, scores.probabilities, scores.model_version_ids, strict=True):
                rows[i], versions[i] = p, v
            model = getattr(scorer, "estimator", None)
        except (NotFitted, ModelUnavailable) as exc:
            log.warning("champion unavailable, routing to review: %s", exc)
            error = f"model_unavailable: {exc}"  # the reason stays on the prediction
        except Exception as exc:  # a model that raises must not lose items: they go to review
            name = type(exc).__name__
            who = ctx.config.model.kind if champion is None else f"v{champion.version}"
            log.warning("model %s raised %s: %s; routing to review", who, name, exc)
            error = f"model_error: {type(exc).__name__}: {exc}"
    made = set(versions)
    model_id = champion.id if champion is not None else (made.pop() if len(made) == 1 else None)
    scored = _Scored(model_id, rows, versions, error, model)
    return scored._replace(X=_features(ctx, records)) if scored.any else scored


def _foreign(ctx: Context, uow: UnitOfWork, scored: _Scored) -> bool:
    """True when some prediction of the batch came from a model version other than the champion."""
    champion = uow.models.champion(ctx.project.id)
    made = {v for v, row in zip(scored.versions, scored.rows, strict=True) if row is not None}
    return bool(made) and (champion is None or made != {champion.id})


def _for_queue(ctx: Context, records: list[_Record], scored: _Scored) -> Carried | None:
    """What the active-learning order reads instead of querying a model in this process: the
    scored probabilities, when no such model exists or the records carry embeddings."""
    embedded = bool(records) and all(r.embedding is not None for r in records)
    margin = ctx.config.active.strategy == "auto" and ctx.config.task == "single"
    if scored.model is not None and not embedded and not margin:
        return None  # the built-in path: the strategy queries the estimator on the features
    # "auto" ranks by margin, which the scored probabilities give without predicting again
    rows = [None if p is None else [p[label] for label in ctx.labels] for p in scored.rows]
    return Carried(rows, scored.X, embedded)


def _features(ctx: Context, records: list[_Record]) -> Any:
    """The embeddings the records carry when all do, else the payloads featurised."""
    if records and all(r.embedding is not None for r in records):
        return np.asarray([r.embedding for r in records], dtype=np.float64)
    return featurize(ctx.config, [r.payload for r in records])


def _top(
    labels: list[str], rows: list[dict[str, float] | None], task: str = "single"
) -> tuple[list[Any], list[Any]]:
    """Each row's answer (top label, first in label order on ties; for ``task: multilabel`` the
    set with p ≥ 0.5) and its confidence; None, None where a row has no prediction."""
    return top(task, labels, rows)


def _audit_draws(ctx: Context, records: list[_Record]) -> list[float]:
    """Uniform draws from the item hash and the project seed: random, yet reproducible."""
    seed = ctx.config.retrain.seed  # content_hash of the string, without its JSON encoder:
    digests = (sha256(f'"audit:{seed}:{r.hash}"'.encode()).hexdigest() for r in records)  # ASCII
    return [int(d[:8], 16) / 0x1_0000_0000 for d in digests]


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


CHUNK = 500  # items per transaction: a big batch never holds the write lock for long


def ingest(ctx: Context, records: Iterable[Mapping[str, Any]], actor: str = "system") -> IngestReport:
    """Store new items, predict, route and open review tasks.

    The whole batch is checked first (a bad record, or an external id already stored with other
    content, rejects it with nothing written); then it is written in chunks of ``CHUNK`` items,
    each one short transaction of its own. A crash mid-batch leaves a prefix of whole chunks;
    ingest is idempotent by external id, so sending the same batch again completes it.
    """
    batch = validate_records(ctx, records)
    with ctx.store.unit_of_work() as uow:
        _refuse_changed(uow.items.by_external_ids(ctx.project.id, [r.external_id for r in batch]), batch)
    parts = [_ingest_chunk(ctx, batch[i : i + CHUNK], actor) for i in range(0, max(len(batch), 1), CHUNK)]
    drift = next((p.drift for p in reversed(parts) if p.drift is not None), None)
    settled = next((p.alarm_confirmed for p in parts if p.alarm_confirmed is not None), None)
    return IngestReport(tuple(o for p in parts for o in p.outcomes), drift, settled)


def _refuse_changed(existing: Mapping[str, Any], batch: list[_Record]) -> None:
    for r in batch:
        if (old := existing.get(r.external_id)) and old.content_hash != r.hash:
            raise Conflict(f"item {r.external_id!r} exists with different content; nothing was ingested")


def _ingest_chunk(ctx: Context, batch: list[_Record], actor: str) -> IngestReport:
    """One chunk of a checked batch, in one transaction."""
    labels = ctx.labels
    with ctx.store.unit_of_work() as uow:
        existing = uow.items.by_external_ids(ctx.project.id, [r.external_id for r in batch])
        _refuse_changed(existing, batch)  # changed since the check: this chunk and the rest are not written
        new = [r for r in batch if r.external_id not in existing]
        scored = _predict(ctx, uow, new, actor) if new else _Scored(None, [], [], None)
        model_id, error = scored.model_version_id, scored.error
        pred_labels, confidences = _top(labels, scored.rows, ctx.config.task)
        reason = error.partition(":")[0] if error else "no_model"  # model_error, model_unavailable
        settled = monitoring.settle(ctx, uow, scored.X, actor) if ctx.config.drift.check_on_ingest else None
        threshold = _threshold(ctx, uow, actor)
        if threshold != "config" and _foreign(ctx, uow, scored):
            threshold = None  # the certificate is the champion's: another model's output is not covered
        drift = monitoring.batch_drift(ctx, uow, scored.X) if ctx.config.drift.check_on_ingest else None
        if drift is not None and drift["drift"]:
            threshold = None  # a changed world voids the certificate: this batch goes to review
        routing = ctx.config.routing
        if routing.audit_target is not None:  # adaptive: fewer audits as evidence accumulates
            routing = routing.model_copy(update={"audit_rate": audit.rate(ctx, uow)})
        router = ThresholdRouter(routing, threshold=threshold)
        choices = router.route(
            pred_labels, confidences, no_prediction_reason=reason, draws=_audit_draws(ctx, new)
        )
        if scored.any:
            choices = prioritise(ctx, uow, scored.model, scored.X, choices, _for_queue(ctx, new, scored))
        near = duplicates.check(ctx, uow, new)
        choices = duplicates.route(ctx, near, choices)
        outcomes = {
            ext: ItemOutcome(item.id, ext, True, None, None, None, None, None)
            for ext, item in existing.items()
        }
        _write(ctx, uow, new, choices, scored, near, router.threshold, error, outcomes)
        new_ids = [outcomes[r.external_id].item_id for r in new]
        duplicates.remember(ctx, uow, near, new_ids)
        duplicates.reuse(ctx, uow, near, choices, new_ids, actor)  # action reuse: the original's label
        report = IngestReport(tuple(outcomes[r.external_id] for r in batch), drift, settled)
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


def _write(
    ctx: Context,
    uow: UnitOfWork,
    new: list[_Record],
    choices: list[Any],
    scored: _Scored,
    near: Any,
    threshold: float | None,
    error: str | None,
    outcomes: dict[str, ItemOutcome],
) -> None:
    """Store the new items with their predictions, decisions and tasks: a few multi-row
    statements per table, not one statement per row; fills ``outcomes``."""
    pred_labels, confidences = _top(ctx.labels, scored.rows, ctx.config.task)
    item_ids = uow.items.add_many(
        ctx.project.id,
        [
            (
                r.external_id,
                r.hash,
                r.payload,
                r.metadata if i not in near.matches else {**r.metadata, **near.link(i)},
            )
            for i, r in enumerate(new)
        ],
    )
    vectors = {
        item_id: r.embedding for item_id, r in zip(item_ids, new, strict=True) if r.embedding is not None
    }
    if vectors:
        uow.embeddings.add_many(ctx.project.id, vectors)
    pred_ids = uow.predictions.add_many(
        [
            (
                item_id,
                scored.versions[i],
                row or {},
                pred_labels[i],
                confidences[i],
                None if row is not None else error,
            )
            for i, (item_id, row) in enumerate(zip(item_ids, scored.rows, strict=True))
        ]
    )
    decision_ids = uow.decisions.add_many(
        [
            (item_id, pred_id, c.route, c.tier, c.reason, c.audit, threshold)
            for item_id, pred_id, c in zip(item_ids, pred_ids, choices, strict=True)
        ]
    )
    uow.tasks.add_many(
        ctx.project.id,
        [
            (item_id, decision_id, c.tier, c.priority, c.reason, duplicates.required(ctx, c))
            for item_id, decision_id, c in zip(item_ids, decision_ids, choices, strict=True)
            if c.route is Route.REVIEW and c.tier is not None
        ],
    )
    for i, (r, item_id, c) in enumerate(zip(new, item_ids, choices, strict=True)):
        outcomes[r.external_id] = ItemOutcome(
            item_id, r.external_id, False, pred_labels[i], confidences[i], c.route, c.tier, c.reason
        )
