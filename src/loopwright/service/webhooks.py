"""Signed webhooks: every domain event, at least once, in order per subscription.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): each request carries

* ``webhook-id``: ``evt_<event id>``, the same on every retry: the receiver's idempotency key;
* ``webhook-timestamp``: unix seconds of this attempt;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``,

with the secret shown once, as ``whsec_<base64 of the key bytes>``. :func:`verify` checks a
request the way a receiver should. The body is JSON::

    {"type": "items.ingested", "timestamp": "<event time, ISO 8601>",
     "data": {"event_id": 17, "project": "toy", "actor": "svc", "action": "items.ingested",
              "subject_type": "project", "subject_id": "toy", "payload": {...}}}

Delivery: the :class:`Dispatcher` queues a delivery row for each event after a
subscription's cursor that its filter matches, then sends what is due. A 2xx answer is
delivered; anything else (or no answer within the timeout) is tried again after the next
delay of the backoff schedule, and after the last try the delivery is ``dead`` (listed by the
API, which can requeue it). A subscription's deliveries go out one at a time in event order:
a failing one holds back the newer ones until it succeeds or is dead, so a receiver that is
down for a while gets everything, in order, once it is back. Requests never wait on any of
this: the dispatcher runs in its own thread and only reads the event log.

Event ids on PostgreSQL are handed out before commit, so a later id can become visible before
an earlier one. The dispatcher only moves past a missing id once every transaction that was
running when it saw the gap has ended (or, should one hang, after ``gap_timeout``).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from loopwright.domain import Event, Project
from loopwright.errors import Invalid, LoopwrightError
from loopwright.loop.context import Clock, utc_now
from loopwright.loop.ports import Store
from loopwright.store.sql import SqlStore
from loopwright.store.sql.repositories import SqlEventRepo
from loopwright.store.sql.webhooks import (
    DEAD,
    DELIVERED,
    PENDING,
    STATUSES,
    Delivery,
    Outgoing,
    SqlWebhookRepo,
    Subscription,
)

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# seconds to wait after failed attempt 1, 2, ...; one attempt more than delays, then dead
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200)
TOLERANCE_S = 300
MAX_FILTERS = 50

__all__ = [
    "DEFAULT_SCHEDULE",
    "STATUSES",
    "Delivery",
    "Dispatcher",
    "RunReport",
    "Subscription",
    "WebhookVerificationError",
    "Webhooks",
    "event_body",
    "matches",
    "message_id",
    "new_secret",
    "sign",
    "signed_headers",
    "verify",
]


# --- signing (Standard Webhooks) ------------------------------------------------------------


class WebhookVerificationError(Exception):
    """A webhook request whose headers are missing, stale or whose signature does not match."""


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc


def _text(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``"<msg_id>.<timestamp>.<body>"`` with the secret's key."""
    signed = f"{msg_id}.{timestamp}.".encode() + _text(body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check a webhook request as a receiver; returns the parsed JSON body.

    Raises :class:`WebhookVerificationError` when a header is missing, the timestamp is more
    than ``tolerance`` seconds from ``now`` (default: the time now), or no ``v1`` signature
    matches. Compares in constant time; accepts several space-separated signatures.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lower.get("webhook-id"),
        lower.get("webhook-timestamp"),
        lower.get("webhook-signature"),
    )
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook-timestamp {stamp!r} is not unix seconds") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance:g} s away from now")
    expected = sign(secret, msg_id, timestamp, body).encode("ascii")
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode("ascii"), expected):
            return json.loads(_text(body))
    raise WebhookVerificationError("no matching signature")


def message_id(event_id: int) -> str:
    """The ``webhook-id`` of an event: the same on every attempt, the receiver's idempotency key."""
    return f"evt_{event_id}"


def event_body(event: Event, project: str) -> bytes:
    """The JSON body sent for ``event`` (the same bytes on every attempt)."""
    data = {
        "event_id": event.id,
        "project": project,
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "payload": event.data,
    }
    doc = {"type": event.action, "timestamp": event.at.isoformat(), "data": data}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")


