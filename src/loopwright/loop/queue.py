"""The review queue's order: the project's active-learning strategy decides which of a batch's
uncertain items humans label first, so the queue itself is the active-learning order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from loopwright.active import make_strategy
from loopwright.domain import Route
from loopwright.learning import featurize
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.routing import RouteChoice

RANKED_REASONS = frozenset({"low_confidence", "uncertified"})  # queued because of the model


def prioritise(
    ctx: Context, uow: UnitOfWork, model: Any, X: Any, choices: list[RouteChoice]
) -> list[RouteChoice]:
    """Give the model-queued review items of a batch priorities 1 - rank / n in strategy order.

    Audit, high-stakes and no-model items keep theirs. ``least-confidence`` (the default) keeps
    the router's ``1 - confidence``, which orders the same way.
    """
    name = ctx.config.active.strategy
    ranked = [i for i, c in enumerate(choices) if c.route is Route.REVIEW and c.reason in RANKED_REASONS]
    if name == "least-confidence" or model is None or len(ranked) < 2:
        return choices
    X_pool = [X[i] for i in ranked] if isinstance(X, list) else X[ranked]
    X_labelled, y_labelled = _labelled(ctx, uow)
    seed = [ctx.config.retrain.seed, uow.items.count(ctx.project.id)]
    order = make_strategy(name).select(
        model, X_pool, X_labelled, len(ranked), np.random.default_rng(seed), y_labelled
    )
    out = list(choices)
    for rank, j in enumerate(order.tolist()):
        i = ranked[j]
        out[i] = replace(choices[i], priority=1.0 - rank / len(ranked))
    return out


def _labelled(ctx: Context, uow: UnitOfWork) -> tuple[Any, list[str] | None]:
    """Features and labels of every resolved item (diversity starts from them)."""
    resolved = uow.resolutions.latest_by_item(ctx.project.id)
    if not resolved:
        return None, None
    items = uow.items.get_many(list(resolved))
    return featurize(ctx.config, [i.payload for i in items]), [resolved[i.id].label for i in items]
