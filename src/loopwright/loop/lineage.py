"""Lineage both ways: what a model version was trained on, and everything that touched an item.

Answers are plain JSON-friendly dicts, so the CLI, the REST API and tests read the same thing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from loopwright.domain import MachineLabel, ModelVersion, Split, Task
from loopwright.errors import NotFound
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork


def model_lineage(ctx: Context, version: int) -> dict[str, Any]:
    """The model version's dataset version and who labelled its training items, at which tier,
    from which source (``review`` or ``audit``)."""
    with ctx.store.unit_of_work() as uow:
        model = uow.models.get(ctx.project.id, version)
        out: dict[str, Any] = {
            "version": model.version,
            "status": model.status.value,
            "dataset_version": model.dataset_version_id,
            "config_hash": model.config_hash,
            "seed": model.seed,
            "gate": model.gate,
        }
        if model.dataset_version_id is None:  # an external model: trained elsewhere
            return out | {"train_items": 0, "eval_items": 0, "trained_on_erased_items": 0}
        dataset = uow.datasets.get(model.dataset_version_id)
        train = [e for e in dataset.entries if e.split is Split.TRAIN]
        by_annotator: Counter[str] = Counter()
        by_tier: Counter[int] = Counter()
        tiers: dict[int, Task] = {}
        for entry in train:
            for a in uow.annotations.for_item(entry.item_id):
                task = tiers.get(a.task_id) or tiers.setdefault(a.task_id, uow.tasks.get(a.task_id))
                by_annotator[a.annotator] += 1
                by_tier[task.tier] += 1
        return out | {
            "train_items": len(train),
            "eval_items": len(dataset.entries) - len(train),
            "label_counts": dict(sorted(Counter(e.label for e in train).items())),
            "labels_by_source": dict(sorted(Counter(e.source for e in train).items())),
            "annotations_by_annotator": dict(sorted(by_annotator.items())),
            "annotations_by_tier": {str(t): n for t, n in sorted(by_tier.items())},
            "trained_on_erased_items": uow.erasures.trained_on_erased(ctx.project.id).get(model.version, 0),
        }


def item_lineage(ctx: Context, external_id: str) -> dict[str, Any]:
    """An item's predictions, routing decisions, tasks, annotations, resolutions and feedback;
    the dataset versions that contain it and the model versions trained on those."""
    with ctx.store.unit_of_work() as uow:
        item = uow.items.by_external_ids(ctx.project.id, [external_id]).get(external_id)
        if item is None:
            raise NotFound(f"item {external_id!r} does not exist in project {ctx.project.name!r}")
        models = uow.models.list(ctx.project.id)
        versions = {m.id: m.version for m in models}
        refs = {m.id: m.ref for m in models}  # name@version for a model that lives elsewhere
        splits = {d: _split_of(uow, d, item.id) for d in uow.datasets.containing_item(item.id)}
        return {
            "item": {"id": item.id, "external_id": item.external_id, "content_hash": item.content_hash}
            | {k: v for k, v in item.metadata.items() if k in ("preprocess", "duplicate_of", "duplicate")},
            "predictions": [
                {
                    "id": p.id,
                    "model_version": versions.get(p.model_version_id) if p.model_version_id else None,
                    "model": refs.get(p.model_version_id) if p.model_version_id else None,
                    "label": p.label,
                    "confidence": p.confidence,
                    "error": p.error,
                }
                for p in uow.predictions.for_item(item.id)
            ],
            "decisions": [
                {"route": d.route.value, "tier": d.tier, "reason": d.reason, "audit": d.audit}
                for d in uow.decisions.for_item(item.id)
            ],
            "tasks": [
                {"id": t.id, "tier": t.tier, "status": t.status.value, "reason": t.reason}
                for t in uow.tasks.for_item(item.id)
            ],
            "annotations": [
                {
                    "task_id": a.task_id,
                    "annotator": a.annotator,
                    "label": a.label,
                    "unsure": a.unsure,
                    "suggested": a.suggested,  # the model's label shown with the task
                    "machine": False,
                }
                for a in uow.annotations.for_item(item.id)
            ]
            + [_machine(m) for m in uow.machine_labels.for_item(item.id)],
            "resolutions": [
                {"id": r.id, "label": r.label, "method": r.method, "agreement": r.agreement}
                for r in uow.resolutions.for_item(item.id)
            ],
            "feedback": [
                {"id": f.id, "kind": f.kind.value, "correction": f.correction, "actor": f.actor}
                for f in uow.feedback.for_item(item.id)
            ],
            "dataset_versions": [{"id": d, "split": split} for d, split in splits.items()],
            "trained_models": _models_by_split(models, splits, Split.TRAIN.value),
            "evaluated_models": _models_by_split(models, splits, Split.EVAL.value),
        }


def _machine(m: MachineLabel) -> dict[str, Any]:
    """A model annotator's answer, marked as a machine label (it never counted as a human one)."""
    return {
        "task_id": m.task_id,
        "annotator": m.annotator,
        "label": m.label,
        "unsure": False,
        "suggested": None,
        "machine": True,
        "kind": m.kind,
        "model": m.model,
        "status": m.status,
        "detail": m.detail,
    }


def _split_of(uow: UnitOfWork, dataset_id: str, item_id: int) -> str:
    return next(e.split.value for e in uow.datasets.get(dataset_id).entries if e.item_id == item_id)


def _models_by_split(models: list[ModelVersion], splits: dict[str, str], split: str) -> list[int]:
    """Versions whose dataset holds the item in ``split`` (trained on it, or only scored on it)."""
    return [m.version for m in models if m.dataset_version_id and splits.get(m.dataset_version_id) == split]
