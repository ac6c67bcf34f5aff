"""One router per resource; ``create_app`` includes every router in :data:`ROUTERS`."""

from __future__ import annotations

from loopwright.service.routes import (
    dashboard,
    datasets,
    erasure,
    gold,
    jobs,
    labels,
    me,
    models,
    monitoring,
    projects,
    review,
    webhooks,
    workspace,
)

ROUTERS = [
    me.router,
    projects.router,
    review.router,
    labels.router,
    gold.router,
    datasets.router,
    erasure.router,
    models.router,
    monitoring.router,
    dashboard.router,
    webhooks.router,
    jobs.router,
    workspace.router,
]
