"""The review queue's order: the project's active-learning strategy decides which of a batch's
uncertain items humans label first, so the queue itself is the active-learning order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from loopwright.active import make_strategy, smallest_margin, top_k
from loopwright.active.features import dense
from loopwright.active.scores import pool_proba
from loopwright.domain import Route
from loopwright.learning import featurize
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.routing import RouteChoice

RANKED_REASONS = frozenset({"low_confidence", "uncertified"})  # queued because of the model
REFERENCE = 1000  # resolved items diversity starts from: the newest, whatever the project's size


def prioritise(
    ctx: Context,
    uow: UnitOfWork,
    model: Any,
    X: Any,
    choices: list[RouteChoice],
    carried: Carried | None = None,
) -> list[RouteChoice]:
    """Give the model-queued review items of a batch priorities 1 - rank / n in strategy order.

    Audit, high-stakes and no-model items keep theirs. ``least-confidence`` keeps the router's
    ``1 - confidence``, which orders the same way; ``auto`` (the default) orders by margin. With
    ``carried`` (the batch's probabilities from the scoring port, and the embeddings its records
    carry) the strategy reads those instead of querying ``model`` and featurising payloads, so it
    works for a model that lives elsewhere too (query by committee excepted: it fits models of its
    own on features).
    """
    name = ctx.config.active.strategy
    ranked = [i for i, c in enumerate(choices) if c.route is Route.REVIEW and c.reason in RANKED_REASONS]
    if name == "least-confidence" or len(ranked) < 2:
        return choices
    if name == "auto":  # the bandit keeps no state between batches here yet: its anchor, margin
        if carried is not None:
            proba = np.asarray([carried.proba[i] for i in ranked], dtype=np.float64)
        elif model is None:
            return choices
        else:
            proba = pool_proba(model, [X[i] for i in ranked] if isinstance(X, list) else X[ranked])
        return _ranked(choices, ranked, top_k(smallest_margin(proba), len(ranked)))
    seed = [ctx.config.retrain.seed, uow.items.count(ctx.project.id)]
    if carried is not None and name != "qbc":
        order = _select_carried(ctx, uow, name, carried, ranked, np.random.default_rng(seed))
    elif model is None:
        return choices
    else:
        X_pool = [X[i] for i in ranked] if isinstance(X, list) else X[ranked]
        X_labelled, y_labelled = _labelled(ctx, uow)
        order = make_strategy(name).select(
            model, X_pool, X_labelled, len(ranked), np.random.default_rng(seed), y_labelled
        )
    return _ranked(choices, ranked, order)


def _ranked(choices: list[RouteChoice], ranked: list[int], order: Any) -> list[RouteChoice]:
    out = list(choices)
    for rank, j in enumerate(order.tolist()):
        i = ranked[j]
        out[i] = replace(choices[i], priority=1.0 - rank / len(ranked))
    return out


@dataclass(frozen=True, slots=True)
class Carried:
    """A batch's probability rows in label order, and its features: the embeddings its records
    carried (``embedded``) or the payloads featurised."""

    proba: list[list[float] | None]
    X: Any
    embedded: bool


class _Lookup:
    """Strategies see row numbers: probabilities and vectors are looked up, never computed."""

    def __init__(self, classes: list[str], proba: Any, vectors: Any) -> None:
        self.classes_ = np.asarray(classes)
        self.proba, self.vectors = proba, vectors

    def predict_proba(self, rows: Any) -> Any:
        return self.proba[np.asarray(rows, dtype=np.intp).ravel()]

    def embed(self, rows: Any) -> Any:
        return self.vectors[np.asarray(rows, dtype=np.intp).ravel()]


def _select_carried(
    ctx: Context, uow: UnitOfWork, name: str, carried: Carried, ranked: list[int], rng: np.random.Generator
) -> Any:
    """The strategy's order over ``ranked`` from carried probabilities and features: row numbers
    0…n-1 are the pool, n… the resolved items (diversity starts from them)."""
    proba = np.asarray([carried.proba[i] for i in ranked], dtype=np.float64)
    X_pool = [carried.X[i] for i in ranked] if isinstance(carried.X, list) else carried.X[ranked]
    if carried.embedded:
        found = uow.embeddings.get_many(list(uow.resolutions.recent_by_item(ctx.project.id, REFERENCE)))
        X_labelled = np.asarray(list(found.values()), dtype=np.float64) if found else None
    else:
        X_labelled, _ = _labelled(ctx, uow)
    pool, labelled = dense(X_pool, X_labelled)
    n_labelled = 0 if labelled is None else len(labelled)
    vectors = pool if labelled is None else np.vstack([pool, labelled])
    table = np.vstack([proba, np.zeros((n_labelled, len(ctx.labels)))])
    lookup = _Lookup(ctx.labels, table, vectors)
    rows_pool = np.arange(len(ranked)).reshape(-1, 1)
    rows_labelled = np.arange(len(ranked), len(ranked) + n_labelled).reshape(-1, 1) if n_labelled else None
    strategy = make_strategy(name, embed=lookup.embed)
    return strategy.select(lookup, rows_pool, rows_labelled, len(ranked), rng, None)


def _labelled(ctx: Context, uow: UnitOfWork) -> tuple[Any, list[str] | None]:
    """Features and labels of the ``REFERENCE`` most recently resolved items (diversity starts
    from them): a fixed-size reference sample, so an ingest never featurises the whole project."""
    resolved = uow.resolutions.recent_by_item(ctx.project.id, REFERENCE)
    if not resolved:
        return None, None
    items = uow.items.get_many(list(resolved))
    return featurize(ctx.config, [i.payload for i in items]), [resolved[i.id].label for i in items]
