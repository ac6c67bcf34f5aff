"""Ports: what the use cases need from the outside world. ``store/sql`` implements the store;
``loop/scoring.py`` (and ``integrations/serving.py``) implement :class:`Scorer`.

A :class:`UnitOfWork` is one transaction: everything done through its repositories commits
together when the ``with`` block ends cleanly, and rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from loopwright.domain import (
    Annotation,
    Certification,
    DatasetVersion,
    Decision,
    Event,
    Feedback,
    GoldAnswer,
    Item,
    Lease,
    LeaseStatus,
    MachineLabel,
    ModelStatus,
    ModelVersion,
    Prediction,
    Project,
    Resolution,
    Route,
    Task,
    TaskStatus,
)

if TYPE_CHECKING:
    from loopwright.loop.erasure import Tombstone


# -- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scores:
    """One row per payload: probabilities keyed by label, and the id of the model version that
    produced it (rows of one batch may come from different versions: external predictions)."""

    probabilities: tuple[dict[str, float], ...]
    model_version_ids: tuple[int | None, ...]

    @classmethod
    def uniform(cls, model_version_id: int | None, probabilities: Sequence[Mapping[str, float]]) -> Scores:
        """Every row from one model version."""
        rows = tuple(dict(p) for p in probabilities)
        return cls(rows, (model_version_id,) * len(rows))


class Scorer(Protocol):
    """Payloads in, probabilities keyed by label out, with the model version that produced them.

    Adapters: the in-process estimator and "external" (the prediction came with the record) in
    :mod:`loopwright.loop.scoring`; a served model over HTTP in ``integrations/serving.py``.
    Raise :class:`~loopwright.errors.ModelUnavailable` when the model cannot answer now (items
    go to review with reason ``model_unavailable``); any other exception is a ``model_error``.
    Routing, certification, the gate and lineage see only this port.
    """

    def score(self, payloads: Sequence[Mapping[str, Any]]) -> Scores: ...


# -- the store -------------------------------------------------------------------------------


class ProjectRepo(Protocol):
    def add(self, name: str, config: dict[str, Any]) -> Project: ...
    def get(self, name: str) -> Project: ...  # NotFound
    def get_by_id(self, project_id: int) -> Project: ...  # NotFound
    def list(self) -> list[Project]: ...
    def set_config(self, project_id: int, config: dict[str, Any]) -> None: ...


class ItemRepo(Protocol):
    def add(
        self,
        project_id: int,
        external_id: str,
        content_hash: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> Item: ...
    def add_many(
        self, project_id: int, rows: Sequence[tuple[str, str, dict[str, Any], dict[str, Any]]]
    ) -> list[int]: ...  # (external_id, content_hash, payload, metadata) each; ids in order; Conflict
    def get(self, item_id: int) -> Item: ...  # NotFound
    def get_many(self, item_ids: Sequence[int]) -> list[Item]: ...  # in the order asked
    def by_external_ids(self, project_id: int, external_ids: Sequence[str]) -> dict[str, Item]: ...
    def count(self, project_id: int) -> int: ...
    def recent(self, project_id: int, limit: int, before: int | None = None) -> list[Item]:
        """The newest ``limit`` items (with id < ``before``, when given), oldest first."""
        ...


class PredictionRepo(Protocol):
    def add(
        self,
        item_id: int,
        model_version_id: int | None,
        probabilities: dict[str, float],
        label: str | None,
        confidence: float | None,
        error: str | None,
    ) -> Prediction: ...
    def add_many(
        self, rows: Sequence[tuple[int, int | None, dict[str, float], str | None, float | None, str | None]]
    ) -> list[int]: ...  # the add() arguments per row; ids in order
    def get(self, prediction_id: int) -> Prediction: ...  # NotFound
    def for_item(self, item_id: int) -> list[Prediction]: ...  # oldest first
    def latest_labels(self, project_id: int) -> dict[int, str]: ...  # item id → newest predicted label
    def by_model(self, model_version_id: int, item_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """The newest probabilities ``model_version_id`` gave each of ``item_ids`` at ingest."""
        ...


class DecisionRepo(Protocol):
    def add(
        self,
        item_id: int,
        prediction_id: int,
        route: Route,
        tier: int | None,
        reason: str,
        audit: bool,
        threshold: float | None,
    ) -> Decision: ...
    def add_many(
        self, rows: Sequence[tuple[int, int, Route, int | None, str, bool, float | None]]
    ) -> list[int]: ...  # the add() arguments per row; ids in order
    def for_item(self, item_id: int) -> list[Decision]: ...  # oldest first
    def auto_accepted(self, project_id: int) -> list[tuple[Decision, Prediction]]: ...
    def count_by_route(self, project_id: int) -> dict[str, int]: ...
    def count_items(self, project_id: int, since_item_id: int = 0, audited: bool = False) -> int:
        """Items with id ≥ ``since_item_id`` that have a decision (an audit draw when ``audited``)."""
        ...

    def timeline(self, project_id: int) -> list[tuple[datetime, str, str]]: ...  # (created_at, route, reason)
    def audited_items(self, project_id: int) -> list[int]: ...  # drawn into the audit, oldest first


class FeedbackRepo(Protocol):
    def add(self, values: Mapping[str, Any]) -> Feedback: ...  # Conflict on a reused key
    def by_key(self, project_id: int, idempotency_key: str) -> Feedback | None: ...
    def for_item(self, item_id: int) -> list[Feedback]: ...
    def corrections(self, project_id: int) -> list[tuple[int, str]]: ...  # (item, label)


class CertificationRepo(Protocol):
    def add(self, project_id: int, model_version_id: int, values: Mapping[str, Any]) -> Certification: ...
    def latest(self, project_id: int) -> Certification | None: ...
    def evidence_version(self, project_id: int) -> int:
        """The version of the project's audit evidence: it moves with every commit that answers
        or resolves an audited item or calls :meth:`evidence_changed`."""
        ...

    def evidence_changed(self, project_id: int) -> None:
        """This transaction changes what the project's certificates count (a drift alarm, an erasure)."""
        ...

    def list(self, project_id: int) -> list[Certification]: ...  # oldest first


