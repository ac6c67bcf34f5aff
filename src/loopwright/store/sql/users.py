"""Users of the REST service: accounts, per-project memberships, API tokens, UI sessions.

Only the SHA-256 of a token is stored; the token itself is returned once by ``issue_token``.
A web UI session is opened with a live token: the browser's cookie holds a random session id,
only its hash is stored, and it ends at logout, at its expiry, or when its token is revoked.
Roles are plain strings here; the service decides what each may do.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, func, or_, select, update
from sqlalchemy.exc import OperationalError

from loopwright.store.sql.repositories import Repo, utcnow
from loopwright.store.sql.tables import api_tokens, memberships, projects, ui_sessions, users

TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


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
class TokenRow:
    """An API token as listed: never the token, which is not stored."""

    id: int
    user: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


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
        return bool(self._revoke(api_tokens.c.token_hash == hash_token(token)))

    def revoke_id(self, token_id: int) -> bool:
        """Revoke the live token with this id; False if there is none."""
        return bool(self._revoke(api_tokens.c.id == token_id))

    def revoke_user(self, user: str) -> int:
        """Revoke every live token of ``user`` (NotFound for an unknown user); how many."""
        return self._revoke(api_tokens.c.user_id == self.get(user).id)

    def _revoke(self, where: ColumnElement[bool]) -> int:
        stmt = update(api_tokens).where(where, api_tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        return int(self._conn.execute(stmt).rowcount)

    def tokens(self, user: str | None = None) -> list[TokenRow]:
        """Tokens (all users, or one), oldest first, with when they were made, used, revoked."""
        stmt = (
            select(api_tokens.c.id, users.c.name, api_tokens.c.created_at, api_tokens.c.last_used_at)
            .add_columns(api_tokens.c.revoked_at)
            .join(users, users.c.id == api_tokens.c.user_id)
            .order_by(api_tokens.c.id)
        )
        if user is not None:
            stmt = stmt.where(api_tokens.c.user_id == self.get(user).id)
        return [TokenRow(*row) for row in self._conn.execute(stmt)]

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
        """The account of a live token, or None; notes when the token was last used."""
        stmt = (
            select(users, api_tokens.c.id.label("token_id"), api_tokens.c.last_used_at)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .where(api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None))
        )
        row = self._conn.execute(stmt).first()
        return None if row is None else self._account(row)

    def open_session(self, token: str, seconds: int) -> str | None:
        """A new UI session id for a live token, valid ``seconds``; None for a bad token."""
        row = self._conn.execute(
            select(api_tokens.c.id).where(
                api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            return None
        session = secrets.token_urlsafe(32)
        now = utcnow()
        values = {
            "token_id": row[0],
            "session_hash": hash_token(session),
            "created_at": now,
            "expires_at": now + timedelta(seconds=seconds),
        }
        self._insert(ui_sessions, values)
        return session

    def resolve_session(self, session: str) -> Account | None:
        """The account of a live UI session whose token is live, or None."""
        stmt = (
            select(users, api_tokens.c.id.label("token_id"), api_tokens.c.last_used_at)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .join(ui_sessions, ui_sessions.c.token_id == api_tokens.c.id)
            .where(
                ui_sessions.c.session_hash == hash_token(session),
                ui_sessions.c.ended_at.is_(None),
                ui_sessions.c.expires_at > utcnow(),
                api_tokens.c.revoked_at.is_(None),
            )
        )
        row = self._conn.execute(stmt).first()
        return None if row is None else self._account(row)

    def end_session(self, session: str) -> bool:
        """Log out: end a live UI session."""
        stmt = (
            update(ui_sessions)
            .where(ui_sessions.c.session_hash == hash_token(session), ui_sessions.c.ended_at.is_(None))
            .values(ended_at=utcnow())
        )
        return bool(self._conn.execute(stmt).rowcount)

    def _account(self, row: Row[object]) -> Account:
        """The account of a resolved row (user columns, token_id, last_used_at); touches the token."""
        mapping = row._mapping
        now = utcnow()
        last = mapping["last_used_at"]
        if last is None or now - last >= TOUCH_EVERY:
            stale = or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at <= now - TOUCH_EVERY)
            touch = update(api_tokens).where(api_tokens.c.id == mapping["token_id"], stale)
            try:  # best effort: a reader (GET, SQLite read mode) must not fail or wait for a writer
                with self._conn.begin_nested():
                    self._conn.execute(touch.values(last_used_at=now))
            except OperationalError:  # busy: the write lock is taken; a later request notes the use
                pass
        user = User(mapping["id"], mapping["name"], mapping["admin"], mapping["created_at"])
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
