"""Every event on NATS JetStream: the event log is the outbox, this publisher a second sink.

Each event goes to subject ``<prefix>.<project>.<action>`` (``loopwright.toy.model.promoted``)
with the webhooks' body (``{"type", "timestamp", "data"}``, :func:`~loopwright.service.signing.
event_body`) and header ``Nats-Msg-Id: evt_<event id>``, the webhooks' id: JetStream drops a
message whose id it saw within the stream's duplicate window, so a batch published again after a
crash is stored once. The stream (``LOOPWRIGHT``, subjects ``<prefix>.>``) is created if missing.

At least once: the publisher leases its cursor row (:mod:`loopwright.store.sql.cursors`),
publishes the events after it in id order, each waiting for JetStream's ack, and moves the
cursor only after the acks. A broker that is down leaves the events in the outbox: one log line,
then a new try every ``retry`` seconds, and everything goes out once it answers. On PostgreSQL an
event id is taken before commit, so the publisher moves past a missing id only once every
transaction that could hold it has ended (or after ``gap_timeout``): the
:class:`~loopwright.store.sql.outbox.OutboxReader` the webhook dispatcher reads with too.

``nats-py`` (the ``broker`` extra) is imported only here, when a publisher connects.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loopwright.errors import Invalid, LoopwrightError
from loopwright.loop.context import Clock, utc_now
from loopwright.loop.ports import Store
from loopwright.service.signing import event_body, message_id
from loopwright.store.sql import SqlStore
from loopwright.store.sql.cursors import SqlEventCursors
from loopwright.store.sql.outbox import OutboxReader

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class BrokerUnavailable(LoopwrightError):
    """The broker did not answer, or refused the stream; events wait in the outbox."""

    code = "broker_unavailable"


def subject(prefix: str, project: str, action: str) -> str:
    """``<prefix>.<project>.<action>``; characters a subject token cannot hold become ``_``."""
    parts = [_UNSAFE.sub("_", p) or "_" for p in action.split(".")]
    return ".".join([prefix, _UNSAFE.sub("_", project) or "_", *parts])


def check_url(url: str) -> tuple[str, dict[str, str]]:
    """The server of a ``nats://host:port[?stream=S&prefix=P]`` URL and its options, or
    :class:`Invalid` (what ``LOOPWRIGHT_BROKER_URL`` holds)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
        options = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
    except ValueError as exc:
        raise Invalid(f"broker URL {url!r} is not valid ({exc})") from None
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise Invalid(f"broker URL {url!r}: give nats://host:port")
    unknown = sorted(set(options) - {"stream", "prefix"})
    if unknown:
        raise Invalid(f"broker URL {url!r}: unknown option {unknown[0]!r} (stream, prefix)")
    return parts._replace(query="", fragment="").geturl(), options


@dataclass(frozen=True, slots=True)
class Published:
    """What one :meth:`NatsPublisher.publish_once` did."""

    published: int = 0  # acked by JetStream (duplicates included)
    duplicates: int = 0  # acked as already stored (a batch published again)
    cursor: int = 0  # the cursor after the round
    leased: bool = True  # False: another publisher holds the cursor


