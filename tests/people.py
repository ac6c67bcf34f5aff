"""Users for whole-service tests: members of one project, each with a bearer token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopwright.service import Role, TokenAuthenticator

# a member's role, or (role, the tiers they work); None: a user with no membership
Member = Role | tuple[Role, list[int] | None] | None


def members(
    project: str, roles: Mapping[str, Member], admins: tuple[str, ...] = (), auth: Any = None
) -> tuple[Any, dict[str, str]]:
    """``auth`` (default: a new in-memory :class:`TokenAuthenticator`) with a user per name of
    ``roles`` and of ``admins`` (admins, no membership), each a member of ``project`` in their
    role; returns it and each user's token."""
    auth = TokenAuthenticator() if auth is None else auth
    tokens = {}
    for name in dict.fromkeys([*admins, *roles]):
        auth.add_user(name, admin=name in admins)
        member = roles.get(name)
        if member is not None:
            role, tiers = member if isinstance(member, tuple) else (member, None)
            auth.add_membership(name, project, role, tiers)
        tokens[name] = auth.issue_token(name)
    return auth, tokens


def bearer(tokens: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each user's ``Authorization`` header."""
    return {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