class TaskRepo(Protocol):
    def add(
        self,
        project_id: int,
        item_id: int,
        decision_id: int | None,
        tier: int,
        priority: float,
        reason: str,
        required_annotations: int,
        parent_task_id: int | None = None,
    ) -> Task: ...
    def add_many(self, project_id: int, rows: Sequence[tuple[int, int | None, int, float, str, int]]) -> None:
        """Open tasks ``(item_id, decision_id, tier, priority, reason, required_annotations)``."""
        ...

    def get(self, task_id: int) -> Task: ...  # NotFound
    def lock(self, task_id: int) -> Task:
        """Like ``get``, holding a row lock until commit, so concurrent submissions to one task
        are counted one after another."""
        ...

    def lock_item(self, item_id: int) -> list[Task]: ...  # lock the item and its tasks; the tasks

    def claim(
        self,
        project_id: int,
        annotator: str,
        tiers: Sequence[int],
        now: datetime,
        expires_at: datetime,
        session_id: str | None = None,
        avoid_label: str | None = None,
        avoid_source: tuple[str, str] | None = None,
    ) -> tuple[Task, Lease] | None:
        """Lease the best open task in ``tiers`` that still needs annotations and whose item
        ``annotator`` has neither labelled (at any tier) nor holds a live lease on, and that
        they did not skip. Order: suggested label other than ``avoid_label`` first (when
        given), then highest priority, then most annotations already, then oldest.

        Live (unexpired, active) leases count against the free slots, so a task never has
        more live leases than annotations still needed. Must be safe under concurrency.
        """
        ...

    def claim_gold(
        self,
        project_id: int,
        annotator: str,
        tiers: Sequence[int],
        now: datetime,
        expires_at: datetime,
        session_id: str | None = None,
        prefer: int | None = None,
    ) -> tuple[Task, Lease] | None:
        """Lease a gold task in ``tiers`` whose item ``annotator`` has not seen: the task
        ``prefer`` (an id) if it still is one, else the oldest."""
        ...

    def gold_unseen(
        self, project_id: int, annotator: str, tiers: Sequence[int], now: datetime, limit: int
    ) -> list[Task]:
        """The first ``limit`` gold tasks, oldest first, that :meth:`claim_gold` could lease."""
        ...

    def gold_items(self, project_id: int, limit: int) -> list[tuple[int, str]]:
        """The newest ``limit`` gold items and their known answers (one row per item)."""
        ...

    def add_gold(self, project_id: int, item_id: int, tier: int, label: str) -> Task: ...

    def set_status(self, task_id: int, status: TaskStatus, closed_at: datetime | None) -> Task: ...
    def set_required(self, task_id: int, required_annotations: int) -> None: ...
    def backlog(
        self, project_id: int, reasons: Sequence[str], since_item_id: int, now: datetime, limit: int
    ) -> list[Task]:
        """Open tasks opened for one of ``reasons``, on items with id ≥ ``since_item_id``, that
        nobody has answered or holds a live lease on, that no lower tier sent up and whose item
        is not in the audit sample (an audited item with no model keeps reason ``no_model``); in
        item order, at most ``limit``."""
        ...

    def accept(self, task_ids: Sequence[int], now: datetime) -> list[int]:
        """Close those of ``task_ids`` that are still untouched (as :meth:`backlog` reads them)
        as accepted; the ids closed."""
        ...

    def for_item(self, item_id: int) -> list[Task]: ...  # oldest first
    def count_open_by_tier(self, project_id: int) -> dict[int, int]: ...
    def count_open_answered(self, project_id: int, reasons: Sequence[str]) -> int:
        """Open tasks of these reasons that already hold an answer: they wait for another."""
        ...

    def timeline(self, project_id: int) -> list[tuple[int, datetime, datetime | None]]:
        """``(tier, created_at, closed_at)`` of every task but gold ones, oldest first."""
        ...