def matches(prefixes: Sequence[str], action: str) -> bool:
    """An empty filter takes every event; else the action must start with one of the prefixes."""
    return not prefixes or any(action.startswith(p) for p in prefixes)


def validate(url: str, prefixes: Sequence[str]) -> tuple[str, list[str]]:
    """The URL and filter of a new subscription, or :class:`Invalid` naming what is wrong."""
    errors: list[tuple[str, str]] = []
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(("url", "must be an absolute http:// or https:// URL"))
    elif len(url) > 2000:
        errors.append(("url", "must be at most 2000 characters"))
    cleaned = list(dict.fromkeys(p.strip() for p in prefixes))
    if len(cleaned) > MAX_FILTERS:
        errors.append(("events", f"at most {MAX_FILTERS} prefixes"))
    if any(not p or len(p) > 100 for p in cleaned):
        errors.append(("events", "each prefix must have 1 to 100 characters"))
    if errors:
        raise Invalid("invalid webhook", errors)
    return url.strip(), cleaned


# --- the API's use cases ----------------------------------------------------------------------


def _sql(store: Store) -> SqlStore:
    if not isinstance(store, SqlStore):
        raise LoopwrightError("webhooks need the SQL store")
    return store


class Webhooks:
    """Subscribe, list, unsubscribe, list deliveries, requeue a dead delivery; one transaction each.

    Subscribing and unsubscribing are logged as ``webhook.created`` / ``webhook.deleted`` events
    (without the URL, which may hold a token; only its host).
    """

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._engine = _sql(store).engine
        self._clock = clock

    def subscribe(self, project: Project, url: str, prefixes: Sequence[str], actor: str) -> Subscription:
        """A new subscription with a fresh secret (returned here, and only here)."""
        url, cleaned = validate(url, prefixes)
        with self._engine.begin() as conn:
            repo = SqlWebhookRepo(conn)
            sub = repo.add(project.id, url, new_secret(), cleaned, actor, self._clock())
            created = SqlEventRepo(conn).add(
                project.id,
                actor,
                "webhook.created",
                "webhook",
                str(sub.id),
                {"host": urlsplit(url).hostname, "events": cleaned},
            )
            repo.advance(sub.id, created.id)  # its own creation is not news to it
        return replace(sub, last_event_id=max(sub.last_event_id, created.id))

    def list(self, project: Project) -> list[Subscription]:
        with self._engine.begin() as conn:
            return SqlWebhookRepo(conn).list(project.id)

    def get(self, project: Project, subscription_id: int) -> Subscription:
        with self._engine.begin() as conn:
            return SqlWebhookRepo(conn).get(project.id, subscription_id)

    def unsubscribe(self, project: Project, subscription_id: int, actor: str) -> None:
        with self._engine.begin() as conn:
            sub = SqlWebhookRepo(conn).deactivate(project.id, subscription_id)
            SqlEventRepo(conn).add(project.id, actor, "webhook.deleted", "webhook", str(sub.id), {})

    def deliveries(
        self,
        project: Project,
        subscription_id: int,
        status: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> builtins.list[Delivery]:
        with self._engine.begin() as conn:
            repo = SqlWebhookRepo(conn)
            sub = repo.get(project.id, subscription_id)
            return repo.deliveries(sub.id, status, limit, before)

    def retry(self, project: Project, subscription_id: int, delivery_id: int) -> Delivery:
        """Requeue a dead delivery: due now, with a full set of attempts (Conflict if not dead)."""
        with self._engine.begin() as conn:
            repo = SqlWebhookRepo(conn)
            sub = repo.get(project.id, subscription_id)
            return repo.requeue(sub.id, delivery_id, self._clock())


# --- the dispatcher ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one :meth:`Dispatcher.run_once` did."""

    queued: int = 0  # delivery rows created from new events
    attempted: int = 0
    delivered: int = 0
    failed: int = 0  # attempts that failed (retried later or dead)
    dead: int = 0


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None


class Dispatcher:
    """Queues and sends webhook deliveries; safe to run in several processes on one database.

    :meth:`run_once` does one round (deterministic given ``now``: for tests with a manual
    clock); :meth:`start` runs rounds every ``poll`` seconds in a daemon thread until
    :meth:`stop`. ``schedule`` holds the delays after each failed attempt (so
    ``len(schedule) + 1`` attempts in all); each delay is spread by ±``jitter`` (a fraction).
    ``timeout`` bounds each phase of a request (connect, write, read) in seconds.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock = utc_now,
        *,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        jitter: float = 0.1,
        timeout: float = 5.0,
        poll: float = 0.5,
        batch: int = 100,
        lease: float = 120.0,
        min_gap_age: float = 1.0,
        gap_timeout: float = 300.0,
        timestamp: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self._engine = _sql(store).engine
        self._clock = clock
        self.schedule = tuple(float(s) for s in schedule)
        self.max_attempts = len(self.schedule) + 1
        self.jitter = jitter
        self.poll = poll
        self.batch = batch
        self.lease = lease
        self.min_gap_age = min_gap_age
        self.gap_timeout = gap_timeout
        self._timestamp = timestamp
        self._timeout = timeout
        self._client = client or self._new_client()
        self._owns_client = client is None
        self._rng = random.Random()
        self._horizon: int | None = None  # every event id up to here is committed (or never will be)
        self._gaps: dict[int, tuple[float, frozenset[int] | None]] = {}  # first missing id -> (seen, txs)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._round = threading.Lock()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(timeout=httpx.Timeout(self._timeout), follow_redirects=False, trust_env=False)

    # -- one round -------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> RunReport:
        """Queue deliveries for new events, then send every due subscription's deliveries in order."""
        with self._round:
            current: Clock = self._clock if now is None else (lambda: now)
            queued = self._queue(current())
            totals = [0, 0, 0, 0]
            start = current()
            with self._engine.begin() as conn:
                repo = SqlWebhookRepo(conn)
                claimed = repo.claim_due(start, start + timedelta(seconds=self.lease), self.batch)
                work = [(sub, repo.pending(sub.id, self.batch)) for sub in claimed]
            for sub, outgoing in work:
                try:
                    for i, n in enumerate(self._send_all(sub, outgoing, current)):
                        totals[i] += n
                finally:
                    with self._engine.begin() as conn:
                        SqlWebhookRepo(conn).release(sub.id)
            return RunReport(queued, *totals)

    def _queue(self, now: datetime) -> int:
        """Delivery rows for the settled events after each subscription's cursor; cursors move."""
        with self._engine.begin() as conn:
            repo = SqlWebhookRepo(conn)
            active = repo.active()
            if not active:
                self._horizon = None
                return 0
            if self._horizon is None:
                self._horizon = min(s.last_event_id for s in active)
            horizon = self._settle(repo)
            queued = 0
            for sub in active:
                if sub.last_event_id >= horizon:
                    continue
                found = repo.project_events(sub.project_id, sub.last_event_id, horizon, self.batch * 10)
                cursor = found[-1].id if len(found) == self.batch * 10 else horizon
                queued += repo.enqueue(sub.id, [e.id for e in found if matches(sub.events, e.action)], now)
                repo.advance(sub.id, cursor)
            return queued

    def _settle(self, repo: SqlWebhookRepo) -> int:
        """Move the horizon over the event ids that are there, and over gaps known to be final."""
        assert self._horizon is not None
        ids = repo.event_ids_after(self._horizon, 10_000)
        expected = self._horizon + 1
        for event_id in ids:
            if event_id > expected and not self._gap_is_final(expected, repo):
                break
            self._horizon, expected = event_id, event_id + 1
        self._gaps = {k: v for k, v in self._gaps.items() if k > self._horizon}
        return self._horizon

    def _gap_is_final(self, first_missing: int, repo: SqlWebhookRepo) -> bool:
        """Whether a missing event id can no longer turn up.

        On PostgreSQL a transaction takes its event id before it commits, so a later id can be
        visible first. The transaction holding the missing id had begun writing before the gap
        was seen; ``min_gap_age`` later it surely has a transaction id, so once every
        transaction running then has ended, the id was rolled back for good. Should one of
        them hang, the gap is skipped after ``gap_timeout``. SQLite never leaves a gap behind
        a committed id.
        """
        running = repo.in_progress()
        if running is None:
            return True
        now = time.monotonic()
        first_seen, waited_for = self._gaps.setdefault(first_missing, (now, None))
        age = now - first_seen
        if age >= self.gap_timeout:
            log.warning("webhooks: skipping event id %d, still missing after %.0f s", first_missing, age)
            return True
        if age < self.min_gap_age:
            return False
        if waited_for is None:  # the transactions that might hold the id
            waited_for = running
            self._gaps[first_missing] = (first_seen, waited_for)
        return not (waited_for & running)

    def _send_all(
        self, sub: Subscription, outgoing: Sequence[Outgoing], current: Clock
    ) -> tuple[int, int, int, int]:
        """Send in event order; stop at the first failure (it holds back the newer ones)."""
        attempted = delivered = failed = dead = 0
        started = time.monotonic()
        for out in outgoing:
            if time.monotonic() - started > self.lease / 3:
                break  # well inside the lease; the rest go in the next round
            attempt = self._post(sub, out)
            attempted += 1
            status = self._record(out.delivery, attempt, current())
            if status == DELIVERED:
                delivered += 1
                continue
            failed += 1
            dead += status == DEAD
            break
        return attempted, delivered, failed, dead

    def _post(self, sub: Subscription, out: Outgoing) -> Attempt:
        body = event_body(out.event, out.project)
        headers = {
            "content-type": "application/json",
            "user-agent": "loopwright-webhooks/1",
            **signed_headers(sub.secret, message_id(out.event.id), int(self._timestamp()), body),
        }
        try:
            with self._client.stream("POST", sub.url, content=body, headers=headers) as response:
                code = response.status_code
                if 200 <= code < 300:
                    return Attempt(True, code, None)
                snippet = b""
                for chunk in response.iter_bytes():
                    snippet += chunk
                    if len(snippet) >= 200:
                        break
                text = snippet[:200].decode("utf-8", "replace").strip()
                return Attempt(False, code, f"HTTP {code}" + (f": {text}" if text else ""))
        except Exception as exc:  # connection refused, timeout, bad URL: all retried
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])

    def _record(self, delivery: Delivery, attempt: Attempt, now: datetime) -> str:
        attempts = delivery.attempts + 1
        if attempt.ok:
            status, next_at, delivered_at = DELIVERED, None, now
        elif attempts >= self.max_attempts:
            status, next_at, delivered_at = DEAD, None, None
        else:
            status, next_at, delivered_at = PENDING, now + timedelta(seconds=self.delay(attempts)), None
        with self._engine.begin() as conn:
            SqlWebhookRepo(conn).record(
                delivery.id,
                status=status,
                attempts=attempts,
                next_attempt_at=next_at,
                status_code=attempt.status_code,
                error=attempt.error,
                delivered_at=delivered_at,
            )
        if status == DEAD:
            log.warning(
                "webhook delivery %d (event %d) is dead after %d attempts: %s",
                delivery.id,
                delivery.event_id,
                attempts,
                attempt.error,
            )
        return status

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts (1-based), jitter included."""
        base = self.schedule[min(attempts, len(self.schedule)) - 1]
        if not self.jitter:
            return base
        return base * (1 + self.jitter * self._rng.uniform(-1.0, 1.0))

    # -- in the background -----------------------------------------------------------------

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        if self._owns_client and self._client.is_closed:
            self._client = self._new_client()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="loopwright-webhooks", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 10.0) -> None:
        """Stop the thread (a request in flight finishes first, or its lease runs out)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(wait)
            self._thread = None
        if self._owns_client:
            self._client.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            busy = False
            try:
                report = self.run_once()
                busy = report.queued > 0 or report.delivered > 0
            except Exception:
                log.exception("webhook dispatcher round failed; trying again")
            if not busy:
                self._stopping.wait(self.poll)
