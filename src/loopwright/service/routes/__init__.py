"""One router per resource; ``create_app`` includes every router in :data:`ROUTERS`."""

from __future__ import annotations

from loopwright.service.routes import projects, review

ROUTERS = [projects.router, review.router]
