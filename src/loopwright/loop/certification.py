"""Certify the auto-accept threshold from the audit sample, for the current champion.

The evidence is every audited item with a resolved label, or with a first answer that waits for a
second (:func:`loopwright.loop.audit.audited_labels`). Audited items are drawn uniformly at
random whatever their confidence and never enter training (:mod:`loopwright.loop.snapshot` puts
them in the evaluation split), so any model version can be scored on all of them: the champion's
confidence on each, and whether its label matches the resolved one. A champion that lives
elsewhere cannot be re-run: its evidence is the predictions it sent with the audited items.
A certificate is stored per (champion, evidence count) and recomputed when either changes:
after a promotion and whenever new audit labels arrive, and from scratch after a detected drift.
Whether anything changed is read from the project's evidence version, which every commit that
answers or resolves an audited item, raises or retracts a drift alarm or erases an item moves
(:class:`loopwright.store.sql.repositories.EvidenceMarks`): an ingest with no new evidence pays
one key look-up, and no write that commits after the certificate read its evidence is missed.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from loopwright.domain import Certification
from loopwright.loop import audit
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.routing import certify


def current(ctx: Context, uow: UnitOfWork, actor: str = "system") -> Certification | None:
    """The certificate for the champion and today's evidence, certifying anew when stale.

    ``None`` when the project does not certify (``routing.certify`` unset) or has no champion.
    """
    config = ctx.config.routing.certify
    champion = uow.models.champion(ctx.project.id)
    if config is None or champion is None:
        return None
    latest = uow.certifications.latest(ctx.project.id)
    version = uow.certifications.evidence_version(ctx.project.id)  # read before the evidence is
    if latest and latest.model_version_id == champion.id and latest.evidence_version == version:
        return latest
    audited = audit.audited_labels(uow, ctx.project.id, audit.drift_start(uow, ctx.project.id) or 0)
    ids, confidences, correct = audit.score_version(ctx, uow, champion, audited)  # external: stored
    held = _held(uow, ctx.project.id) if ctx.config.routing.audit_answers == 1 else None
    cert = certify(
        confidences,
        correct,
        config.epsilon,
        config.delta,
        min_evidence=config.min_evidence,
        start_at=None if held is None else held.threshold,
    )
    # the errors the certificate counted, and the one that stopped its scan: re-check lone answers
    looked_at = np.argsort(-confidences, kind="stable")[: cert.n_evidence + 1]
    audit.recheck(ctx, uow, [ids[j] for j in looked_at if not correct[j]], actor)
    values = {k: v.item() if isinstance(v, np.generic) else v for k, v in asdict(cert).items()}
    values["evidence_version"] = version
    stored = uow.certifications.add(ctx.project.id, champion.id, values)
    ctx.event(
        uow,
        actor,
        "routing.certified",
        ("model_version", champion.version),
        certification_id=stored.id,
        threshold=stored.threshold,
        epsilon=stored.epsilon,
        delta=stored.delta,
        n_evidence=stored.n_evidence,
        n_errors=stored.n_errors,
        n_audited=stored.n_audited,
        reason=stored.reason,
    )
    return stored


def _held(uow: UnitOfWork, project_id: int) -> Certification | None:
    """The newest certificate, when it certified a threshold since the last drift: a new champion
    (or new evidence) is tested from that threshold down, so the certificate carries across
    promotions while the audited error at it still passes. When that test fails nothing is held,
    and the next certification scans from the top again. Only with one answer per audited item:
    it guards against an audit slip among the most confident items stopping the scan, which a
    second opinion (``routing.audit_answers`` > 1) already removes, so then every scan starts
    from the top and the threshold moves with the evidence instead of being lost when it fails."""
    latest = uow.certifications.latest(project_id)
    if latest is None or latest.threshold is None:
        return None
    drift = audit.last_drift(uow, project_id)
    return None if drift is not None and latest.created_at <= drift.at else latest
