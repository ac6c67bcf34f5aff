"""A project's state at a glance."""

from __future__ import annotations

from dataclasses import dataclass

from loopwright.domain import Certification, ModelVersion
from loopwright.loop import audit
from loopwright.loop.context import Context


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    project: str
    items: int
    routes: dict[str, int]  # decisions by route (an item the certified backlog accepted has two)
    open_tasks_by_tier: dict[int, int]
    annotations: int
    resolutions: int
    dataset_versions: int
    latest_dataset: str | None
    model_versions: int
    champion: ModelVersion | None
    routing: str  # "fixed threshold 0.90", "certified …" or "uncertified …"
    certification: Certification | None
    decided_items: int  # items with a routing decision
    audits_waiting: int  # answered audits waiting for another answer (a second opinion, the tier's overlap)

    @property
    def automation_rate(self) -> float:
        """Share of the routed items that were auto-accepted, at ingest or from the backlog."""
        return self.routes.get("auto_accept", 0) / self.decided_items if self.decided_items else 0.0


def status(ctx: Context) -> ProjectStatus:
    pid = ctx.project.id
    with ctx.store.unit_of_work() as uow:
        datasets = uow.datasets.list(pid)
        return ProjectStatus(
            project=ctx.project.name,
            items=uow.items.count(pid),
            routes=uow.decisions.count_by_route(pid),
            open_tasks_by_tier=uow.tasks.count_open_by_tier(pid),
            annotations=uow.annotations.count(pid),
            resolutions=uow.resolutions.count(pid),
            dataset_versions=len(datasets),
            latest_dataset=datasets[-1].id if datasets else None,
            model_versions=len(uow.models.list(pid)),
            champion=uow.models.champion(pid),
            routing=_routing(ctx, cert := uow.certifications.latest(pid)),
            certification=cert,
            decided_items=uow.decisions.count_items(pid),
            audits_waiting=uow.tasks.count_open_answered(pid, audit.TASK_REASONS),
        )


def _routing(ctx: Context, cert: Certification | None) -> str:
    """How auto-accept is decided now, in one line."""
    certify = ctx.config.routing.certify
    if certify is None:
        return f"fixed threshold {ctx.config.routing.accept_threshold:.3f}"
    goal = f"error ≤ {certify.epsilon:g} with probability ≥ {1 - certify.delta:g}"
    if cert is None:
        return f"uncertified (no champion yet): everything goes to review; goal {goal}"
    if cert.threshold is None:
        return f"uncertified: everything goes to review; {cert.reason}"
    return (
        f"certified threshold {cert.threshold:.4f}: {goal} "
        f"({cert.n_errors} errors in {cert.n_evidence} audited items at or above it)"
    )