class LeaseRepo(Protocol):
    def get(self, lease_id: int) -> Lease: ...  # NotFound
    def set_status(self, lease_id: int, status: LeaseStatus) -> Lease: ...
    def extend(self, lease_id: int, expires_at: datetime) -> Lease: ...
    def suggest(self, lease_id: int, label: str) -> None: ...  # the model's label offered with it
    def add_submitted(self, task_id: int, annotator: str, at: datetime) -> Lease:
        """A lease born submitted: the record of an annotation made elsewhere (an import)."""
        ...

    def count_submitted(self, annotator: str, session_id: str) -> int: ...
    def expire_stale(self, project_id: int, now: datetime) -> int:
        """Mark active leases past their expiry as expired; return how many."""
        ...

    def sweep(self, now: datetime, min_interval: float = 5.0, limit: int = 1000) -> int:
        """Expire stale leases of every project, at most once per ``min_interval`` seconds."""
        ...


class AnnotationRepo(Protocol):
    def add(
        self,
        task_id: int,
        item_id: int,
        lease_id: int,
        annotator: str,
        label: str,
        unsure: bool,
        at: datetime | None = None,
        suggested: str | None = None,  # the model's label shown with the task
    ) -> Annotation: ...  # Conflict if (task, annotator) already annotated
    def for_task(self, task_id: int) -> list[Annotation]: ...  # oldest first
    def for_item(self, item_id: int) -> list[Annotation]: ...
    def first_labels(self, item_ids: Sequence[int]) -> dict[int, str]: ...  # oldest sure answer's label
    def votes(self, project_id: int) -> list[tuple[int, str, str]]: ...  # (item, annotator, label)
    def count(self, project_id: int) -> int: ...
    def page(self, project_id: int, after_id: int, limit: int) -> list[Annotation]: ...  # by id
    def counts_by_annotator(self, item_ids: Sequence[int]) -> dict[str, int]: ...
    def recent(self, project_id: int, annotator: str, limit: int) -> list[Annotation]: ...  # newest first
    def work_times(self, project_id: int, annotator: str, since: datetime) -> list[datetime]:
        """When ``annotator`` submitted annotations or gold answers after ``since``, oldest first."""
        ...

    def count_work(self, project_id: int, annotator: str, since: datetime) -> int: ...  # len(work_times)


