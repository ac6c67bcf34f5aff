"""The SQL store: one unit of work is one connection in one transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import OperationalError

from loopwright.errors import StoreUnavailable
from loopwright.store.sql.annotator_stats import SqlAnnotatorStatsRepo
from loopwright.store.sql.duplicates import SqlDuplicateKeyRepo
from loopwright.store.sql.engine import make_engine, migrate
from loopwright.store.sql.erasure import SqlErasureRepo, reclaim
from loopwright.store.sql.external import SqlEmbeddingRepo, SqlModelPredictionRepo
from loopwright.store.sql.learning import SqlDatasetRepo, SqlModelRepo
from loopwright.store.sql.repositories import (
    EvidenceMarks,
    SqlCertificationRepo,
    SqlDecisionRepo,
    SqlEventRepo,
    SqlFeedbackRepo,
    SqlItemRepo,
    SqlPredictionRepo,
    SqlProjectRepo,
    SqlResolutionRepo,
)
from loopwright.store.sql.review import (
    SqlAnnotationRepo,
    SqlGoldAnswerRepo,
    SqlLeaseRepo,
    SqlMachineLabelRepo,
    SqlTaskRepo,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6)  # seconds between attempts to reach the database


class SqlUnitOfWork:
    """The repositories of one transaction, all bound to the same connection."""

    def __init__(self, conn: Connection) -> None:
        marks = EvidenceMarks()  # what this transaction changes of the audit evidence
        self.projects = SqlProjectRepo(conn)
        self.items = SqlItemRepo(conn)
        self.predictions = SqlPredictionRepo(conn)
        self.decisions = SqlDecisionRepo(conn)
        self.tasks = SqlTaskRepo(conn)
        self.leases = SqlLeaseRepo(conn)
        self.annotations = SqlAnnotationRepo(conn, marks)
        self.gold_answers = SqlGoldAnswerRepo(conn)
        self.annotator_stats = SqlAnnotatorStatsRepo(conn)
        self.machine_labels = SqlMachineLabelRepo(conn)
        self.resolutions = SqlResolutionRepo(conn, marks)
        self.datasets = SqlDatasetRepo(conn)
        self.models = SqlModelRepo(conn)
        self.events = SqlEventRepo(conn)
        self.certifications = SqlCertificationRepo(conn, marks)
        self.feedback = SqlFeedbackRepo(conn)
        self.erasures = SqlErasureRepo(conn)
        self.model_predictions = SqlModelPredictionRepo(conn)
        self.embeddings = SqlEmbeddingRepo(conn)
        self.duplicate_keys = SqlDuplicateKeyRepo(conn)

    def finish(self) -> None:
        """The last statements before the commit: move the audit evidence's version where this
        transaction changed it (:class:`~loopwright.store.sql.repositories.EvidenceMarks`)."""
        self.certifications.move_evidence()


class SqlStore:
    """A :class:`~loopwright.loop.ports.Store` on SQLite or PostgreSQL; migrates on creation.

    Opening a connection is retried on ``OperationalError`` with exponential backoff
    (``retry_delays``), then :class:`~loopwright.errors.StoreUnavailable` is raised.
    """

    def __init__(
        self, url: str, retry_delays: Sequence[float] = RETRY_DELAYS, pool_size: int | None = None
    ) -> None:
        self._setup(make_engine(url, pool_size), retry_delays)

    @classmethod
    def from_engine(cls, engine: Engine, retry_delays: Sequence[float] = RETRY_DELAYS) -> SqlStore:
        store = cls.__new__(cls)
        store._setup(engine, retry_delays)
        return store

    def _setup(self, engine: Engine, retry_delays: Sequence[float]) -> None:
        self.engine = engine
        self._retry_delays = tuple(retry_delays)
        try:
            self._retrying(lambda: migrate(engine))
        except StoreUnavailable:
            engine.dispose()
            raise

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlUnitOfWork]:
        """One transaction: commit when the block ends cleanly, roll back when it raises."""
        conn, transaction = self._retrying(self._begin)
        with conn, transaction:
            uow = SqlUnitOfWork(conn)
            yield uow
            uow.finish()

    def close(self) -> None:
        self.engine.dispose()

    def reclaim(self, tables: Sequence[str]) -> None:
        """After an erasure commits: checkpoint the SQLite WAL, or VACUUM ``tables`` on PostgreSQL."""
        reclaim(self.engine, tables)

    def _begin(self) -> tuple[Connection, RootTransaction]:
        conn = self.engine.connect()
        try:
            return conn, conn.begin()
        except BaseException:
            conn.close()
            raise

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for delay in self._retry_delays:
            try:
                return attempt()
            except OperationalError as exc:
                log.warning("database not reachable (%s); retrying in %.1fs", exc.orig, delay)
                time.sleep(delay)
        try:
            return attempt()
        except OperationalError as exc:
            url = self.engine.url.render_as_string(hide_password=True)
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise StoreUnavailable(
                f"could not reach the database at {url} after {len(self._retry_delays) + 1}"
                f" attempts ({reason}). Check that the database server is running and"
                " reachable from here, and that the URL is right."
            ) from exc
