"""``Loop``: one project's human-in-the-loop cycle behind one object, and ``Workspace`` for many."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwright.config import ProjectConfig
from loopwright.domain import (
    Annotation,
    Certification,
    DatasetVersion,
    Event,
    Feedback,
    Lease,
    ModelVersion,
    Project,
    Resolution,
    Task,
)
from loopwright.errors import Invalid, NotFitted, TooFewLabels
from loopwright.loop.context import Clock, Context, ModelCache, ScorerFactory, utc_now
from loopwright.loop.ports import ChatClient, Store

if TYPE_CHECKING:  # the use cases load in the methods that run them: `loopwright status` stays light
    import numpy as np

    from loopwright.learning.explain import Explanation
    from loopwright.loop import (
        backlog,
        gold,
        media,
        monitoring,
        review,
        status,
        workspace_view,
    )
    from loopwright.loop import dashboard as _dashboard
    from loopwright.loop import datasets as _datasets
    from loopwright.loop import erasure as _erasure
    from loopwright.loop import external as _external
    from loopwright.loop import registry as _registry
    from loopwright.loop import retrain as _retrain
    from loopwright.loop.audit_gold import AuditGold
    from loopwright.loop.ingest import IngestReport


class Loop:
    """The use cases of one project. Every method is one transaction (or a few, for training)."""

    def __init__(
        self,
        store: Store,
        project: Project,
        clock: Clock = utc_now,
        scorers: Mapping[str, ScorerFactory] | None = None,
        chat: ChatClient | None = None,
        models: ModelCache | None = None,
    ) -> None:
        config = ProjectConfig.from_dict(project.config)
        self._ctx = Context(
            store, project, config, clock, cache=models, scorers=dict(scorers or {}), chat=chat
        )

    @property
    def config(self) -> ProjectConfig:
        return self._ctx.config

    @property
    def project(self) -> Project:
        return self._ctx.project

    def ingest(self, records: Iterable[Mapping[str, Any]], actor: str = "system") -> IngestReport:
        """Items in: ``{"external_id", "payload", "metadata"?}`` each; predicted, routed, queued."""
        from loopwright.loop import model_annotators
        from loopwright.loop.ingest import ingest

        report = ingest(self._ctx, records, actor)
        model_annotators.annotate(self._ctx, report, actor)  # after the items are stored
        return report

    def import_rows(self, batches: Any, on_reject: Any, on_batch: Any = None, actor: str = "system") -> Any:
        """Rows read from a file (:mod:`loopwright.readers`) in: each bad row to ``on_reject``,
        the rest ingested; see :func:`loopwright.loop.file_import.import_rows`."""
        from loopwright.loop.file_import import import_rows

        return import_rows(self._ctx, batches, on_reject, on_batch, actor, ingest_fn=self.ingest)

    def import_history(self, items: Sequence[Any], source: str, actor: str = "system") -> Any:
        """A labelled history made elsewhere (``LabelledItem`` each): ingested, its annotations
        submitted as its annotators; see :mod:`loopwright.loop.history`."""
        from loopwright.loop.history import import_history

        return import_history(self._ctx, items, self.ingest, source, actor)

    def export_history(self) -> Any:
        """Every item with its annotations, resolution and prediction (``ItemHistory`` each)."""
        from loopwright.loop.history import export_history

        return export_history(self._ctx)

    def predict(self, payloads: Sequence[dict[str, Any]]) -> np.ndarray:
        """Champion probabilities, columns in ``config.labels`` order. Nothing is stored."""
        from loopwright.learning import featurize, predict_proba_by_label
        from loopwright.learning.estimators import check_payload

        ctx = self._ctx
        if errors := [(f"[{i}]", e) for i, p in enumerate(payloads) if (e := check_payload(ctx.config, p))]:
            raise Invalid(f"{len(errors)} payload(s) cannot be scored; nothing was predicted", errors)
        with ctx.store.unit_of_work() as uow:
            champion = uow.models.champion(ctx.project.id)
            if champion is None:
                raise NotFitted(f"project {ctx.project.name!r} has no champion model yet")
            if champion.kind == "external":
                raise NotFitted(f"champion {champion.ref} lives elsewhere: loopwright cannot run it")
            model = ctx.model(uow, champion)
        return predict_proba_by_label(model, featurize(ctx.config, payloads), ctx.labels)

    def next_task(
        self,
        annotator: str,
        tiers: Sequence[int] | None = None,
        session_id: str | None = None,
        score_now: bool = False,
    ) -> review.Assignment | None:
        """Lease a task; ``score_now`` also scores its item with the champion (same transaction)."""
        from loopwright.loop import review

        return review.next_task(self._ctx, annotator, tiers, session_id, score_now)

    def submit(
        self, lease_id: int, annotator: str, label: str, unsure: bool = False, comment: str | None = None
    ) -> review.SubmitResult:
        """Annotate a leased task; ``comment`` (e.g. a reviewer's reason) goes into its event."""
        from loopwright.loop import review

        return review.submit(self._ctx, lease_id, annotator, label, unsure, comment)

    def extend(self, lease_id: int, annotator: str, seconds: int | None = None) -> Lease:
        from loopwright.loop import review

        return review.extend(self._ctx, lease_id, annotator, seconds)

    def release(self, lease_id: int, annotator: str) -> Lease:
        from loopwright.loop import review

        return review.release(self._ctx, lease_id, annotator)

    def skip(self, lease_id: int, annotator: str) -> Lease:
        """Give a task back; it is not offered to ``annotator`` again."""
        from loopwright.loop import review

        return review.skip(self._ctx, lease_id, annotator)

    def add_gold(
        self, records: Iterable[Mapping[str, Any]], tiers: Sequence[int] | None = None, actor: str = "system"
    ) -> list[Task]:
        """Gold items ``{"external_id", "payload", "label", "metadata"?}``: known answers for scoring."""
        from loopwright.loop import gold

        return gold.add_gold(self._ctx, records, tiers, actor)

    def gold_from_audits(
        self, tiers: Sequence[int] | None = None, dry_run: bool = False, actor: str = "system"
    ) -> AuditGold:
        """Make gold of the audited items the champion gets wrong (:mod:`.audit_gold`)."""
        from loopwright.loop import audit_gold

        return audit_gold.from_audits(self._ctx, tiers, dry_run, actor)

    def annotator_stats(self, annotator: str, session_id: str | None = None) -> gold.AnnotatorStats:
        from loopwright.loop import gold

        return gold.annotator_stats(self._ctx, annotator, session_id)

    def image(
        self, item_id: int, size: int | None = None, cache_dir: Path | None = None, etag: str | None = None
    ) -> media.Picture:
        """The image an item references, or its thumbnail (:func:`loopwright.loop.media.item_image`)."""
        from loopwright.loop import media

        return media.item_image(self._ctx, item_id, size, cache_dir, etag)

    def explain(self, item_id: int, k: int = 10) -> Explanation:
        """The features or tokens that pushed the champion's prediction for one item."""
        from loopwright.loop import workspace_view

        return workspace_view.explain_item(self._ctx, item_id, k)

    def item_tasks(self, item_id: int) -> list[Task]:
        """Every task on one of this project's items, any status."""
        from loopwright.loop import workspace_view

        return workspace_view.item_tasks(self._ctx, item_id)

    def task_context(self, task_id: int) -> workspace_view.TaskContext:
        """For reviewers: every annotation on a task's item with skills, suggestion and posterior."""
        from loopwright.loop import workspace_view

        return workspace_view.task_context(self._ctx, task_id)

    def snapshot(self, actor: str = "system") -> DatasetVersion:
        from loopwright.loop import snapshot

        return snapshot.snapshot(self._ctx, actor)

    def retrain_due(self) -> bool:
        from loopwright.loop import retrain as _retrain

        return _retrain.retrain_due(self._ctx)

    def retrain(
        self,
        actor: str = "system",
        dataset_id: str | None = None,
        trainer: _retrain.Trainer | None = None,
    ) -> _retrain.RetrainOutcome:
        """Train a challenger (with ``trainer(config, seed)`` or the default pipeline), gate it
        against the champion and promote it if it passes; a failed gate is recorded, not raised."""
        from loopwright.loop import retrain as _retrain

        return _retrain.retrain(self._ctx, actor, dataset_id, trainer)

    def maybe_retrain(self, actor: str = "system") -> _retrain.RetrainOutcome | None:
        """Retrain when the policy says enough new labels arrived; ``None`` otherwise. A project
        whose model lives elsewhere (``model.kind: external``) is never trained: a due retrain
        emits one ``model.retrain_due`` event per trigger for its pipeline, and None is returned.
        None too while the training split holds fewer than ``retrain.min_labels`` labels."""
        from loopwright.loop import retrain as _retrain

        if self.config.model.lives_elsewhere:  # external, or http (a served model)
            _retrain.signal_due(self._ctx, actor)
            return None
        if not self.retrain_due():
            return None
        try:
            return self.retrain(actor)
        except TooFewLabels:  # due by resolved labels, but audits and the eval share do not train
            return None

    # -- models that live elsewhere -----------------------------------------------------------

    def register_model(
        self,
        name: str,
        version: str,
        artifact_uri: str | None = None,
        dataset_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        actor: str = "system",
    ) -> ModelVersion:
        """Register ``name@version``, trained by your pipeline on ``dataset_version``, as a
        candidate: upload its eval predictions, then :meth:`gate` it."""
        from loopwright.loop import external as _external

        return _external.register(
            self._ctx, name, version, artifact_uri, dataset_version, metadata, endpoint, actor
        )

    def upload_predictions(
        self, version: int | str, predictions: Mapping[str, Mapping[str, float]], actor: str = "system"
    ) -> dict[str, Any]:
        """A registered version's probabilities ``{external_id: {label: p}}`` on the evaluation
        split of the dataset it was trained on (all of it, or nothing is stored)."""
        from loopwright.loop import external as _external

        return _external.upload_predictions(self._ctx, version, predictions, actor)

    def gate(
        self,
        version: int | str,
        actor: str = "system",
        deploy_dir: Path | None = None,
        envs: Sequence[str] = (),
    ) -> _external.GateOutcome:
        """The paired gate of a registered version against the champion on the eval split of the
        dataset it was trained on; promoted if it passes, and then, with ``deploy_dir``, its
        manifests (naming its artifact URI) written for ``dev`` and ``envs``."""
        from loopwright.loop import external as _external
        from loopwright.loop import registry as _registry

        outcome = _external.gate_version(self._ctx, version, actor)
        if outcome.promoted and deploy_dir is not None:
            done = _registry.deploy(self._ctx, Path(deploy_dir), envs, None, actor)
            outcome = dataclasses.replace(outcome, manifests=done.manifests)
        return outcome

    def eval_split(self, ref: str = "latest", with_labels: bool = False) -> dict[str, Any]:
        """The frozen evaluation split of a dataset version for your pipeline (ids, payloads)."""
        from loopwright.loop import external as _external

        return _external.eval_split(self._ctx, ref, with_labels)

    def promote(self, version: int, actor: str = "system") -> ModelVersion:
        from loopwright.loop import retrain as _retrain

        return _retrain.promote(self._ctx, version, actor)

    def use_model(
        self, model: Any, actor: str = "system", *, force: bool = False, persist: bool = True
    ) -> ModelVersion:
        """Serve your own estimator (``predict_proba`` + ``classes_``) or callable as champion,
        if it passes the gate (``force=True``: without it). Types of your own must be trusted in
        ``model.trusted_types``; ``persist=False`` serves it in this process only."""
        from loopwright.loop import retrain as _retrain

        return _retrain.use_model(self._ctx, model, actor, force=force, persist=persist)

    def feedback(
        self,
        prediction_id: int,
        kind: str,
        idempotency_key: str,
        correction: str | None = None,
        comment: str | None = None,
        actor: str = "end-user",
    ) -> Feedback:
        """End-user feedback (``thumbs_up``, ``thumbs_down``, ``report``, ``correction``); all but
        a thumbs-up open a priority review task. Idempotent on ``idempotency_key``."""
        from loopwright.loop.feedback import give_feedback

        return give_feedback(self._ctx, prediction_id, kind, idempotency_key, correction, comment, actor)

    def erase(self, external_id: str, actor: str = "system", reason: str | None = None) -> _erasure.Tombstone:
        """Erase an item (GDPR Art. 17): its content and history go, a tombstone and an
        ``item.erased`` event stay; dataset versions and models that held it are marked."""
        from loopwright.loop import erasure as _erasure

        return _erasure.erase(self._ctx, external_id, actor, reason)

    def erasure_marks(self) -> _erasure.ErasureMarks:
        """Erased entries per dataset version; erased training items per model version."""
        from loopwright.loop import erasure as _erasure

        return _erasure.marks(self._ctx)

    def erasures(self) -> list[_erasure.Tombstone]:
        from loopwright.loop import erasure as _erasure

        return _erasure.tombstones(self._ctx)

    def was_erased(self, external_id: str) -> bool:
        from loopwright.loop import erasure as _erasure

        return _erasure.was_erased(self._ctx, external_id)

    def lineage_of_model(self, version: int) -> dict[str, Any]:
        """Dataset version, label counts by annotator, tier and source of a model version."""
        from loopwright.loop import lineage

        return lineage.model_lineage(self._ctx, version)

    def lineage_of_item(self, external_id: str) -> dict[str, Any]:
        """Predictions, tasks, annotations, resolutions, feedback, datasets and models of an item."""
        from loopwright.loop import lineage

        return lineage.item_lineage(self._ctx, external_id)

    def check_drift(self, actor: str = "system") -> monitoring.DriftCheck:
        """Compare the newest ``drift.window`` items with the window before; on drift, sample
        the window into review, re-certify from fresh audits and make retraining due."""
        from loopwright.loop import monitoring

        return monitoring.check_drift(self._ctx, actor)

    def status(self) -> status.ProjectStatus:
        from loopwright.loop import status

        return status.status(self._ctx)

    def dashboard(self) -> _dashboard.Dashboard:
        """The lead's dashboard: queues, throughput, automation, threshold, agreement, skills,
        model versions with gate evidence and drift checks over time."""
        from loopwright.loop import dashboard as _dashboard

        return _dashboard.dashboard(self._ctx)

    def certify(self, actor: str = "system") -> Certification | None:
        """The champion's auto-accept certificate, certified anew if the champion or the audit
        evidence changed (ingest does this itself; call it after drift or to look)."""
        from loopwright.loop import certification

        with self._ctx.store.unit_of_work() as uow:
            return certification.current(self._ctx, uow, actor)

    def accept_backlog(self, actor: str = "system") -> backlog.BacklogReport:
        """Auto-accept the untouched review backlog the champion's certified threshold covers
        (items sent to review for want of a certificate since the last drift)."""
        from loopwright.loop import backlog

        return backlog.accept(self._ctx, actor)

    def models(self) -> list[ModelVersion]:
        with self._ctx.store.unit_of_work() as uow:
            return uow.models.list(self._ctx.project.id)

    def events(self, after_id: int = 0, limit: int = 100) -> list[Event]:
        with self._ctx.store.unit_of_work() as uow:
            return uow.events.list(self._ctx.project.id, after_id, limit)

    def annotations(self, after_id: int = 0, limit: int = 100) -> list[Annotation]:
        """The project's annotations with id > ``after_id``, oldest first (a page of ``limit``)."""
        with self._ctx.store.unit_of_work() as uow:
            return uow.annotations.page(self._ctx.project.id, after_id, limit)

    def resolutions(self, after_id: int = 0, limit: int = 100) -> list[Resolution]:
        """The project's resolutions with id > ``after_id``, oldest first (a page of ``limit``)."""
        with self._ctx.store.unit_of_work() as uow:
            return uow.resolutions.page(self._ctx.project.id, after_id, limit)

    def last_drift_check(self) -> Event | None:
        """The newest ``drift.checked`` or ``drift.detected`` event, if drift was ever checked."""
        with self._ctx.store.unit_of_work() as uow:
            found = [uow.events.latest(self._ctx.project.id, a) for a in ("drift.checked", "drift.detected")]
        return max((e for e in found if e is not None), key=lambda e: e.id, default=None)

    # -- dataset versions and the model registry -------------------------------------------

    def datasets(self) -> list[DatasetVersion]:
        """The project's dataset versions without entries, oldest first."""
        with self._ctx.store.unit_of_work() as uow:
            return uow.datasets.list(self._ctx.project.id)

    def dataset(self, ref: str) -> DatasetVersion:
        """A version with entries by full id, unique prefix (≥ 6 characters) or ``latest``."""
        from loopwright.loop import datasets as _datasets

        with self._ctx.store.unit_of_work() as uow:
            return _datasets.resolve(uow, self._ctx.project.id, ref)

    def diff_datasets(self, a: str | None, b: str) -> _datasets.DatasetDiff:
        """Items added, relabelled and removed from version ``a`` (None: ``b``'s parent) to ``b``."""
        from loopwright.loop import datasets as _datasets

        return _datasets.diff(self._ctx, a, b)

    def export_dataset(self, ref: str, fmt: str, out: Path) -> Path:
        """Write a version as ``jsonl``, ``csv``, ``parquet`` or a ``dvc`` directory (spans:
        ``offsets``, ``conll``; boxes: ``coco``, ``yolo`` directories); the path written."""
        from loopwright.loop import datasets as _datasets

        return _datasets.export(self._ctx, ref, fmt, out)

    def model(self, ref: int | str) -> ModelVersion:
        """A model version by number (``3``, ``v3``) or alias (``champion``, ``previous``)."""
        from loopwright.loop import registry as _registry

        return _registry.get(self._ctx, ref)

    def model_aliases(self) -> _registry.Aliases:
        from loopwright.loop import registry as _registry

        return _registry.aliases(self._ctx)

    def deploy(
        self,
        deploy_dir: Path,
        envs: Sequence[str] = (),
        version: int | str | None = None,
        actor: str = "system",
    ) -> _registry.Deployment:
        """Promote ``version`` (None: keep the champion) and write its deployment manifests
        ``<deploy_dir>/<env>/<project>.json`` for ``dev`` and ``envs`` (staging, prod)."""
        from loopwright.loop import registry as _registry

        return _registry.deploy(self._ctx, Path(deploy_dir), envs, version, actor)

    def rollback(
        self, actor: str = "system", deploy_dir: Path | None = None, envs: Sequence[str] = ()
    ) -> _registry.Deployment:
        """Make the ``previous`` model version champion again and retire the current one."""
        from loopwright.loop import registry as _registry

        return _registry.rollback(self._ctx, actor, None if deploy_dir is None else Path(deploy_dir), envs)


class Workspace:
    """All projects in one store."""

    def __init__(
        self,
        store: Store,
        clock: Clock = utc_now,
        scorers: Mapping[str, ScorerFactory] | None = None,
        chat: ChatClient | None = None,
    ) -> None:
        """``scorers``: how to score a project whose ``model.kind`` lives at the edge, by kind
        (``loopwright.connect`` installs ``http``: a served model). ``chat``: the client model
        annotators of kind chat call (``loopwright.connect`` installs one)."""
        self.store = store
        self.clock = clock
        self.scorers = dict(scorers or {})
        self.chat = chat
        self.models = ModelCache()  # loaded estimators, shared by this workspace's Loops (issue 15)

    def create_project(self, config: ProjectConfig | Mapping[str, Any] | str | Path) -> Loop:
        """Create a project from a config object, a mapping, or a YAML/TOML file path."""
        if isinstance(config, str | Path):
            config = ProjectConfig.load(config)
        elif not isinstance(config, ProjectConfig):
            config = ProjectConfig.from_dict(dict(config))
        with self.store.unit_of_work() as uow:
            project = uow.projects.add(config.name, config.model_dump(mode="json"))
            uow.events.add(project.id, "system", "project.created", "project", project.name, {})
        return Loop(self.store, project, self.clock, self.scorers, self.chat, self.models)

    def project(self, name: str) -> Loop:
        with self.store.unit_of_work() as uow:
            return Loop(self.store, uow.projects.get(name), self.clock, self.scorers, self.chat, self.models)

    def projects(self) -> list[Project]:
        with self.store.unit_of_work() as uow:
            return uow.projects.list()

    def close(self) -> None:
        for factory in self.scorers.values():
            if callable(close := getattr(factory, "close", None)):
                close()  # pooled connections of served-model clients
        self.store.close()