class GoldAnswerRepo(Protocol):
    def add(
        self,
        task_id: int,
        item_id: int,
        lease_id: int,
        annotator: str,
        tier: int,
        label: str,
        correct: bool,
        at: datetime,
    ) -> GoldAnswer: ...  # Conflict if (task, annotator) already answered
    def for_project(self, project_id: int, annotator: str | None = None) -> list[GoldAnswer]: ...


class AnnotatorStatsRepo(Protocol):  # 0017: (work, gold fold) per (project, annotator)
    def get(self, project_id: int, annotator: str, lock: bool = False) -> tuple[int, Any] | None: ...
    def put(self, project_id: int, annotator: str, work: int, gold: Any) -> None: ...
    def add_work(self, task_id: int, annotator: str) -> None: ...
    def forget(self, project_id: int) -> None: ...


class MachineLabelRepo(Protocol):
    """Model annotators' answers (0011): kept apart from human annotations, so they never count
    toward a task's required annotations."""

    def add(self, values: Mapping[str, Any]) -> MachineLabel: ...  # the MachineLabel fields but id
    def for_item(self, item_id: int) -> list[MachineLabel]: ...  # oldest first
    def votes(self, project_id: int) -> list[tuple[int, str, str]]:
        """``(item, annotator, label)``: each annotator's newest label per item, by item."""
        ...


class ResolutionRepo(Protocol):
    def add(
        self,
        item_id: int,
        task_id: int,
        label: str,
        method: str,
        agreement: float,
        n_annotations: int,
    ) -> Resolution: ...
    def latest_by_item(self, project_id: int) -> dict[int, Resolution]: ...
    def recent_by_item(self, project_id: int, limit: int) -> dict[int, Resolution]:
        """The newest resolution per item among the project's ``limit`` newest, oldest first."""
        ...

    def for_item(self, item_id: int) -> list[Resolution]: ...
    def count(self, project_id: int) -> int: ...
    def page(self, project_id: int, after_id: int, limit: int) -> list[Resolution]: ...  # by id


class DatasetRepo(Protocol):
    def add(self, version: DatasetVersion) -> DatasetVersion:
        """Store a version with its entries; adding an existing id returns the stored one."""
        ...

    def get(self, version_id: str) -> DatasetVersion: ...  # with entries; NotFound
    def latest(self, project_id: int) -> DatasetVersion | None: ...  # with entries
    def containing_item(self, item_id: int) -> list[str]: ...  # version ids
    def ids_with_prefix(self, project_id: int, prefix: str) -> list[str]: ...  # sorted; hex prefix
    def list(self, project_id: int) -> list[DatasetVersion]: ...  # without entries, oldest first


class ModelRepo(Protocol):
    def add(
        self,
        project_id: int,
        status: ModelStatus,
        dataset_version_id: str | None,
        config_hash: str,
        seed: int,
        metrics: dict[str, Any],
        artifact: bytes,
    ) -> ModelVersion: ...  # numbered 1, 2, … per project
    def get(self, project_id: int, version: int) -> ModelVersion: ...  # NotFound
    def get_by_id(self, model_version_id: int) -> ModelVersion: ...  # NotFound
    def champion(self, project_id: int) -> ModelVersion | None: ...
    def artifact(self, model_version_id: int) -> bytes: ...
    def set_status(
        self, model_version_id: int, status: ModelStatus, promoted_at: datetime | None = None
    ) -> ModelVersion: ...
    def set_gate(self, model_version_id: int, gate: dict[str, Any]) -> ModelVersion: ...
    def champion_log(self, project_id: int) -> list[tuple[str, int]]:
        """``(action, version)`` of every ``model.promoted`` and ``model.rolled_back`` event of
        the project, oldest first: the history the ``previous`` alias is replayed from."""
        ...

    def list(self, project_id: int) -> list[ModelVersion]: ...  # by version
    def register(
        self,
        project_id: int,
        name: str,
        tag: str,
        dataset_version_id: str | None,
        artifact_uri: str | None,
        endpoint: str | None,
        metrics: dict[str, Any],
    ) -> ModelVersion: ...  # a candidate of kind external; Conflict if name@tag exists
    def by_ref(self, project_id: int, name: str, tag: str) -> ModelVersion | None: ...


