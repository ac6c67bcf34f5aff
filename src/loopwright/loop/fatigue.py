"""Fatigue: caps on an annotator's work per hour and per session, and rotation of suggested
labels and of sources."""

from __future__ import annotations

from datetime import datetime

from loopwright.errors import Capped
from loopwright.loop.context import Context
from loopwright.loop.gold import HOUR
from loopwright.loop.ports import UnitOfWork


def check_caps(ctx: Context, uow: UnitOfWork, annotator: str, session_id: str | None, now: datetime) -> None:
    """Raise :class:`Capped` when ``annotator`` reached a cap, saying when work may resume.

    The hourly cap counts annotations and gold answers in the last hour (a sliding window); the
    session cap counts submissions under ``session_id`` and applies only when one is given.
    """
    config = ctx.config.fatigue
    if config.max_per_hour is not None:
        times = uow.annotations.work_times(ctx.project.id, annotator, now - HOUR)
        if len(times) >= config.max_per_hour:
            resume = times[len(times) - config.max_per_hour] + HOUR
            raise Capped(
                f"{annotator!r} reached the cap of {config.max_per_hour} annotations per hour;"
                f" work can resume at {resume.isoformat()}"
            )
    cap = config.max_per_session
    if (
        cap is not None
        and session_id is not None
        and uow.leases.count_submitted(annotator, session_id) >= cap
    ):
        raise Capped(
            f"{annotator!r} reached the cap of {cap} annotations in session {session_id!r};"
            " work can resume in a new session after a break"
        )


def label_to_avoid(ctx: Context, uow: UnitOfWork, annotator: str) -> str | None:
    """The model-suggested label of ``annotator``'s last ``max_same_label_run`` annotations, if
    they all carried the same one; the next claim then prefers a task suggesting another."""
    run = ctx.config.fatigue.max_same_label_run
    if run is None:
        return None
    recent = uow.annotations.recent(ctx.project.id, annotator, run)
    if len(recent) < run:
        return None
    suggested = set()
    for a in recent:
        predictions = uow.predictions.for_item(a.item_id)
        suggested.add(predictions[-1].label if predictions else None)
    return suggested.pop() if len(suggested) == 1 else None


def source_to_avoid(ctx: Context, uow: UnitOfWork, annotator: str) -> str | None:
    """The source (item metadata ``source_key``) of ``annotator``'s last ``max_same_source_run``
    annotations, if they all came from the same one; the next claim then prefers another."""
    config = ctx.config.fatigue
    if config.max_same_source_run is None:
        return None
    recent = uow.annotations.recent(ctx.project.id, annotator, config.max_same_source_run)
    if len(recent) < config.max_same_source_run:
        return None
    sources = {uow.items.get(a.item_id).metadata.get(config.source_key) for a in recent}
    source = sources.pop() if len(sources) == 1 else None
    return None if source is None else str(source)
