"""A model handed in with ``use_model``: stored so every process can load it, and judged on the
frozen evaluation split by the same gate as a retrained challenger."""

from __future__ import annotations

from loopwright.domain import ModelVersion, Split
from loopwright.errors import Invalid
from loopwright.learning import GateResult, ProbabilisticModel, featurize
from loopwright.learning.artifact import persistable
from loopwright.loop.context import Context
from loopwright.loop.judging import predict_labels, verdict
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.snapshot import snapshot


def artifact(ctx: Context, model: ProbabilisticModel, persist: bool) -> bytes:
    """The stored artifact: empty for ``persist=False`` (this process only); otherwise one that
    loads with the project's ``model.trusted_types``, or :class:`Invalid` saying how to trust it."""
    return persistable(model, ctx.config.model.trusted_types) if persist else b""


def judge(ctx: Context, model: ProbabilisticModel, actor: str) -> tuple[GateResult, ModelVersion | None]:
    """The gate's verdict on ``model`` against the champion on the evaluation split of a fresh
    snapshot (against the majority-class baseline when there is no champion, or this process
    cannot load or run it), and the champion there was."""
    cfg = ctx.config
    with ctx.store.unit_of_work() as uow:
        labelled = uow.resolutions.count(ctx.project.id) > 0
    dataset = snapshot(ctx, actor) if labelled else None
    evals = [e for e in dataset.entries if e.split is Split.EVAL] if dataset else []
    with ctx.store.unit_of_work() as uow:
        payloads = {i.id: i.payload for i in uow.items.get_many([e.item_id for e in evals])}
        champion = uow.models.champion(ctx.project.id)
        champion_model = _loaded(ctx, uow, champion) if champion and evals else None
    X = featurize(cfg, [payloads[e.item_id] for e in evals]) if evals else None
    try:
        pred, conf = predict_labels(ctx, model, X) if evals else ([], [])
    except Exception as exc:  # a model that cannot score the evaluation items is refused
        raise Invalid(
            f"the model fails on the evaluation split ({type(exc).__name__}: {exc}); nothing was registered"
        ) from None
    return verdict(ctx, evals, X, pred, conf, champion_model), champion


def _loaded(ctx: Context, uow: UnitOfWork, champion: ModelVersion) -> ProbabilisticModel | None:
    """The champion's model, or None when this process cannot load it (judged on the baseline)."""
    try:
        return ctx.model(uow, champion)
    except Exception:  # no artifact here (another process's, a model living elsewhere), or unloadable
        return None