class ModelPredictionRepo(Protocol):
    """A registered version's uploaded predictions (on the evaluation split), by item id."""

    def replace(self, model_version_id: int, rows: Mapping[int, Mapping[str, float]]) -> int: ...
    def for_model(self, model_version_id: int) -> dict[int, dict[str, float]]: ...


class EmbeddingRepo(Protocol):
    """The embedding a record carried, by item id."""

    def add_many(self, project_id: int, vectors: Mapping[int, Sequence[float]]) -> None: ...
    def get_many(self, item_ids: Sequence[int]) -> dict[int, list[float]]: ...  # those that have one
    def dim(self, project_id: int) -> int | None: ...  # fixed by the first embedding stored
    def of_project(self, project_id: int) -> dict[int, list[float]]: ...


class DuplicateKeyRepo(Protocol):
    """Near-duplicate band keys (MinHash LSH, perceptual hash) → the items indexed under them."""

    def add_many(self, project_id: int, rows: Sequence[tuple[str, int]]) -> None: ...
    def find(self, project_id: int, keys: Sequence[str]) -> dict[str, list[int]]: ...  # oldest first


class EventRepo(Protocol):
    def add(
        self,
        project_id: int | None,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        data: dict[str, Any] | None = None,
    ) -> Event: ...
    def of_actions(self, project_id: int, actions: Sequence[str]) -> list[Event]: ...  # oldest first
    def list(
        self, project_id: int | None = None, after_id: int = 0, limit: int = 100
    ) -> list[Event]: ...  # oldest first
    def latest(self, project_id: int, action: str, before_id: int | None = None) -> Event | None: ...


class ErasureRepo(Protocol):
    """Erasure (:mod:`loopwright.loop.erasure`): purge an item, redact events, keep tombstones."""

    def salt(self, project_id: int) -> str: ...  # the project's salt, made on first use
    def redact_events(
        self,
        project_id: int,
        subjects: Sequence[tuple[str, str]],
        hints: Collection[str],
        matches: Callable[[dict[str, Any]], bool],
        actors: Collection[str],
        replacement: dict[str, Any],
        erased_actor: str,
    ) -> int:
        """Replace the data of the project's events about one of ``subjects`` (type, id) or whose
        data ``matches`` (only data holding one of ``hints`` can); their actor too when it is in
        ``actors``. How many were redacted."""
        ...

    def versions_holding(self, item_id: int) -> dict[str, str]: ...  # dataset version id → split
    def purge_item(self, item_id: int) -> dict[str, int]:
        """Delete the item and every row that references it; rows deleted per table."""
        ...

    def add(
        self,
        project_id: int,
        subject_hash: str,
        actor: str,
        reason: str | None,
        counts: dict[str, int],
    ) -> Tombstone: ...  # stamped with the store's clock, like model versions
    def mark(self, erasure_id: int, versions: Mapping[str, str]) -> None: ...  # version id → split
    def erased_by_dataset(self, project_id: int) -> dict[str, int]: ...
    def trained_on_erased(self, project_id: int) -> dict[int, int]: ...  # model version → items
    def list(self, project_id: int) -> list[Tombstone]: ...  # oldest first
    def has(self, project_id: int, subject_hash: str) -> bool: ...


class UnitOfWork(Protocol):
    """One transaction's repositories (read-only members, so adapters may narrow the types)."""

    @property
    def projects(self) -> ProjectRepo: ...

    @property
    def items(self) -> ItemRepo: ...

    @property
    def predictions(self) -> PredictionRepo: ...

    @property
    def decisions(self) -> DecisionRepo: ...

    @property
    def tasks(self) -> TaskRepo: ...

    @property
    def leases(self) -> LeaseRepo: ...

    @property
    def annotations(self) -> AnnotationRepo: ...

    @property
    def gold_answers(self) -> GoldAnswerRepo: ...

    @property
    def annotator_stats(self) -> AnnotatorStatsRepo: ...

    @property
    def resolutions(self) -> ResolutionRepo: ...

    @property
    def datasets(self) -> DatasetRepo: ...

    @property
    def models(self) -> ModelRepo: ...

    @property
    def events(self) -> EventRepo: ...

    @property
    def certifications(self) -> CertificationRepo: ...

    @property
    def feedback(self) -> FeedbackRepo: ...

    @property
    def erasures(self) -> ErasureRepo: ...

    @property
    def model_predictions(self) -> ModelPredictionRepo: ...

    @property
    def embeddings(self) -> EmbeddingRepo: ...

    @property
    def duplicate_keys(self) -> DuplicateKeyRepo: ...

    @property
    def machine_labels(self) -> MachineLabelRepo: ...


