"""The REST API's response bodies as Pydantic models, shared by the service and the SDK.

Only Pydantic and the standard library: the service declares them as ``response_model`` (so
the OpenAPI document describes every response) and :class:`loopwright.Client` parses into them.
Unknown fields are ignored, so an older client keeps working against a newer server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

TaskStatus = Literal["open", "resolved", "escalated", "gold"]
LeaseStatus = Literal["active", "submitted", "released", "expired", "skipped"]
ModelStatus = Literal["candidate", "champion", "rejected", "retired"]
Route = Literal["auto_accept", "review"]


class Wire(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


# -- projects ------------------------------------------------------------------------------


class ProjectRef(Wire):
    id: int
    name: str


class ProjectList(Wire):
    projects: list[ProjectRef]


class Project(Wire):
    id: int
    name: str
    config: dict[str, Any]
    created_at: datetime


class BacklogAccepted(Wire):
    """A pass over the review backlog: tasks scored again by the champion, and auto-accepted."""

    scanned: int
    accepted: int
    threshold: float | None
    model_version: int | None


class Certification(Wire):
    """An auto-accept threshold certificate: error ≤ epsilon with probability ≥ 1 - delta."""

    id: int
    project_id: int
    model_version_id: int
    threshold: float | None
    epsilon: float
    delta: float
    n_evidence: int
    n_errors: int
    upper_bound: float
    n_audited: int
    reason: str
    created_at: datetime


class ModelVersion(Wire):
    id: int
    project_id: int
    version: int
    status: ModelStatus
    dataset_version_id: str | None
    config_hash: str
    seed: int
    metrics: dict[str, Any]
    gate: dict[str, Any] | None = Field(description="gate evidence, with a 95 % Wilson interval")
    created_at: datetime
    promoted_at: datetime | None
    aliases: list[str] = Field(default_factory=list, description="champion and/or previous")
    kind: str = Field("builtin", description="builtin (trained or handed in here) or external")
    name: str | None = Field(None, description="external: the model's name (<name>@<tag>)")
    tag: str | None = Field(None, description="external: the producer's version string")
    artifact_uri: str | None = None
    endpoint: str | None = Field(None, description="external: a serving URL for its predictions")


class ProjectStatus(Wire):
    project: str
    items: int
    routes: dict[str, int]
    open_tasks_by_tier: dict[int, int] | None = Field(description="null for callers gold measures")
    annotations: int | None = Field(description="null for callers gold measures")
    resolutions: int | None = Field(description="null for callers gold measures")
    audits_waiting: int | None = Field(
        description="answered audits waiting for another answer (routing.audit_answers, the tier's "
        "overlap): the certificate counts their first answer; null for callers gold measures"
    )
    dataset_versions: int
    latest_dataset: str | None
    model_versions: int
    champion: ModelVersion | None
    routing: str = Field(description="how auto-accept is decided now, in one line")
    certification: Certification | None
    automation_rate: float


# -- ingest and predict --------------------------------------------------------------------


class ItemOutcome(Wire):
    item_id: int
    external_id: str
    duplicate: bool
    label: str | None
    confidence: float | None
    route: Route | None
    tier: int | None
    reason: str | None


class IngestReport(Wire):
    outcomes: list[ItemOutcome]
    drift: dict[str, Any] | None = None
    drift_alarm: Literal["confirmed", "retracted"] | None = None  # this batch on the last alarm
    created: int
    duplicates: int


class Scored(Wire):
    label: str
    confidence: float
    probabilities: dict[str, float]


class PredictionBatch(Wire):
    """The champion's predictions, in the order of the payloads; nothing is stored."""

    labels: list[str] = Field(description="the project's labels, the columns of the probabilities")
    predictions: list[Scored]


# -- review --------------------------------------------------------------------------------


class Task(Wire):
    """A review task. Annotators and experts get a blind view (:mod:`loopwright.service.blind`):
    no ``decision_id``, ``priority``, ``reason``, ``required_annotations`` or ``gold_label``."""

    id: int
    project_id: int
    item_id: int
    decision_id: int | None = None
    tier: int
    status: TaskStatus
    priority: float | None = None
    reason: str | None = None
    required_annotations: int | None = None
    parent_task_id: int | None
    created_at: datetime
    closed_at: datetime | None
    gold_label: str | None = None


class Lease(Wire):
    id: int
    task_id: int
    annotator: str
    status: LeaseStatus
    expires_at: datetime
    created_at: datetime
    session_id: str | None = None
    suggested: str | None = Field(None, description="the model's label offered with the task (null: none)")


