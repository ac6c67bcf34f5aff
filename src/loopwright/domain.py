"""Value objects of the loop: frozen dataclasses and enums, no behaviour beyond small helpers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


def content_hash(payload: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Route(StrEnum):
    AUTO_ACCEPT = "auto_accept"
    REVIEW = "review"


class TaskStatus(StrEnum):
    OPEN = "open"  # waiting for annotations
    RESOLVED = "resolved"  # consolidated into a Resolution
    ESCALATED = "escalated"  # closed here, continued by a task at a higher tier
    GOLD = "gold"  # a gold (honeypot) task: known answer, scored per annotator, never resolved
    ACCEPTED = "accepted"  # closed unreviewed: a certified champion auto-accepted its item


class LeaseStatus(StrEnum):
    ACTIVE = "active"
    SUBMITTED = "submitted"
    RELEASED = "released"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # given back by an annotator who is not offered the task again


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    CHAMPION = "champion"
    REJECTED = "rejected"
    RETIRED = "retired"


class GateRule(StrEnum):
    NOT_WORSE = "not_worse"  # point estimate: challenger accuracy ≥ champion accuracy
    NOT_SIGNIFICANTLY_WORSE = "not_significantly_worse"  # one-sided exact McNemar, H1: worse
    SIGNIFICANTLY_BETTER = "significantly_better"  # one-sided exact McNemar, H1: better


class Split(StrEnum):
    TRAIN = "train"
    EVAL = "eval"


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    config: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    project_id: int
    external_id: str
    content_hash: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Prediction:
    id: int
    item_id: int
    model_version_id: int | None
    probabilities: dict[str, float]  # keyed by label, never by column position
    label: str | None
    confidence: float | None
    error: str | None  # set when the model raised; then label/confidence are None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    id: int
    item_id: int
    prediction_id: int
    route: Route
    tier: int | None
    reason: str
    audit: bool  # drawn into the uniform random audit sample (reviewed, never trained on)
    threshold: float | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Certification:
    """A stored auto-accept threshold certificate for one champion and one body of audit evidence.

    ``threshold`` None: nothing could be certified, so every prediction goes to review.
    """

    id: int
    project_id: int
    model_version_id: int
    threshold: float | None
    epsilon: float
    delta: float
    n_evidence: int  # audited items at or above the threshold (or the first that failed)
    n_errors: int
    upper_bound: float
    n_audited: int  # all audited, resolved items scored
    reason: str
    created_at: datetime
    evidence_version: int | None = None  # the project's evidence version it counted (None: older)


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    project_id: int
    item_id: int
    decision_id: int | None
    tier: int
    status: TaskStatus
    priority: float
    reason: str
    required_annotations: int
    parent_task_id: int | None  # the lower-tier task this one escalates
    created_at: datetime
    closed_at: datetime | None
    gold_label: str | None = None  # the known answer of a gold task


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    task_id: int
    annotator: str
    status: LeaseStatus
    expires_at: datetime
    created_at: datetime
    session_id: str | None = None  # the annotator's work session, for the per-session cap
    suggested: str | None = None  # the model's label offered with the task (None: none shown)


@dataclass(frozen=True, slots=True)
class Annotation:
    id: int
    task_id: int
    item_id: int
    lease_id: int
    annotator: str
    label: str
    unsure: bool
    created_at: datetime
    suggested: str | None = None  # the model's label shown with the task (None: none, or answered blind)


@dataclass(frozen=True, slots=True)
class MachineLabel:
    """A model annotator's answer on an item (a machine label: never counts as a human one)."""

    id: int
    project_id: int
    item_id: int
    task_id: int | None
    annotator: str  # the configured name; consensus knows it as "machine:<name>"
    kind: str  # chat | model_version
    model: str  # the chat model's name, or v<version>
    label: str | None  # None unless status is "labelled"
    status: str  # labelled | unparseable | failed
    detail: str | None  # the raw answer (unparseable) or the error (failed), cut short
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GoldAnswer:
    """An annotator's answer to a gold task, scored against the known label."""

    id: int
    task_id: int
    item_id: int
    lease_id: int
    annotator: str
    tier: int
    label: str
    correct: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    id: int
    item_id: int
    task_id: int
    label: str
    method: str
    agreement: float
    n_annotations: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    item_id: int
    item_hash: str
    label: str
    source: str  # "review", "audit", "expert", "seed", …
    resolution_id: int | None
    split: Split

    def manifest_row(self) -> list[Any]:
        """The part of the entry that the version's content hash covers."""
        return [self.item_hash, self.label, self.source, self.resolution_id, self.split.value]


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    id: str  # SHA-256 of the manifest
    project_id: int
    parent_id: str | None
    n_items: int
    label_counts: dict[str, int]
    created_at: datetime
    entries: tuple[DatasetEntry, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    id: int
    project_id: int
    version: int  # 1, 2, … per project
    status: ModelStatus
    dataset_version_id: str | None
    config_hash: str
    seed: int
    metrics: dict[str, Any]
    gate: dict[str, Any] | None  # evidence of the gate decision, if one was run
    created_at: datetime
    promoted_at: datetime | None
    # 0009: a model that lives elsewhere ("external") names itself <name>@<tag>
    kind: str = "builtin"  # builtin (trained or handed in here) or external
    name: str | None = None
    tag: str | None = None  # the producer's own version string
    artifact_uri: str | None = None
    endpoint: str | None = None  # a serving URL to fetch its predictions from, if any

    @property
    def ref(self) -> str:
        """``name@tag`` for a registered external version, ``v<version>`` otherwise."""
        return f"{self.name}@{self.tag}" if self.name else f"v{self.version}"


class FeedbackKind(StrEnum):
    THUMBS_UP = "thumbs_up"
    THUMBS_DOWN = "thumbs_down"
    REPORT = "report"  # a "report issue" button
    CORRECTION = "correction"  # the end user says what the label should be


@dataclass(frozen=True, slots=True)
class Feedback:
    """An end user's reaction to a prediction. A correction is a low-trust candidate label."""

    id: int
    project_id: int
    prediction_id: int
    item_id: int
    kind: FeedbackKind
    correction: str | None
    comment: str | None
    actor: str
    idempotency_key: str
    task_id: int | None  # the review task it opened, if any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    project_id: int | None
    actor: str
    action: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]
    at: datetime
