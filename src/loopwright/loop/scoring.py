"""Scorers: the adapters of the :class:`~loopwright.loop.ports.Scorer` port that live in the loop.

* :class:`EstimatorScorer` — the in-process estimator (the built-in scikit-learn path, or one
  handed to ``use_model``): featurise the payloads, ``predict_proba`` keyed by ``classes_``.
* :class:`ExternalScorer` — the prediction came with the record: hand it back, score nothing.

:func:`champion_scorer` picks the adapter that scores items arriving without a prediction, and
:func:`scores_of` gives any model version's probabilities on stored items — re-scored in process
when the version is an estimator here, read from its stored predictions (ingested with records,
or uploaded for the evaluation split) when it lives elsewhere and cannot be re-run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.domain import Item, ModelVersion
from loopwright.errors import Invalid, ModelUnavailable, NotFitted
from loopwright.learning import ProbabilisticModel, featurize, predict_proba_by_label
from loopwright.loop.context import Context
from loopwright.loop.ports import Scorer, Scores, UnitOfWork
from loopwright.tasks.multilabel import decide

EXTERNAL = "external"  # ModelVersion.kind of a version that lives elsewhere


class EstimatorScorer:
    """Score with an estimator in this process (``predict_proba`` + ``classes_``)."""

    def __init__(self, ctx: Context, estimator: ProbabilisticModel, model_version_id: int | None) -> None:
        self.ctx = ctx
        self.estimator = estimator  # in-process only: active-learning strategies may query it
        self.model_version_id = model_version_id

    def score(self, payloads: Sequence[Mapping[str, Any]]) -> Scores:
        labels = self.ctx.labels
        X = featurize(self.ctx.config, [p if type(p) is dict else dict(p) for p in payloads])
        proba = predict_proba_by_label(self.estimator, X, labels)
        rows = tuple(dict(zip(labels, row, strict=True)) for row in proba.tolist())  # Python floats
        return Scores(rows, (self.model_version_id,) * len(rows))


class ExternalScorer:
    """Predictions that arrived with the records, handed back in order: nothing is scored."""

    def __init__(self, rows: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        self.rows = list(rows)  # (model version id, probabilities) per record

    def score(self, payloads: Sequence[Mapping[str, Any]]) -> Scores:
        if len(payloads) != len(self.rows):
            raise Invalid(f"{len(payloads)} payloads for {len(self.rows)} carried predictions")
        return Scores(tuple(dict(p) for _, p in self.rows), tuple(v for v, _ in self.rows))


def champion_scorer(ctx: Context, uow: UnitOfWork) -> Scorer | None:
    """What scores items that arrive without a prediction; None when there is no champion.

    Raises NotFitted (an artifact this process cannot load) or ModelUnavailable (a champion
    that lives elsewhere and that loopwright cannot call): the items then go to review.
    """
    kind = ctx.config.model.kind
    if (factory := ctx.scorers.get(kind)) is not None:
        return factory(ctx, uow)  # a model at the edge (kind http: a served model)
    if kind == "http":
        raise ModelUnavailable(
            "model.kind http needs the served-model scorer: open the workspace with "
            "loopwright.connect() (or pass scorers={'http': ServedModels()} to Workspace)"
        )
    champion = uow.models.champion(ctx.project.id)
    if champion is None:
        return None
    if champion.kind == EXTERNAL:
        raise ModelUnavailable(
            f"champion {champion.ref} lives elsewhere and names no endpoint here: "
            "send its predictions with the records"
        )
    return EstimatorScorer(ctx, ctx.model(uow, champion), champion.id)


def champion_here(ctx: Context, uow: UnitOfWork) -> ProbabilisticModel | None:
    """The champion as an estimator in this process; None when there is none loopwright runs
    (no champion yet, one that lives elsewhere, or one with no stored artifact)."""
    champion = uow.models.champion(ctx.project.id)
    if champion is None or champion.kind == EXTERNAL:
        return None
    try:
        return ctx.model(uow, champion)
    except NotFitted:
        return None


def answers(
    ctx: Context, model: ProbabilisticModel, payloads: list[dict[str, Any]]
) -> tuple[list[str], NDArray[np.float64]]:
    """``model``'s answer on each payload and how sure it is (:func:`decide`: for ``multilabel``
    the label set and its confidence)."""
    proba = predict_proba_by_label(model, featurize(ctx.config, payloads), ctx.labels)
    return decide(ctx.config.task, ctx.labels, proba)


def answers_on(
    ctx: Context, uow: UnitOfWork, model: ProbabilisticModel, item_ids: Sequence[int]
) -> tuple[list[str], NDArray[np.float64]]:
    """:func:`answers` on the stored items ``item_ids``, in that order (one read)."""
    if not item_ids:
        return [], np.zeros(0)
    return answers(ctx, model, [i.payload for i in uow.items.get_many(item_ids)])


def scores_of(
    ctx: Context, uow: UnitOfWork, version: ModelVersion, items: Sequence[Item]
) -> dict[int, dict[str, float]]:
    """``version``'s probabilities on ``items`` by item id.

    A version that lives elsewhere cannot be re-run: its uploaded predictions, then the ones it
    sent with the records at ingest, are the evidence, and items it never scored are left out.
    """
    if version.kind != EXTERNAL:
        scores = EstimatorScorer(ctx, ctx.model(uow, version), version.id).score([i.payload for i in items])
        return {i.id: p for i, p in zip(items, scores.probabilities, strict=True)}
    ids = [i.id for i in items]
    found = uow.predictions.by_model(version.id, ids)
    uploaded = uow.model_predictions.for_model(version.id)
    found.update((i, uploaded[i]) for i in ids if i in uploaded)
    return {i: found[i] for i in ids if i in found}


class StoredScores:
    """A model that lives elsewhere as an estimator over fixed items: ``predict_proba`` hands
    back its stored probabilities for them (a retrain's gate compares a challenger with it)."""

    def __init__(self, labels: Sequence[str], rows: Sequence[Mapping[str, float] | None]) -> None:
        self.classes_ = np.asarray(labels)
        self.rows = list(rows)

    def predict_proba(self, X: Any) -> Any:
        if len(X) != len(self.rows) or any(r is None for r in self.rows):
            raise NotFitted("the champion lives elsewhere and has no stored prediction for some items")
        return np.asarray([[r[str(c)] for c in self.classes_] for r in self.rows if r is not None])


def champion_model(ctx: Context, uow: UnitOfWork, version: ModelVersion, items: Sequence[int]) -> Any:
    """``version`` as an estimator for scoring ``items`` (item ids, in order): loaded in process,
    or its stored predictions when it lives elsewhere."""
    if version.kind != EXTERNAL:
        return ctx.model(uow, version)
    found = scores_of(ctx, uow, version, uow.items.get_many(list(items)))
    return StoredScores(ctx.labels, [found.get(i) for i in items])