# -- model annotators ------------------------------------------------------------------------


class ChatClient(Protocol):
    """An OpenAI-compatible chat-completions endpoint: ``POST {url}/chat/completions`` with
    ``messages``, the answer's ``choices[0].message.content`` back. The API key comes from the
    environment variable ``api_key_env`` (read at the edge, never stored). Raise
    :class:`~loopwright.errors.ModelUnavailable` when there is no usable answer within
    ``timeout_s``. Adapter: ``loopwright.integrations.chat``."""

    def complete(
        self,
        url: str,
        model: str,
        messages: Sequence[Mapping[str, str]],
        api_key_env: str | None,
        timeout_s: float,
    ) -> str: ...


class Store(Protocol):
    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...
    def close(self) -> None: ...
    def reclaim(self, tables: Sequence[str]) -> None:
        """After deletes commit: make the deleted bytes unrecoverable from the database's files,
        as far as the backend allows (best effort; never raises for a busy database)."""
        ...


# -- background jobs -------------------------------------------------------------------------

JOB_KINDS = (
    "retrain",
    "snapshot",
    "drift_check",
    "certify",
    "accept_backlog",
    "export",
    "select",
    "gold_from_audits",
)
JOB_DONE = frozenset({"succeeded", "failed", "cancelled"})  # statuses a job never leaves


@dataclass(frozen=True, slots=True)
class Job:
    """One background job, the same record on every adapter. ``status``: queued, running,
    succeeded, failed or cancelled; ``progress`` 0..1; ``logs`` short lines; ``result`` what
    the use case returned; ``error`` why it failed (after ``attempts`` of ``max_attempts``)."""

    id: int
    project: str
    kind: str
    params: dict[str, Any]
    status: str
    progress: float
    logs: list[str]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    actor: str
    trigger: str | None
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        return self.status in JOB_DONE


class Jobs(Protocol):
    """Where use cases enqueue background work and faces look it up (:mod:`loopwright.loop.jobs`).
    Adapters: ``store/sql/jobs.py`` (a jobs table and an in-process worker; the embedded
    default) and ``integrations/procrastinate_jobs.py`` (PostgreSQL, procrastinate workers)."""

    def enqueue(
        self,
        project: str,
        kind: str,
        params: Mapping[str, Any] | None = None,
        actor: str = "system",
        trigger: str | None = None,
    ) -> Job: ...  # a queued job of the same kind and project is returned instead of a second
    def get(self, job_id: int) -> Job: ...  # NotFound
    def cancel(self, job_id: int) -> Job: ...  # Conflict once it is done
    def list(self, project: str | None = None, status: str | None = None, limit: int = 100) -> list[Job]: ...
    def active(self, project: str, kind: str) -> Job | None: ...  # queued or running


class PoolScorer(Protocol):
    """Scores an unlabelled pool (a Parquet file or folder, a path or URL) for active learning:
    the rows to label next, as JSON (``strategy``, ``parts``, ``where``, ``seconds``, ``rows``:
    ``rank``, ``row``, ``id``, ``score``). ``model`` is the scoring model's stored artifact (None
    for k-center); ``progress(done, total)`` is called as partitions finish and may raise to
    stop the run. Adapter: ``integrations/dask_select.py`` (Dask, or one process)."""

    def select(
        self,
        params: Mapping[str, Any],
        model: bytes | None,
        trusted: Sequence[str],
        progress: Callable[[int, int], None],
    ) -> dict[str, Any]: ...
