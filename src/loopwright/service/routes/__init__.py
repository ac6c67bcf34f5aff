"""One router per resource; ``create_app`` includes every router in :data:`ROUTERS`."""

from __future__ import annotations

from loopwright.service.routes import (
    admin,
    dashboard,
    datasets,
    erasure,
    gold,
    jobs,
    labels,
    labelstudio,
    me,
    media,
    models,
    monitoring,
    projects,
    review,
    webhooks,
    workspace,
)

ROUTERS = [
    me.router,
    admin.router,  # people, uploads and pasted-YAML projects (the admin page)
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
    media.router,
    labelstudio.router,  # Label Studio's ML backend protocol, per project
]