class Item(Wire):
    """An item; the blind view (annotators, experts) has no ``external_id`` or ``metadata``."""

    id: int
    project_id: int
    external_id: str | None = None
    content_hash: str
    payload: dict[str, Any]
    metadata: dict[str, Any] | None = None
    created_at: datetime


class Prediction(Wire):
    """A stored prediction; the blind view's suggestion is the champion's, scored when served,
    without ``id``, ``model_version_id`` or ``created_at``."""

    id: int | None = None
    item_id: int
    model_version_id: int | None = None
    probabilities: dict[str, float]
    label: str | None
    confidence: float | None
    error: str | None
    created_at: datetime | None = None


class MachineLabel(Wire):
    """A model annotator's answer on an item (an LLM judge or a model version): a machine label."""

    id: int
    item_id: int
    task_id: int | None
    annotator: str
    kind: str = Field(description="chat or model_version")
    model: str
    label: str | None
    status: str = Field(description="labelled, unparseable or failed")
    detail: str | None
    created_at: datetime


class Assignment(Wire):
    """A leased task with the item and the model's suggestion."""

    task: Task
    lease: Lease
    item: Item
    suggestion: Prediction | None
    why: str
    prelabels: list[MachineLabel] = Field(
        default_factory=list, description="model annotators' labels for the item (prelabel: true)"
    )
    model_hidden: bool = Field(
        False, description="the model's answer is withheld: an audit (or gold beside audits), answered blind"
    )


class Annotation(Wire):
    id: int
    task_id: int
    item_id: int
    lease_id: int
    annotator: str
    label: str
    unsure: bool
    created_at: datetime
    suggested: str | None = Field(
        None, description="the model's label shown with the task (null: none shown, or answered blind)"
    )


class Resolution(Wire):
    id: int
    item_id: int
    task_id: int
    label: str
    method: str
    agreement: float
    n_annotations: int
    created_at: datetime


class GoldAnswer(Wire):
    id: int
    task_id: int
    item_id: int
    lease_id: int
    annotator: str
    tier: int
    label: str
    correct: bool
    created_at: datetime


class SubmitResult(Wire):
    """What a submit did; the blind view has no ``gold`` and, below the votes tier, nothing else."""

    annotation: Annotation | None
    resolution: Resolution | None
    escalated_to: Task | None
    gold: GoldAnswer | None = None


class AnnotationPage(Wire):
    annotations: list[Annotation]
    next_after: int


class ResolutionPage(Wire):
    resolutions: list[Resolution]
    next_after: int


class GoldAdded(Wire):
    tasks: list[Task]


class TierSkill(Wire):
    tier: int
    answers: int
    correct: int
    evidence: float
    accuracy: float


class AnnotatorStats(Wire):
    annotator: str
    gold_answers: int
    gold_accuracy: float | None
    by_tier: list[TierSkill]
    paused_tiers: list[int]
    annotations_last_hour: int
    annotations_this_session: int | None


# -- feedback and events -------------------------------------------------------------------


class Feedback(Wire):
    id: int
    project_id: int
    prediction_id: int
    item_id: int
    kind: Literal["thumbs_up", "thumbs_down", "report", "correction"]
    correction: str | None
    comment: str | None
    actor: str
    idempotency_key: str
    task_id: int | None
    created_at: datetime


class Event(Wire):
    id: int
    project_id: int | None
    actor: str
    action: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]
    at: datetime


class EventPage(Wire):
    events: list[Event]
    next_after: int


# -- datasets ------------------------------------------------------------------------------


class DatasetEntry(Wire):
    item_id: int
    item_hash: str
    label: str
    source: str
    resolution_id: int | None
    split: Literal["train", "eval"]


class DatasetVersion(Wire):
    id: str
    project_id: int
    parent_id: str | None
    n_items: int
    label_counts: dict[str, int]
    created_at: datetime


class DatasetDetail(DatasetVersion):
    entries: list[DatasetEntry]
    erased_items: int = Field(0, description="entries removed since by erasure (n_items still counts them)")


class DatasetList(Wire):
    datasets: list[DatasetVersion]


class DiffRow(Wire):
    item_id: int
    external_id: str
    item_hash: str
    old: str | None = None
    new: str | None = None


class DatasetDiff(Wire):
    a: str
    b: str
    counts: dict[str, int]
    transitions: dict[str, int]
    added: list[DiffRow]
    relabelled: list[DiffRow]
    removed: list[DiffRow]


