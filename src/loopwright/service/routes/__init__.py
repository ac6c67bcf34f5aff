"""One router per resource; ``create_app`` includes every router in :data:`ROUTERS`."""

from __future__ import annotations

from loopwright.service.routes import me, projects, review

ROUTERS = [me.router, projects.router, review.router]
