"""Users of the REST service: accounts, per-project memberships, API tokens.

Only the SHA-256 of a token is stored; the token itself is returned once by ``issue_token``.
Roles are plain strings here; the service decides what each may do.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update

from loopwright.store.sql.repositories import Repo, utcnow
from loopwright.store.sql.tables import api_tokens, memberships, projects, users


def hash_token(token: str) -> str:
    """SHA-256 hex of an API token: what is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    admin: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MembershipRow:
    project: str
    role: str
    tiers: tuple[int, ...] | None  # None: every tier


@dataclass(frozen=True, slots=True)
class Account:
    """A user with their memberships by project name: what a token resolves to."""

    user: User
    memberships: dict[str, MembershipRow] = field(default_factory=dict)


class SqlUserRepo(Repo):
    def add(self, name: str, admin: bool = False) -> User:
        values = {"name": name, "admin": admin, "created_at": utcnow()}
        return User(**self._insert(users, values, conflict=f"user {name!r} already exists")._mapping)

    def get(self, name: str) -> User:
        return User(**self._one(select(users).where(users.c.name == name), f"user {name!r}")._mapping)

    def add_membership(
        self, user: str, project: str, role: str, tiers: Sequence[int] | None = None
    ) -> MembershipRow:
        user_id = self.get(user).id
        project_id = self._one(
            select(projects.c.id).where(projects.c.name == project), f"project {project!r}"
        )[0]
        values = {
            "user_id": user_id,
            "project_id": project_id,
            "role": role,
            "tiers": None if tiers is None else [int(t) for t in tiers],
            "created_at": utcnow(),
        }
        self._insert(memberships, values, conflict=f"user {user!r} is already a member of {project!r}")
        return MembershipRow(project, role, None if tiers is None else tuple(int(t) for t in tiers))

    def issue_token(self, user: str) -> str:
        """A new random token for ``user``; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        values = {"user_id": self.get(user).id, "token_hash": hash_token(token), "created_at": utcnow()}
        self._insert(api_tokens, values)
        return token

    def revoke_token(self, token: str) -> bool:
        stmt = (
            update(api_tokens)
            .where(api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return bool(self._conn.execute(stmt).rowcount)

    def list(self) -> list[tuple[Account, int]]:
        """Every account with its memberships and its number of live tokens, by name."""
        live = (
            select(api_tokens.c.user_id, func.count().label("n"))
            .where(api_tokens.c.revoked_at.is_(None))
            .group_by(api_tokens.c.user_id)
        )
        tokens = {uid: n for uid, n in self._conn.execute(live)}
        stmt_m = select(memberships.c.user_id, projects.c.name, memberships.c.role, memberships.c.tiers).join(
            projects, projects.c.id == memberships.c.project_id
        )
        found: dict[int, dict[str, MembershipRow]] = {}
        for uid, name, role, tiers in self._conn.execute(stmt_m):
            found.setdefault(uid, {})[name] = MembershipRow(
                name, role, None if tiers is None else tuple(tiers)
            )
        rows = self._conn.execute(select(users).order_by(users.c.name))
        return [
            (Account(User(**r._mapping), dict(sorted(found.get(r.id, {}).items()))), tokens.get(r.id, 0))
            for r in rows
        ]

    def resolve(self, token: str) -> Account | None:
        """The account of a live token, or None."""
        stmt = (
            select(users)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .where(api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None))
        )
        row = self._conn.execute(stmt).first()
        if row is None:
            return None
        user = User(**row._mapping)
        stmt_m = (
            select(projects.c.name, memberships.c.role, memberships.c.tiers)
            .join(projects, projects.c.id == memberships.c.project_id)
            .where(memberships.c.user_id == user.id)
        )
        found = {
            name: MembershipRow(name, role, None if tiers is None else tuple(tiers))
            for name, role, tiers in self._conn.execute(stmt_m)
        }
        return Account(user, found)
