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
delivered; anything else (or no answer within the attempt's deadline) is tried again after
the next delay of the backoff schedule, and after the last try the delivery is ``dead``
(listed by the API, which can requeue it). A subscription's deliveries go out one at a time in
event order: a failing one holds back the newer ones until it succeeds or is dead, so a
receiver that is down for a while gets everything, in order, once it is back. Subscriptions
are sent concurrently by a bounded pool of threads (one in flight per subscription), so a
slow receiver delays only its own deliveries. Requests never wait on any of this: the
dispatcher runs in its own threads and only reads the event log.

Where requests may go: only to public addresses, unless the operator allows more
(:mod:`loopwright.service.egress`); checked when subscribing and again on every connection,
which goes to the very address that was checked (:mod:`loopwright.service.pinned`). What a
failed attempt records is our own short reason ("HTTP 500", "timeout after 10 s",
"connection refused", "refused: …"), never bytes of the receiver's answer.

Event ids on PostgreSQL are handed out before commit, so a later id can become visible before
an earlier one. The dispatcher only moves past a missing id once every transaction that was
running when it saw the gap has ended (or, should one hang, after ``gap_timeout``): the
:class:`~loopwright.store.sql.outbox.OutboxReader` the broker publisher reads with too.
"""

from __future__ import annotations

import builtins
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from loopwright.domain import Project
from loopwright.errors import Invalid, LoopwrightError
from loopwright.loop.context import Clock, utc_now
from loopwright.loop.ports import Store
from loopwright.service.egress import EgressPolicy, Refused, resolve
from loopwright.service.pinned import DeadlineExceeded, Resolver, SendFailed, post
from loopwright.service.signing import (
    WebhookVerificationError,
    event_body,
    message_id,
    new_secret,
    sign,
    signed_headers,
    verify,
)
from loopwright.store.sql import SqlStore
from loopwright.store.sql.outbox import OutboxReader
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

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger(__name__)

# seconds to wait after failed attempt 1, 2, ...; one attempt more than delays, then dead
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200)
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


def matches(prefixes: Sequence[str], action: str) -> bool:
    """An empty filter takes every event; else the action must start with one of the prefixes."""
    return not prefixes or any(action.startswith(p) for p in prefixes)


def _split(url: str) -> tuple[SplitResult | None, str | None]:
    """The parts of a webhook URL, or None and what is wrong with it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        return None, f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, "must be an absolute http:// or https:// URL"
    if len(url) > 2000:
        return None, "must be at most 2000 characters"
    if not url.isascii():
        return None, "must be ASCII: write the host in punycode (xn--…) and %-encode the path"
    return parts, None


def validate(url: str, prefixes: Sequence[str], policy: EgressPolicy | None = None) -> tuple[str, list[str]]:
    """The URL and filter of a new subscription, or :class:`Invalid` naming what is wrong;
    a target ``policy`` refuses (a loopback, private, … address) is wrong too."""
    errors: list[tuple[str, str]] = []
    parts, problem = _split(url.strip())
    if parts is None:
        errors.append(("url", problem or "is not a valid URL"))
    else:
        try:
            (policy or EgressPolicy()).check_url_host(parts.hostname or "")
        except Refused as exc:
            errors.append(("url", str(exc)))
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
    (without the URL, which may hold a token; only its host). ``allow``: the host names and CIDR
    ranges the operator allows besides public addresses (``LOOPWRIGHT_WEBHOOK_ALLOW``).
    """

    def __init__(self, store: Store, clock: Clock = utc_now, *, allow: Sequence[str] = ()) -> None:
        self._engine = _sql(store).engine
        self._clock = clock
        self._policy = EgressPolicy.parse(allow)

    def subscribe(self, project: Project, url: str, prefixes: Sequence[str], actor: str) -> Subscription:
        """A new subscription with a fresh secret (returned here, and only here)."""
        url, cleaned = validate(url, prefixes, self._policy)
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

    :meth:`run_once` does one round and waits for its sends (deterministic given ``now``: for
    tests with a manual clock); :meth:`start` runs rounds every ``poll`` seconds in a daemon
    thread until :meth:`stop`, without waiting: a subscription goes back into the round once
    its sends are done. Sends run on up to ``workers`` threads, one subscription each, in
    event order; a subscription is leased in the database while it is sent (see
    :mod:`loopwright.store.sql.webhooks`), so no other process sends it meanwhile.
    ``schedule`` holds the delays after each failed attempt (so ``len(schedule) + 1`` attempts
    in all); each delay is spread by ±``jitter`` (a fraction). ``timeout`` is the whole
    attempt's deadline in seconds (connect, TLS, sending, the answer's status and headers).
    ``allow``: host names and CIDR ranges allowed besides public addresses; ``resolver``
    turns a host name into addresses (default: the system's); ``ssl_context`` checks HTTPS
    receivers (default: httpx's, with certifi's CA bundle).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock = utc_now,
        *,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        jitter: float = 0.1,
        timeout: float = 10.0,
        workers: int = 8,
        poll: float = 0.5,
        batch: int = 100,
        lease: float = 120.0,
        min_gap_age: float = 1.0,
        gap_timeout: float = 300.0,
        timestamp: Callable[[], float] = time.time,
        allow: Sequence[str] = (),
        resolver: Resolver = resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._engine = _sql(store).engine
        self._clock = clock
        self.schedule = tuple(float(s) for s in schedule)
        self.max_attempts = len(self.schedule) + 1
        self.jitter = jitter
        self.timeout = timeout
        self.workers = workers
        self.poll = poll
        self.batch = batch
        self.lease = max(lease, 4 * timeout)  # a lease outlasts a round of sends (lease / 3) and one more
        self._timestamp = timestamp
        self._policy = EgressPolicy.parse(allow)
        self._resolver = resolver
        self._ssl = ssl_context
        self._rng = random.Random()
        self._horizon: int | None = None  # every event id up to here is committed (or never will be)
        self._outbox = OutboxReader("webhooks", min_gap_age, gap_timeout)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a subscription's sends are done: claim again
        self._round = threading.Lock()
        self._busy: set[int] = set()  # subscriptions being sent by this dispatcher
        self._busy_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="loopwright-webhook")
        return self._executor

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the CA bundle takes a moment: once, when first needed
            import httpx

            self._ssl = httpx.create_ssl_context(trust_env=False)
        return self._ssl

    # -- one round -------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> RunReport:
        """Queue deliveries for new events, then send every due subscription's deliveries in order
        (subscriptions side by side) and wait until they are done."""
        if self._thread is None:
            self._stopping.clear()  # stopped before: rounds by hand may go on
        queued, futures = self._start_round(now)
        totals = [0, 0, 0, 0]
        for future in futures:
            for i, n in enumerate(future.result()):
                totals[i] += n
        return RunReport(queued, *totals)

    def _start_round(self, now: datetime | None) -> tuple[int, list[Future[tuple[int, int, int, int]]]]:
        """Queue, then lease as many due subscriptions as there are idle workers and hand each
        to one; returns how many deliveries were queued and the sends under way."""
        with self._round:
            current: Clock = self._clock if now is None else (lambda: now)
            queued = self._queue(current())
            with self._busy_lock:
                free = self.workers - len(self._busy)
            if free <= 0:
                return queued, []
            start = current()
            with self._engine.begin() as conn:
                repo = SqlWebhookRepo(conn)
                claimed = repo.claim_due(start, start + timedelta(seconds=self.lease), min(self.batch, free))
                with self._busy_lock:
                    claimed = [sub for sub in claimed if sub.id not in self._busy]
                    self._busy.update(sub.id for sub in claimed)
                work = [(sub, repo.pending(sub.id, self.batch)) for sub in claimed]
            futures = []
            for sub, outgoing in work:
                future = self._pool().submit(self._deliver, sub, outgoing, current)
                future.add_done_callback(self._done)
                futures.append(future)
            return queued, futures

    def _deliver(
        self, sub: Subscription, outgoing: Sequence[Outgoing], current: Clock
    ) -> tuple[int, int, int, int]:
        """One subscription's sends, on a worker thread; then its lease is released."""
        try:
            return self._send_all(sub, outgoing, current)
        finally:
            try:
                with self._engine.begin() as conn:
                    SqlWebhookRepo(conn).release(sub.id)
            finally:
                with self._busy_lock:
                    self._busy.discard(sub.id)
                self._wake.set()

    @staticmethod
    def _done(future: Future[tuple[int, int, int, int]]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            log.error("webhook sends failed; the lease runs out and they are tried again", exc_info=exc)

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
            horizon = self._settle(conn)
            queued = 0
            for sub in active:
                if sub.last_event_id >= horizon:
                    continue
                found = repo.project_events(sub.project_id, sub.last_event_id, horizon, self.batch * 10)
                cursor = found[-1].id if len(found) == self.batch * 10 else horizon
                queued += repo.enqueue(sub.id, [e.id for e in found if matches(sub.events, e.action)], now)
                repo.advance(sub.id, cursor)
            return queued

    def _settle(self, conn: Connection) -> int:
        """Move the horizon over the event ids that are there, and over gaps known to be final
        (:class:`~loopwright.store.sql.outbox.OutboxReader`, shared with the broker publisher)."""
        assert self._horizon is not None
        self._horizon = self._outbox.settle(conn, self._horizon, 10_000)
        return self._horizon

    def _send_all(
        self, sub: Subscription, outgoing: Sequence[Outgoing], current: Clock
    ) -> tuple[int, int, int, int]:
        """Send in event order; stop at the first failure (it holds back the newer ones)."""
        attempted = delivered = failed = dead = 0
        started = time.monotonic()
        for out in outgoing:
            if time.monotonic() - started > self.lease / 3 or self._stopping.is_set():
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
        """One attempt, ended by its deadline; what went wrong in our own words, never the
        receiver's (its answer's body is not even read)."""
        body = event_body(out.event, out.project)
        headers = {
            "content-type": "application/json",
            "user-agent": "loopwright-webhooks/1",
            **signed_headers(sub.secret, message_id(out.event.id), int(self._timestamp()), body),
        }
        try:
            context = self._context() if sub.url.lower().startswith("https:") else None
            code = post(
                sub.url,
                body,
                headers,
                policy=self._policy,
                timeout=self.timeout,
                ssl_context=context,
                resolver=self._resolver,
            )
        except DeadlineExceeded:
            return Attempt(False, None, f"timeout after {self.timeout:g} s")
        except Refused as exc:
            return Attempt(False, None, f"refused: {exc}")
        except SendFailed as exc:
            return Attempt(False, None, str(exc))
        except Exception as exc:  # a bad URL, a bug: retried like the rest, named by type only
            log.debug("webhook %d: attempt failed", sub.id, exc_info=True)
            return Attempt(False, None, f"failed: {type(exc).__name__}")
        if 200 <= code < 300:
            return Attempt(True, code, None)
        return Attempt(False, code, f"HTTP {code}")

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
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="loopwright-webhooks", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 10.0) -> None:
        """Stop the thread; sends in flight end after their current attempt (within ``timeout``),
        then their leases are released."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait)
            self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._start_round(None)
            except Exception:
                log.exception("webhook dispatcher round failed; trying again")
            self._wake.wait(self.poll)
