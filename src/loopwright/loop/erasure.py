"""Erasure (GDPR Art. 17, HIPAA disposal): an item's content leaves the store; a tombstone stays.

What goes: the item row with its payload and metadata, and every row that hangs off it
(predictions, decisions, tasks and their leases, annotations, gold answers, resolutions,
feedback, dataset entries, and whatever later tables reference the item) — deleted, not kept
as redacted rows: a label or a comment about a person is that person's data too, and the
project's agreement figures and annotator skills are then computed as if the item never was.
Events that name the item, its tasks or predictions, or whose data holds its external id, a
payload/metadata string or a feedback comment keep their action, time and subject id but have
their data replaced by ``{"erased": true}``.

What stays: a :class:`Tombstone` (SHA-256 of the external id salted per project, who, when,
why, how many rows went), an ``item.erased`` event with the tombstone, and one mark per dataset
version that held the item: versions keep their id and counts as records, and say how many of
their entries were erased; models trained on them are flagged so a lead can retrain.

After the transaction commits, the store is asked to make the deleted bytes unrecoverable
(SQLite: ``secure_delete`` is on and the WAL is checkpointed; PostgreSQL: ``VACUUM``).
Re-ingesting the same external id later is allowed: it is a new item, with no link to the old.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopwright.errors import Invalid, NotFound
from loopwright.loop.context import Context

MIN_NEEDLE = 6  # shorter payload strings ("yes", "red") would redact unrelated events
MAX_REASON = 2000
REDACTED: dict[str, Any] = {"erased": True}
ERASED_ACTOR = "erased"


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of an erased item: never its content or its external id."""

    id: int
    project_id: int
    subject_hash: str  # sha256(project salt + external id), hex
    actor: str
    reason: str | None
    erased_at: datetime
    counts: dict[str, int] = field(default_factory=dict)  # rows deleted per table, events redacted


@dataclass(frozen=True, slots=True)
class ErasureMarks:
    """How many erased items each dataset version held, and each model version trained on."""

    datasets: dict[str, int]  # dataset version id → erased entries
    models: dict[int, int]  # model version number → erased items it was trained on


def subject_hash(salt: str, external_id: str) -> str:
    return hashlib.sha256(f"{salt}:{external_id}".encode()).hexdigest()


def needles(*values: Any) -> set[str]:
    """Every string in ``values`` (walking dicts and lists) of at least ``MIN_NEEDLE`` characters."""
    return {s for v in values for s in _strings(v) if len(s) >= MIN_NEEDLE}


@dataclass(frozen=True, slots=True)
class Matcher:
    """Does an event's data hold the item: a string equal to ``exact`` or containing a needle?"""

    exact: frozenset[str]
    contained: frozenset[str]

    def __call__(self, data: Any) -> bool:
        return any(s in self.exact or any(n in s for n in self.contained) for s in _strings(data))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def erase(ctx: Context, external_id: str, actor: str, reason: str | None = None) -> Tombstone:
    """Erase one item of the project by external id; NotFound when there is none (erased already)."""
    if not isinstance(external_id, str) or not external_id.strip():
        raise Invalid("give the external id of the item to erase")
    if reason is not None and len(reason) > MAX_REASON:
        raise Invalid(f"the reason is longer than {MAX_REASON} characters")
    reason = (reason or "").strip() or None
    pid = ctx.project.id
    with ctx.store.unit_of_work() as uow:
        item = uow.items.by_external_ids(pid, [external_id]).get(external_id)
        if item is None:
            raise NotFound(f"item {external_id!r} does not exist in project {ctx.project.name!r}")
        item_tasks = uow.tasks.lock_item(item.id)
        feedback = uow.feedback.for_item(item.id)
        subjects = [("item", str(item.id))]
        subjects += [("task", str(t.id)) for t in item_tasks]
        subjects += [("prediction", str(p.id)) for p in uow.predictions.for_item(item.id)]
        found = needles(external_id, item.payload, item.metadata, [f.comment for f in feedback])
        matches = Matcher(frozenset({external_id}), frozenset(found))
        actors = {f.actor for f in feedback}  # an end user's id is theirs to have erased too
        hints = matches.exact | matches.contained
        redacted = uow.erasures.redact_events(pid, subjects, hints, matches, actors, REDACTED, ERASED_ACTOR)
        held = uow.erasures.versions_holding(item.id)
        counts = uow.erasures.purge_item(item.id) | {"events_redacted": redacted}
        uow.annotator_stats.forget(pid)  # counts and gold folds change: rebuilt on next read
        uow.certifications.evidence_changed(pid)  # an erased audit no longer counts
        salt = uow.erasures.salt(pid)
        tomb = uow.erasures.add(pid, subject_hash(salt, external_id), actor, reason, counts)
        uow.erasures.mark(tomb.id, held)
        ctx.event(
            uow,
            actor,
            "item.erased",
            ("erasure", tomb.id),
            subject_hash=tomb.subject_hash,
            reason=reason,
            counts=counts,
            dataset_versions=sorted(held),
        )
    ctx.store.reclaim([*(t for t in counts if t != "events_redacted"), "events"])
    return tomb


def marks(ctx: Context) -> ErasureMarks:
    """Erased entries per dataset version, and erased training items per model version (only
    erasures after the model was trained count: a model trained later never saw the item)."""
    with ctx.store.unit_of_work() as uow:
        datasets = uow.erasures.erased_by_dataset(ctx.project.id)
        models = uow.erasures.trained_on_erased(ctx.project.id)
    return ErasureMarks(datasets, models)


def tombstones(ctx: Context) -> list[Tombstone]:
    with ctx.store.unit_of_work() as uow:
        return uow.erasures.list(ctx.project.id)


def was_erased(ctx: Context, external_id: str) -> bool:
    """Whether an item with this external id was ever erased from the project."""
    with ctx.store.unit_of_work() as uow:
        if not uow.erasures.list(ctx.project.id):  # no salt made yet: nothing to write here
            return False
        salt = uow.erasures.salt(ctx.project.id)
        return uow.erasures.has(ctx.project.id, subject_hash(salt, external_id))
