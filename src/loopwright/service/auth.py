"""Who is calling and what they may do.

A caller is a :class:`Principal`: a name, a global admin flag, and per-project memberships
(a :class:`Role` and, for annotators and experts, the tiers they work on). An
:class:`Authenticator` turns the bearer token of ``Authorization: Bearer <token>`` into a
principal (or ``None``: 401). :class:`SqlAuthenticator` keeps users, memberships and token
hashes in the store (:mod:`loopwright.store.sql.users`); :class:`TokenAuthenticator` keeps them
in memory (tests, embedding). Both store only the SHA-256 of each token.

Permissions, per project (admins may do everything; non-members get 404, never 403):

===========================================  =====  ====  =======  =========  ======  ======
action                                       admin  lead  service  annotator  expert  viewer
===========================================  =====  ====  =======  =========  ======  ======
read: status, list, models, datasets         yes    yes   yes      yes        yes     yes
ingest, predict, feedback                    yes    no    yes      no         no      no
events                                       yes    yes   yes      no         yes     yes
review: next task, leases                    yes    yes   no       own tiers  yes     no
monitor: dashboard, drift, lineage, skills   yes    yes   yes      no         yes     yes
manage: promote, rollback, webhooks, gold    yes    yes   no       no         no      no
===========================================  =====  ====  =======  =========  ======  ======
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from loopwright.errors import NotFound
from loopwright.service.errors import Forbidden
from loopwright.store.sql import SqlStore
from loopwright.store.sql.users import SqlUserRepo, hash_token


class Role(StrEnum):
    LEAD = "lead"
    SERVICE = "service"
    ANNOTATOR = "annotator"
    EXPERT = "expert"
    VIEWER = "viewer"


class Action(StrEnum):
    READ = "read"
    INGEST = "ingest"
    FEEDBACK = "feedback"
    EVENTS = "events"
    REVIEW = "review"
    MONITOR = "monitor"
    MANAGE = "manage"


ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ: frozenset(Role),
    Action.INGEST: frozenset({Role.SERVICE}),
    Action.FEEDBACK: frozenset({Role.SERVICE}),
    Action.EVENTS: frozenset({Role.LEAD, Role.SERVICE, Role.EXPERT, Role.VIEWER}),
    Action.REVIEW: frozenset({Role.LEAD, Role.ANNOTATOR, Role.EXPERT}),
    Action.MONITOR: frozenset({Role.LEAD, Role.SERVICE, Role.EXPERT, Role.VIEWER}),
    Action.MANAGE: frozenset({Role.LEAD}),
}


@dataclass(frozen=True, slots=True)
class Membership:
    role: Role
    tiers: tuple[int, ...] | None = None  # None: every tier


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    admin: bool = False
    memberships: dict[str, Membership] = field(default_factory=dict)

    def is_member(self, project: str) -> bool:
        return self.admin or project in self.memberships

    def require(self, project: str, action: Action) -> Membership | None:
        """The caller's membership if ``action`` is allowed (None for admins); else raise.

        Non-members get the same :class:`NotFound` as for a project that does not exist."""
        if self.admin:
            return None
        membership = self.memberships.get(project)
        if membership is None:
            raise NotFound(f"project {project!r} does not exist")  # as the store says
        if membership.role not in ALLOWED[action]:
            raise Forbidden(f"role {membership.role.value!r} may not {action.value} in project {project!r}")
        return membership

    def review_tiers(self, project: str, requested: Sequence[int] | None) -> list[int] | None:
        """The tiers to draw tasks from: the requested ones, limited to the member's tiers."""
        membership = self.require(project, Action.REVIEW)
        allowed = None if membership is None else membership.tiers
        if allowed is None:
            return None if requested is None else list(requested)
        if requested is None:
            return list(allowed)
        outside = sorted(set(requested) - set(allowed))
        if outside:
            raise Forbidden(f"tiers {outside} are not yours in project {project!r}; yours: {list(allowed)}")
        return list(requested)


OPEN_PRINCIPAL = Principal("local", admin=True)


class Authenticator(Protocol):
    def resolve(self, token: str) -> Principal | None: ...


class TokenAuthenticator:
    """Users, memberships and tokens in memory; only token hashes are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, Principal] = {}
        self._tokens: dict[str, str] = {}  # sha256 hex -> user name

    def add_user(self, name: str, admin: bool = False) -> Principal:
        with self._lock:
            self._users[name] = Principal(name, admin, {})
            return self._users[name]

    def add_membership(
        self, user: str, project: str, role: Role | str, tiers: Sequence[int] | None = None
    ) -> Membership:
        membership = Membership(Role(role), None if tiers is None else tuple(tiers))
        with self._lock:
            old = self._users[user]
            self._users[user] = Principal(old.name, old.admin, {**old.memberships, project: membership})
        return membership

    def issue_token(self, user: str) -> str:
        """A new random token for ``user``; shown once, only its hash is kept."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            if user not in self._users:
                raise NotFound(f"no user named {user!r}")
            self._tokens[hash_token(token)] = user
        return token

    def resolve(self, token: str) -> Principal | None:
        with self._lock:
            user = self._tokens.get(hash_token(token))
            return None if user is None else self._users.get(user)


class SqlAuthenticator:
    """Users, memberships and token hashes in the SQL store; each call is one transaction."""

    def __init__(self, store: SqlStore) -> None:
        self._engine = store.engine

    def add_user(self, name: str, admin: bool = False) -> Principal:
        with self._engine.begin() as conn:
            SqlUserRepo(conn).add(name, admin)
        return Principal(name, admin, {})

    def add_membership(
        self, user: str, project: str, role: Role | str, tiers: Sequence[int] | None = None
    ) -> Membership:
        role = Role(role)
        with self._engine.begin() as conn:
            row = SqlUserRepo(conn).add_membership(user, project, role.value, tiers)
        return Membership(role, row.tiers)

    def issue_token(self, user: str) -> str:
        with self._engine.begin() as conn:
            return SqlUserRepo(conn).issue_token(user)

    def revoke_token(self, token: str) -> bool:
        with self._engine.begin() as conn:
            return SqlUserRepo(conn).revoke_token(token)

    def resolve(self, token: str) -> Principal | None:
        with self._engine.begin() as conn:
            account = SqlUserRepo(conn).resolve(token)
        if account is None:
            return None
        found = {p: Membership(Role(m.role), m.tiers) for p, m in account.memberships.items()}
        return Principal(account.user.name, account.user.admin, found)
