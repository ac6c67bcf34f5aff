"""The loop turns by itself: evaluate each project's triggers and start the jobs they call for.

Triggers: enough new resolved labels, drift detected since the last training run, the
schedule (``retrain.every_hours``) — the same rule :meth:`Loop.retrain_due` applies; for a
model that lives elsewhere the retrain job announces ``model.retrain_due`` to its pipeline —
a fresh drift window (``drift.window`` items since the last check) for a drift check, and a
certified threshold with untouched review backlog it may cover (:mod:`~loopwright.loop.backlog`),
and with ``gold.from_audits`` new audit answers or a new champion (:mod:`~loopwright.loop.audit_gold`).
Each decision is an ``automation.decided`` event naming the trigger and the job. A project
pauses its automation with :func:`set_paused` (``automation.paused`` / ``automation.resumed``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loopwright.errors import LoopwrightError
from loopwright.loop import audit_gold, backlog
from loopwright.loop import retrain as _retrain
from loopwright.loop.loop import Loop, Workspace
from loopwright.loop.ports import Job, Jobs

log = logging.getLogger(__name__)
DECIDED, PAUSED, RESUMED = "automation.decided", "automation.paused", "automation.resumed"
ACTOR = "automation"
FAILED_BACKOFF = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Decision:
    project: str
    kind: str
    trigger: str
    job_id: int


def is_paused(loop: Loop) -> bool:
    """True when the newest pause/resume event of the project is a pause."""
    with loop._ctx.store.unit_of_work() as uow:
        paused = uow.events.latest(loop.project.id, PAUSED)
        resumed = uow.events.latest(loop.project.id, RESUMED)
    return paused is not None and (resumed is None or resumed.id < paused.id)


def set_paused(loop: Loop, paused: bool, actor: str = "system") -> bool:
    """Pause or resume the project's automation (an event; a no-op if already so)."""
    if is_paused(loop) != paused:
        with loop._ctx.store.unit_of_work() as uow:
            loop._ctx.event(uow, actor, PAUSED if paused else RESUMED, ("project", loop.project.name))
    return paused


def triggers(loop: Loop) -> list[tuple[str, str]]:
    """The ``(job kind, trigger)`` pairs due now for one project."""
    due: list[tuple[str, str]] = []
    reason, _ = _retrain._due(loop._ctx)
    if reason is not None:
        due.append(("retrain", f"external_{reason}" if loop.config.model.lives_elsewhere else reason))
    if _fresh_drift_window(loop):
        due.append(("drift_check", "drift_window"))
    if backlog.due(loop._ctx):
        due.append(("accept_backlog", "certified_backlog"))
    if audit_gold.due(loop._ctx):
        due.append(("gold_from_audits", "audit_answers"))
    return due


def _fresh_drift_window(loop: Loop) -> bool:
    window, pid = loop.config.drift.window, loop.project.id
    with loop._ctx.store.unit_of_work() as uow:
        if uow.items.count(pid) < 2 * window:
            return False
        newest = uow.items.recent(pid, 1)[-1].id
        checks = [uow.events.latest(pid, a) for a in ("drift.checked", "drift.detected")]
    last_end = max((int(e.data.get("window_end_item_id", 0)) for e in checks if e is not None), default=0)
    return last_end == 0 or newest - last_end >= window


def _backing_off(recent: list[Job], kind: str) -> bool:
    """The newest job of ``kind`` failed less than :data:`FAILED_BACKOFF` ago: do not start the
    same failing job on every pass (its error is on the job; a lead can start one by hand)."""
    last = next((j for j in recent if j.kind == kind), None)
    if last is None or last.status != "failed" or last.finished_at is None:
        return False
    return datetime.now(UTC) - last.finished_at < FAILED_BACKOFF


def evaluate(ws: Workspace, jobs: Jobs) -> list[Decision]:
    """One pass over every project: enqueue what is due (not twice: a queued or running job of
    that kind is left alone) and record each decision. A failing project does not stop the pass."""
    decisions: list[Decision] = []
    for project in ws.projects():
        try:
            decisions += _evaluate_one(ws.project(project.name), jobs)
        except LoopwrightError as exc:
            log.warning("automation skipped project %s: %s", project.name, exc.message)
    return decisions


def _evaluate_one(loop: Loop, jobs: Jobs) -> list[Decision]:
    if is_paused(loop):
        return []
    out = []
    recent = jobs.list(loop.project.name, None, 50)
    for kind, trigger in triggers(loop):
        if jobs.active(loop.project.name, kind) is not None or _backing_off(recent, kind):
            continue
        job = jobs.enqueue(loop.project.name, kind, {}, ACTOR, trigger)
        with loop._ctx.store.unit_of_work() as uow:
            loop._ctx.event(uow, ACTOR, DECIDED, ("job", job.id), trigger=trigger, kind=kind, job_id=job.id)
        out.append(Decision(loop.project.name, kind, trigger, job.id))
    return out