# -- models --------------------------------------------------------------------------------


class ModelList(Wire):
    models: list[ModelVersion]


class Rollback(Wire):
    champion: ModelVersion
    replaced: ModelVersion | None


class RetrainResult(Wire):
    dataset: DatasetVersion
    model: ModelVersion
    gate: dict[str, Any]
    promoted: bool


# -- background jobs -----------------------------------------------------------------------

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Job(Wire):
    """A background job (retrain, snapshot, drift_check, certify, export, select); the same shape on
    every job adapter."""

    id: int
    project: str
    kind: str
    params: dict[str, Any]
    status: JobStatus
    progress: float = Field(description="0..1")
    logs: list[str]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    actor: str
    trigger: str | None = Field(None, description="what started it automatically, if anything")
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(Wire):
    jobs: list[Job]


class Automation(Wire):
    project: str
    paused: bool


# -- monitoring ----------------------------------------------------------------------------


# A pair as ``items`` with a length, not ``prefixItems``: OpenAPI 3.0 tools (schemathesis) read it.
Pair = Annotated[
    tuple[int, int],
    WithJsonSchema({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}),
]


class DriftCheck(Wire):
    drift: bool
    window: Pair  # first and last item id
    data: dict[str, Any] | None
    prediction: dict[str, Any] | None
    sampled_tasks: int
    performance: dict[str, Any] | None = None
    concept_changes: list[int] = Field(default_factory=list)


class DriftStatus(Wire):
    """The last drift check recorded in the event log (``None``: never checked)."""

    drift: bool | None
    last_check: Event | None


class Band(Wire):
    min_confidence: float
    tier: int


class Thresholds(Wire):
    routing: str = Field(description="how auto-accept is decided now, in one line")
    accept_threshold: float = Field(description="the configured fixed threshold")
    audit_rate: float
    certify: dict[str, Any] | None = Field(description="the certification goal, if certifying")
    certification: Certification | None = Field(description="the latest stored certificate")
    bands: list[Band]
    fallback_tier: int


class ModelLineage(Wire):
    version: int
    status: ModelStatus
    dataset_version: str | None
    config_hash: str
    seed: int
    gate: dict[str, Any] | None
    train_items: int
    eval_items: int
    label_counts: dict[str, int] = Field(default_factory=dict)
    labels_by_source: dict[str, int] = Field(default_factory=dict)
    annotations_by_annotator: dict[str, int] = Field(default_factory=dict)
    annotations_by_tier: dict[str, int] = Field(default_factory=dict)
    trained_on_erased_items: int = Field(0, description="training items erased since: retrain")


class ItemLineage(Wire):
    item: dict[str, Any]
    predictions: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    resolutions: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    dataset_versions: list[dict[str, Any]]
    trained_models: list[int]
    evaluated_models: list[int]


class Tombstone(Wire):
    """What is left of an erased item: a salted hash of its external id, who, when and why."""

    id: int
    project_id: int
    subject_hash: str = Field(description="sha256 of the external id, salted per project")
    actor: str
    reason: str | None
    erased_at: datetime
    counts: dict[str, int] = Field(description="rows deleted per table, and events_redacted")


class ErrorField(Wire):
    field: str
    message: str


class ErrorBody(Wire):
    """Every error response: a stable ``code``, a message, and for ``invalid`` the fields."""

    code: str
    message: str
    errors: list[ErrorField] | None = None


# -- webhooks ---------------------------------------------------------------------------------


class WebhookOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    project: str
    url: str
    events: list[str]
    active: bool
    last_event_id: int
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_…: verify signatures with it; shown only now")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    subscription_id: int
    event_id: int
    action: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page")


class PredictionsUploaded(Wire):
    """A registered version's predictions on the evaluation split, stored."""

    model: str = Field(description="<name>@<version>")
    version: int
    stored: int
    eval_items: int


class GateOutcome(Wire):
    """The paired gate of a registered version against the champion (a failure is a 200)."""

    model: ModelVersion
    gate: dict[str, Any]
    promoted: bool
    manifests: list[str] = Field(default_factory=list, description="deployment manifests written")


class EvalItem(Wire):
    external_id: str
    payload: dict[str, Any]
    label: str | None = Field(None, description="only with labels=true")
    embedding: list[float] | None = None


class EvalSplit(Wire):
    """The frozen evaluation split of a dataset version, for a pipeline that trains elsewhere."""

    dataset_version: str
    labels: bool
    items: list[EvalItem]
