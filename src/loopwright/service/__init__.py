"""The REST face: ``create_app(workspace_or_db_url)`` builds a FastAPI app; ``serve`` runs it."""

from __future__ import annotations

from loopwright.service.app import create_app, serve
from loopwright.service.auth import Principal, Role, SqlAuthenticator, TokenAuthenticator

__all__ = ["Principal", "Role", "SqlAuthenticator", "TokenAuthenticator", "create_app", "serve"]
