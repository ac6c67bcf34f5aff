"""Who is calling and what they may do.

A caller is a :class:`Principal`: a name, a global admin flag, and per-project memberships
(a :class:`Role` and, for annotators and experts, the tiers they work on). An
:class:`Authenticator` turns the bearer token of ``Authorization: Bearer <token>`` into a
principal (or ``None``: 401). :class:`SqlAuthenticator` keeps users, memberships and token
hashes in the store (:mod:`loopwright.store.sql.users`); :class:`TokenAuthenticator` keeps them
in memory (tests, embedding). Both store only the SHA-256 of each token. The web UI logs in
once with a token and then holds a session (``open_session``): an httpOnly cookie with a
random id whose hash is stored, ended by logout, expiry or revoking the token.

Permissions, per project (admins may do everything; non-members get 404, never 403):

===========================================  =====  ====  =======  =========  ======  ======
action                                       admin  lead  service  annotator  expert  viewer
===========================================  =====  ====  =======  =========  ======  ======
read: status, list, models, datasets         yes    yes   yes      yes        yes     yes
ingest, predict, feedback                    yes    no    yes      no         no      no
events                                       yes    yes   yes      no         no      yes
review: next task, leases                    yes    yes   no       own tiers  yes     no
monitor: dashboard, drift, lineage, skills   yes    yes   yes      no         no      yes
manage: promote, rollback, webhooks, gold    yes    yes   no       no         no      no
erase: an item and its history (Art. 17)     yes    yes   no       no         no      no
see gold: which tasks are gold, records      yes    yes   no       no         no      no
see votes: earlier labels, posterior         yes    yes   no       no         tier≥2  no
===========================================  =====  ====  =======  =========  ======  ======

Review is blind and gold is hidden from those it measures (:mod:`loopwright.service.blind`):
without ``see gold`` a gold task looks like any other task; without ``see votes`` on a task's
tier a reviewer sees no earlier annotation, posterior or skill of others on it. Experts see
votes on escalation tiers (2 and up) only, where judging a dispute is the work. Experts answer
gold checks too, so they get neither the event log (``gold.answered`` carries correctness,
``annotation.submitted`` every label) nor the monitoring views (every annotation, every
annotator's gold record, updated at once): either would tell them which of their tasks was gold.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from loopwright.errors import NotFound
from loopwright.service.errors import Forbidden
from loopwright.store.sql import SqlStore
from loopwright.store.sql.users import Account, SqlUserRepo, hash_token


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
    PUBLISH_MODEL = "publish_model"  # register, upload predictions for and gate a model trained elsewhere
    ERASE = "erase"
    SEE_GOLD = "see_gold"
    SEE_VOTES = "see_votes"


ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ: frozenset(Role),
    Action.INGEST: frozenset({Role.SERVICE}),
    Action.FEEDBACK: frozenset({Role.SERVICE}),
    Action.EVENTS: frozenset({Role.LEAD, Role.SERVICE, Role.VIEWER}),  # not experts: see below
    Action.REVIEW: frozenset({Role.LEAD, Role.ANNOTATOR, Role.EXPERT}),
    Action.MONITOR: frozenset({Role.LEAD, Role.SERVICE, Role.VIEWER}),
    Action.MANAGE: frozenset({Role.LEAD}),
    Action.PUBLISH_MODEL: frozenset({Role.LEAD, Role.SERVICE}),  # the pipeline's service account
    Action.ERASE: frozenset({Role.LEAD}),  # its own action: who may destroy data can change alone
    Action.SEE_GOLD: frozenset({Role.LEAD}),
    Action.SEE_VOTES: frozenset({Role.LEAD, Role.EXPERT}),  # experts: tiers >= MIN_VOTES_TIER only
}


MIN_VOTES_TIER = 2  # experts see earlier votes from this tier up: disputes and escalations


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

    def may(self, project: str, action: Action, tier: int | None = None) -> bool:
        """Whether ``action`` is allowed (never raises); ``see_votes`` also looks at ``tier``."""
        if self.admin:
            return True
        membership = self.memberships.get(project)
        if membership is None or membership.role not in ALLOWED[action]:
            return False
        if action is Action.SEE_VOTES and membership.role is Role.EXPERT:
            return tier is not None and tier >= MIN_VOTES_TIER
        return True

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


SESSION_SECONDS = 12 * 3600  # a UI session lasts one working day


class Authenticator(Protocol):
    def resolve(self, token: str) -> Principal | None: ...

    def open_session(self, token: str) -> str | None: ...

    def resolve_session(self, session: str) -> Principal | None: ...

    def end_session(self, session: str) -> None: ...


class TokenAuthenticator:
    """Users, memberships and tokens in memory; only token hashes are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, Principal] = {}
        self._tokens: dict[str, str] = {}  # sha256 hex -> user name
        self._sessions: dict[str, str] = {}  # sha256 hex of a session id -> token hash

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

    def open_session(self, token: str) -> str | None:
        if self.resolve(token) is None:
            return None
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[hash_token(session)] = hash_token(token)
        return session

    def resolve_session(self, session: str) -> Principal | None:
        with self._lock:
            user = self._tokens.get(self._sessions.get(hash_token(session), ""))
            return None if user is None else self._users.get(user)

    def end_session(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(hash_token(session), None)


AUTH_CACHE_SECONDS = 5.0  # a resolved caller is reused this long: the bound on revocation lag
AUTH_CACHE_SIZE = 10_000  # callers kept per process; the cache is emptied when it is full


class SqlAuthenticator:
    """Users, memberships and token hashes in the SQL store; each call is one transaction.

    A resolved token or session is cached in this process for ``cache_seconds`` (default
    :data:`AUTH_CACHE_SECONDS`), so a busy annotator costs one auth query per 5 s instead of one
    per request. Staleness is bounded by that: a token revoked, a membership changed or a
    session ended elsewhere (the CLI, another server process) takes effect here within
    ``cache_seconds``; through this object it takes effect at once (the cache is emptied).
    Unknown tokens are never cached. ``cache_seconds=0`` turns the cache off.
    """

    def __init__(self, store: SqlStore, cache_seconds: float = AUTH_CACHE_SECONDS) -> None:
        self._engine = store.engine
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    def _cached(self, key: str) -> Principal | None:
        hit = self._cache.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def _remember(self, key: str, found: Principal | None) -> Principal | None:
        if found is not None and self._ttl > 0:
            with self._cache_lock:
                if len(self._cache) >= AUTH_CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = (time.monotonic() + self._ttl, found)
        return found

    def forget(self) -> None:
        """Empty the cache: every caller is looked up again on their next request."""
        with self._cache_lock:
            self._cache.clear()

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
        self.forget()
        return Membership(role, row.tiers)

    def issue_token(self, user: str) -> str:
        with self._engine.begin() as conn:
            return SqlUserRepo(conn).issue_token(user)

    def revoke_token(self, token: str) -> bool:
        with self._engine.begin() as conn:
            revoked = SqlUserRepo(conn).revoke_token(token)
        self.forget()
        return revoked

    def cached(self, token: str) -> Principal | None:
        """The principal of ``token`` if this process resolved it within the cache time (no query)."""
        return self._cached("t" + hash_token(token))

    def resolve(self, token: str) -> Principal | None:
        key = "t" + hash_token(token)
        if (hit := self._cached(key)) is not None:
            return hit
        with self._engine.begin() as conn:
            return self._remember(key, _principal(SqlUserRepo(conn).resolve(token)))

    def open_session(self, token: str) -> str | None:
        with self._engine.begin() as conn:
            return SqlUserRepo(conn).open_session(token, SESSION_SECONDS)

    def resolve_session(self, session: str) -> Principal | None:
        key = "s" + hash_token(session)
        if (hit := self._cached(key)) is not None:
            return hit
        with self._engine.begin() as conn:
            return self._remember(key, _principal(SqlUserRepo(conn).resolve_session(session)))

    def end_session(self, session: str) -> None:
        with self._engine.begin() as conn:
            SqlUserRepo(conn).end_session(session)
        self.forget()


def _principal(account: Account | None) -> Principal | None:
    if account is None:
        return None
    found = {p: Membership(Role(m.role), m.tiers) for p, m in account.memberships.items()}
    return Principal(account.user.name, account.user.admin, found)
