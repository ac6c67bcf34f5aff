"""The schema as SQLAlchemy Core tables. Migrations in ``migrations/versions`` must match it."""

# No ``from __future__ import annotations`` here: it would clash with the annotations table.

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

# An answer's canonical text (a label, a label set as sorted JSON, a rating): unbounded on
# PostgreSQL since 0016; SQLite never enforced the 200 (VARCHAR lengths are not checked there).
LABEL = String(200).with_variant(Text(), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always returns aware UTC datetimes.

    SQLite keeps no zone, so values are stored as UTC and tagged UTC on read; naive values
    passed in are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _created() -> Column[datetime]:
    return Column("created_at", UtcDateTime, nullable=False)


def _fk(name: str, target: str, nullable: bool = False) -> Column[Any]:
    column_type = String(64) if target == "dataset_versions.id" else Integer
    return Column(name, column_type, ForeignKey(target), nullable=nullable)


projects = Table(
    "projects",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, unique=True),
    Column("config", JSON, nullable=False),
    _created(),
)

items = Table(
    "items",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    Column("external_id", String(255), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    _created(),
    UniqueConstraint("project_id", "external_id"),
)

model_versions = Table(
    "model_versions",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    _fk("dataset_version_id", "dataset_versions.id", nullable=True),
    Column("config_hash", String(64), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("gate", JSON(none_as_null=True), nullable=True),
    Column("artifact", LargeBinary, nullable=False),
    _created(),
    Column("promoted_at", UtcDateTime, nullable=True),
    Column("kind", String(16), nullable=False, server_default="builtin"),  # 0009
    Column("name", String(200), nullable=True),  # 0009: external <name>@<tag>
    Column("tag", String(200), nullable=True),  # 0009
    Column("artifact_uri", String(2000), nullable=True),  # 0009
    Column("endpoint", String(2000), nullable=True),  # 0009
    UniqueConstraint("project_id", "version"),
    UniqueConstraint("project_id", "name", "tag"),  # 0009
)

model_predictions = Table(  # 0009: a registered version's uploaded predictions (eval split)
    "model_predictions",
    metadata,
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("probabilities", JSON, nullable=False),
    _created(),
)

item_embeddings = Table(  # 0009: the embedding a record carried, one per item
    "item_embeddings",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    _fk("project_id", "projects.id"),
    Column("vector", JSON, nullable=False),
    Index(None, "project_id"),
)

duplicate_keys = Table(  # 0014: near-duplicate band keys (MinHash LSH, perceptual hash) → item
    "duplicate_keys",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("band_key", String(48), primary_key=True),  # kind:band:digest
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Index(None, "item_id"),
)

predictions = Table(
    "predictions",
    metadata,
    _id(),
    _fk("item_id", "items.id"),
    _fk("model_version_id", "model_versions.id", nullable=True),
    Column("probabilities", JSON, nullable=False),
    Column("label", LABEL, nullable=True),  # 0016: Text on PostgreSQL (a label set)
    Column("confidence", Float, nullable=True),
    Column("error", Text, nullable=True),
    _created(),
    Index(None, "item_id"),
)

decisions = Table(
    "decisions",
    metadata,
    _id(),
    _fk("item_id", "items.id"),
    _fk("prediction_id", "predictions.id"),
    Column("route", String(16), nullable=False),
    Column("tier", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("audit", Boolean, nullable=False),
    Column("threshold", Float, nullable=True),
    _created(),
    Index(None, "item_id"),
)

tasks = Table(
    "tasks",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    _fk("item_id", "items.id"),
    _fk("decision_id", "decisions.id", nullable=True),
    Column("tier", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("required_annotations", Integer, nullable=False),
    _fk("parent_task_id", "tasks.id", nullable=True),
    _created(),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("gold_label", LABEL, nullable=True),  # 0002: set on gold tasks (0016: LABEL)
    Column("n_annotations", Integer, nullable=False, server_default="0"),  # 0007: kept on annotate
    Index(None, "project_id", "status", "tier", "priority"),
    Index(None, "item_id"),
)
# 0007: the claim's order, so a claim walks open tasks in order instead of sorting them all
Index(
    "ix_tasks_claim_order",
    tasks.c.project_id,
    tasks.c.status,
    tasks.c.priority.desc(),
    tasks.c.n_annotations.desc(),
    tasks.c.id,
)

leases = Table(
    "leases",
    metadata,
    _id(),
    _fk("task_id", "tasks.id"),
    Column("annotator", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    _created(),
    Column("session_id", String(200), nullable=True),  # 0002
    Column("suggested", LABEL, nullable=True),  # 0018: the model's label offered with the task
    Index(None, "task_id", "status"),
    Index(None, "annotator", "status"),  # 0002
    Index(None, "status", "expires_at"),  # 0012: the lease sweep
)

annotations = Table(
    "annotations",
    metadata,
    _id(),
    _fk("task_id", "tasks.id"),
    _fk("item_id", "items.id"),
    _fk("lease_id", "leases.id"),
    Column("annotator", String(200), nullable=False),
    Column("label", LABEL, nullable=False),  # 0016: Text on PostgreSQL (a label set)
    Column("unsure", Boolean, nullable=False),
    _created(),
    Column("suggested", LABEL, nullable=True),  # 0018: the label its lease offered (None: none shown)
    UniqueConstraint("task_id", "annotator"),  # also serves lookups by task_id
    Index(None, "item_id"),
    Index(None, "annotator", "created_at"),  # 0002
)

gold_answers = Table(  # 0002
    "gold_answers",
    metadata,
    _id(),
    _fk("task_id", "tasks.id"),
    _fk("item_id", "items.id"),
    _fk("lease_id", "leases.id"),
    Column("annotator", String(200), nullable=False),
    Column("tier", Integer, nullable=False),
    Column("label", LABEL, nullable=False),  # 0016: Text on PostgreSQL (a label set)
    Column("correct", Boolean, nullable=False),
    _created(),
    UniqueConstraint("task_id", "annotator"),
    Index(None, "annotator", "created_at"),
    Index(None, "item_id"),
)

annotator_stats = Table(  # 0017: per-annotator counters kept in step with the writes
    "annotator_stats",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("work", Integer, nullable=False),  # annotations + gold answers
    Column("gold", JSON, nullable=False),  # {"params": [min, expected], "tiers": {tier: [n, right, cusum]}}
)

resolutions = Table(
    "resolutions",
    metadata,
    _id(),
    _fk("item_id", "items.id"),
    _fk("task_id", "tasks.id"),
    Column("label", LABEL, nullable=False),  # 0016: Text on PostgreSQL (a label set)
    Column("method", String(50), nullable=False),
    Column("agreement", Float, nullable=False),
    Column("n_annotations", Integer, nullable=False),
    _created(),
    Index(None, "item_id"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 hex of the manifest
    _fk("project_id", "projects.id"),
    _fk("parent_id", "dataset_versions.id", nullable=True),
    Column("n_items", Integer, nullable=False),
    Column("label_counts", JSON, nullable=False),
    _created(),
    Index(None, "project_id"),
)

dataset_entries = Table(
    "dataset_entries",
    metadata,
    Column("dataset_version_id", String(64), ForeignKey("dataset_versions.id"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("position", Integer, nullable=False),  # entry order within the version
    Column("item_hash", String(64), nullable=False),
    Column("label", LABEL, nullable=False),  # 0016: Text on PostgreSQL (a label set)
    Column("source", String(50), nullable=False),
    _fk("resolution_id", "resolutions.id", nullable=True),
    Column("split", String(8), nullable=False),
    Index(None, "item_id"),
)

certifications = Table(
    "certifications",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    _fk("model_version_id", "model_versions.id"),
    Column("threshold", Float, nullable=True),
    Column("epsilon", Float, nullable=False),
    Column("delta", Float, nullable=False),
    Column("n_evidence", Integer, nullable=False),
    Column("n_errors", Integer, nullable=False),
    Column("upper_bound", Float, nullable=False),
    Column("n_audited", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    _created(),
    Column("evidence_version", Integer, nullable=True),  # 0020: the evidence it counted
    Index(None, "project_id", "id"),
)

audit_evidence = Table(  # 0020: the version of each project's audit evidence (repositories.EvidenceMarks)
    "audit_evidence",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("version", Integer, nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    _fk("prediction_id", "predictions.id"),
    _fk("item_id", "items.id"),
    Column("kind", String(20), nullable=False),
    Column("correction", LABEL, nullable=True),  # 0016: Text on PostgreSQL
    Column("comment", Text, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    _fk("task_id", "tasks.id", nullable=True),
    _created(),
    UniqueConstraint("project_id", "idempotency_key"),
    Index(None, "item_id"),
)

events = Table(
    "events",
    metadata,
    _id(),
    _fk("project_id", "projects.id", nullable=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject_type", String(50), nullable=False),
    Column("subject_id", String(100), nullable=False),
    Column("data", JSON, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "project_id", "id"),
    Index(None, "project_id", "action", "id"),  # 0012: the latest event of a kind
)

# --- users of the REST service: accounts, project memberships, API tokens (hashes only) ----

users = Table(
    "users",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, unique=True),
    Column("admin", Boolean, nullable=False),
    _created(),
)

memberships = Table(
    "memberships",
    metadata,
    _id(),
    _fk("user_id", "users.id"),
    _fk("project_id", "projects.id"),
    Column("role", String(20), nullable=False),
    Column("tiers", JSON, nullable=True),  # list of tier numbers; NULL: every tier
    _created(),
    UniqueConstraint("user_id", "project_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    _fk("user_id", "users.id"),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the token
    _created(),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),  # 0010; updated at most once a minute
    Index(None, "user_id"),
)

# 0010: web UI sessions, opened with a token; the cookie holds a random id, only its hash is here
ui_sessions = Table(
    "ui_sessions",
    metadata,
    _id(),
    _fk("token_id", "api_tokens.id"),
    Column("session_hash", String(64), nullable=False, unique=True),
    _created(),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),  # logout
    Index(None, "token_id"),
)

# --- webhooks (0006): subscriptions read the event log after a cursor; one delivery per event --

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    Column("url", String(2000), nullable=False),
    Column("secret", String(200), nullable=False),  # whsec_<base64>: needed to sign, so kept as is
    Column("events", JSON, nullable=False),  # action prefixes; [] means every event
    Column("active", Boolean, nullable=False),
    Column("last_event_id", Integer, nullable=False),  # the cursor: events up to here are queued
    Column("locked_until", UtcDateTime, nullable=True),  # a dispatcher's lease on sending
    Column("created_by", String(200), nullable=False),
    _created(),
    Index(None, "project_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    _fk("subscription_id", "webhook_subscriptions.id"),
    _fk("event_id", "events.id"),
    Column("status", String(16), nullable=False),  # pending, delivered, dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    _created(),
    UniqueConstraint("subscription_id", "event_id"),
    Index(None, "status", "subscription_id", "event_id"),  # the oldest pending one of each
)

# --- erasure (0008): tombstones of erased items, and the dataset versions that held them -------

erasure_salts = Table(
    "erasure_salts",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("salt", String(64), nullable=False),  # hex; salts the subject hashes of the tombstones
)

erasures = Table(
    "erasures",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    Column("subject_hash", String(64), nullable=False),  # sha256(salt + external id) hex
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Column("erased_at", UtcDateTime, nullable=False),
    Column("counts", JSON, nullable=False),  # rows deleted per table, events redacted
    Index(None, "project_id", "subject_hash"),
)

erased_entries = Table(
    "erased_entries",
    metadata,
    Column("erasure_id", Integer, ForeignKey("erasures.id"), primary_key=True),
    Column("dataset_version_id", String(64), ForeignKey("dataset_versions.id"), primary_key=True),
    Column("split", String(8), nullable=False),  # where the erased entry sat: train or eval
    Index(None, "dataset_version_id"),
)

# --- model annotators (0011): LLM judges and model versions answering as weak annotators -------

machine_labels = Table(
    "machine_labels",
    metadata,
    _id(),
    _fk("project_id", "projects.id"),
    _fk("item_id", "items.id"),
    _fk("task_id", "tasks.id", nullable=True),
    Column("annotator", String(200), nullable=False),  # the configured name
    Column("kind", String(32), nullable=False),  # chat | model_version
    Column("model", String(200), nullable=False),  # the chat model, or v<version>
    Column("label", LABEL, nullable=True),  # set when status is labelled (0016: LABEL)
    Column("status", String(16), nullable=False),  # labelled | unparseable | failed
    Column("detail", Text, nullable=True),  # the raw answer or the error, cut short
    _created(),
    Index(None, "item_id"),
    Index(None, "project_id", "status"),
)

# --- event sinks (0015): a cursor per sink (a broker) over the event log, the outbox ----------

event_cursors = Table(
    "event_cursors",
    metadata,
    Column("sink", String(200), primary_key=True),  # e.g. nats:LOOPWRIGHT
    Column("last_event_id", Integer, nullable=False),  # published and acked up to here
    Column("owner", String(100), nullable=True),  # the publisher holding the lease
    Column("locked_until", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# --- jobs (0013): background jobs, the record both job adapters keep -----------------------------

jobs = Table(
    "jobs",
    metadata,
    _id(),
    Column("project", String(200), nullable=False),  # by name: a job outlives a deleted project
    Column("kind", String(32), nullable=False),  # retrain | snapshot | drift_check | certify | export
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed | cancelled
    Column("lock", String(250), nullable=True),  # jobs sharing a lock never run at once
    Column("progress", Float, nullable=False),  # 0..1
    Column("logs", JSON, nullable=False),  # list of short lines
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("trigger", String(32), nullable=True),  # what automation saw: labels, drift, schedule, …
    Column("worker", String(200), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),  # a running job whose lease ran out is taken over
    Column("cancel_requested", Boolean, nullable=False),
    Column("engine_id", BigInteger, nullable=True),  # the job engine's own id (procrastinate)
    _created(),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Index(None, "status", "id"),
    Index(None, "project", "id"),
)