class NatsPublisher:
    """Publishes the event log to JetStream after its cursor; safe in several processes.

    :meth:`publish_once` is one round (async); :meth:`run` rounds every ``poll`` seconds until
    ``stop`` is set; :meth:`start`/:meth:`stop` run that in a daemon thread with its own event
    loop (what ``loopwright serve`` does). ``sink`` names the cursor (default ``nats:<stream>``).
    """

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        stream: str = "LOOPWRIGHT",
        prefix: str = "loopwright",
        sink: str | None = None,
        batch: int = 200,
        poll: float = 0.5,
        retry: float = 5.0,
        lease: float = 60.0,
        ack_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        min_gap_age: float = 1.0,
        gap_timeout: float = 300.0,
        clock: Clock = utc_now,
    ) -> None:
        if not isinstance(store, SqlStore):
            raise LoopwrightError("the broker publisher needs the SQL store")
        self._engine = store.engine
        self.url, options = check_url(url)
        self.stream = options.get("stream", stream)
        self.prefix = options.get("prefix", prefix)
        self.sink = sink or f"nats:{self.stream}"
        self.batch = batch
        self.poll = poll
        self.retry = retry
        self.lease = lease
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self._clock = clock
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._nc: Any = None
        self._js: Any = None
        self._outbox = OutboxReader(f"broker {self.sink}", min_gap_age, gap_timeout)
        self._thread: threading.Thread | None = None
        self._stop_flag = threading.Event()

    # -- the broker -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and make sure the stream exists; :class:`BrokerUnavailable` in one line."""
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        async def quiet(exc: Exception) -> None:
            log.debug("nats: %s", exc)

        try:
            self._nc = await nats.connect(
                self.url,
                connect_timeout=max(1, round(self.connect_timeout)),
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=quiet,
                name=f"loopwright-publisher-{self.owner}",
            )
            self._js = self._nc.jetstream(timeout=self.ack_timeout)
            try:
                await self._js.stream_info(self.stream)
            except NotFoundError:
                await self._js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"]))
        except Exception as exc:
            await self.close()
            reason = str(exc) or type(exc).__name__
            raise BrokerUnavailable(
                f"broker {self.url} is not answering ({reason}); events wait in the outbox"
            ) from None

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:  # pragma: no cover - closing a broken connection
                log.debug("nats: close failed", exc_info=True)

    # -- one round ----------------------------------------------------------------------------

    async def publish_once(self) -> Published:
        """Lease the cursor, publish the settled events after it (acked one by one, in id order),
        advance the cursor past the acked ones, release the lease."""
        if self._js is None:
            await self.connect()
        now = self._clock()
        with self._engine.begin() as conn:
            repo = SqlEventCursors(conn)
            start = repo.lease(self.sink, self.owner, now, now + timedelta(seconds=self.lease))
            if start is None:
                return Published(leased=False)
            upto = self._outbox.settle(conn, start, self.batch)
            found = repo.events_between(start, upto, self.batch) if upto > start else []
        published = duplicates = 0
        cursor = start
        try:
            for event, project in found:
                ack = await self._js.publish(
                    subject(self.prefix, project, event.action),
                    event_body(event, project),
                    headers={"Nats-Msg-Id": message_id(event.id)},
                )
                published += 1
                duplicates += bool(ack.duplicate)
                cursor = event.id
            if len(found) < self.batch and upto > cursor:
                cursor = upto  # the ids in between are gaps known to be final
        finally:
            with self._engine.begin() as conn:
                repo = SqlEventCursors(conn)
                if cursor > start and not repo.advance(self.sink, self.owner, cursor, self._clock()):
                    log.warning("broker: lost the lease on %s; another publisher goes on", self.sink)
                repo.release(self.sink, self.owner)
        return Published(published, duplicates, cursor)

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: threading.Event | None = None) -> None:
        """Rounds until ``stop`` is set; a broker that is down is logged once per outage and
        tried again every ``retry`` seconds."""
        stop = stop or self._stop_flag
        down = False
        try:
            while not stop.is_set():
                try:
                    done = await self.publish_once()
                    if down:
                        log.warning("broker %s is answering again; publishing the outbox", self.url)
                        down = False
                    if done.published == self.batch:
                        continue  # more waiting: no pause
                    wait = self.poll
                except Exception as exc:
                    await self.close()
                    if not down:
                        message = exc.message if isinstance(exc, BrokerUnavailable) else repr(exc)
                        log.error("%s", message)
                        down = True
                    wait = self.retry
                deadline = time.monotonic() + wait
                while not stop.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(min(0.05, wait))
        finally:
            await self.close()

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread with its own event loop."""
        if self._thread is not None:
            return
        self._stop_flag.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.run(self._stop_flag)), name="loopwright-broker", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = 10.0) -> None:
        self._stop_flag.set()
        if self._thread is not None:
            self._thread.join(wait)
            self._thread = None
